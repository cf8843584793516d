"""Site configuration: the schema (shared with the fleet) and loading with path-named
errors. Must not import anything that does I/O beyond reading the file it is given."""

from edge_core.config.schema import ConfigError, SiteConfig, load_config, parse_config

__all__ = ["ConfigError", "SiteConfig", "load_config", "parse_config"]
