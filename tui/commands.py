"""The command palette (ctrl+p): every screen and action of the console by name."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from functools import partial
from typing import Any

from textual.command import DiscoveryHit, Hit, Hits, Provider


class ConsoleCommands(Provider):
    def _commands(self) -> list[tuple[str, Callable[[], Any], str]]:
        app: Any = self.app
        tabs = [("overview", "Overview"), ("calls", "Calls and queues"), ("lines", "Trunks and phones"),
                ("diagnostics", "Diagnostics"), ("config", "Configuration"), ("drill", "Drill and maintenance"),
                ("events", "Events and logs"), ("software", "Software")]  # fmt: skip
        out: list[tuple[str, Callable[[], Any], str]] = [
            (f"Go to {label}", partial(app.action_tab, tab), f"show the {label.lower()} tab") for tab, label in tabs
        ]
        out += [
            ("Start survivable drill", app.action_start_drill, "force survivable mode for the length set in the drill tab"),
            ("End survivable drill", app.end_drill, "let the WAN decide the mode again"),
            ("Maintenance on", partial(app.set_maintenance, True), "refuse new calls, let calls finish"),
            ("Maintenance off", partial(app.set_maintenance, False), "take new calls again"),
            ("Run all diagnostics", app.action_run_all, "test call, database, outbox, fleet (and ping if a target is set)"),
            ("Media test call", partial(app.run_diagnostic, "test-call"), "loss, jitter and MOS of a tone loopback"),
            ("Database integrity check", partial(app.run_diagnostic, "database"), "SQLite integrity, disk space"),
            ("Outbox backlog", partial(app.run_diagnostic, "outbox"), "records not yet acknowledged by the fleet"),
            ("Fleet reachability", partial(app.run_diagnostic, "fleet"), "MQTT session and broker reachability"),
            ("Save support bundle", app.save_bundle, ".tar.gz with config, logs and diagnostics; secrets redacted"),
            ("Apply loaded config", app.apply_loaded_config, "apply the validated file as a local override"),
            ("Roll back config", app.rollback_config, "apply the config from before the last apply again"),
            ("Install a bundle file", partial(app.action_tab, "software"),
             "software tab: type the bundle's path (USB stick), enter; verified, health-checked"),
            ("Refresh now", app.action_refresh, "read everything from the edge again"),
            ("Help", app.action_help, "every key of the console"),
        ]  # fmt: skip
        return out

    async def discover(self) -> Hits:
        for name, callback, help_text in self._commands():
            yield DiscoveryHit(name, callback, help=help_text)

    async def search(self, query: str) -> AsyncIterator[Hit]:
        matcher = self.matcher(query)
        for name, callback, help_text in self._commands():
            score = matcher.match(name)
            if score > 0:
                yield Hit(score, matcher.highlight(name), callback, help=help_text)
