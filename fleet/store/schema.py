"""The fleet store's tables, as SQLAlchemy Core ``Table`` objects (the latest version).

One set of definitions serves SQLite and PostgreSQL: JSON columns are ``JSON`` on
SQLite and ``JSONB`` on PostgreSQL; times are float Unix epoch seconds like the wire
protocol, so no time-zone conversion differs between the two. Core rather than the ORM
because the hot path is bulk insert-or-ignore, which the ORM's unit of work would only
slow down; readers get frozen dataclasses (``fleet.store.rows``).

``migrations.py`` builds these tables step by step; a test checks that a database
migrated from nothing has exactly the columns declared here.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB

metadata = MetaData()

Json = JSON().with_variant(JSONB(), "postgresql")

schema_version = Table(
    "schema_version",
    metadata,
    Column("version", Integer, primary_key=True),
    Column("name", String(100), nullable=False),
    Column("applied_at", Float, nullable=False),
)

sites = Table(
    "sites",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("status", String(16), nullable=False, server_default="unknown"),
    # ``online`` / ``offline`` (from the retained state and the last-will) or ``unknown``.
    Column("status_at", Float),
    Column("last_seen", Float),
    Column("version", String(64), nullable=False, server_default=""),
    Column("mode", String(16), nullable=False, server_default="normal"),
    Column("mode_since", Float),
    Column("started_at", Float),
    Column("state_at", Float),
    Column("kernels", Json, nullable=False, server_default=text("'{}'")),
    Column("config_version", Integer),
    # The config version the edge says it runs (state or an ``applied`` report).
    Column("config_rejected_version", Integer),
    Column("config_rejection", Text, nullable=False, server_default=""),
    Column("config_report_at", Float),
    Column("contiguous_seq", BigInteger, nullable=False, server_default="0"),
    # Every record with ``seq <=`` this is stored: the value acked to the edge.
    Column("region", String(64), nullable=False, server_default=""),
    Column("site_type", String(64), nullable=False, server_default=""),
    Column("created_at", Float),
)

records = Table(
    "records",
    metadata,
    Column("site_id", String(64), primary_key=True),
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("kind", String(16), nullable=False),
    Column("at", Float, nullable=False),
    Column("body", Json, nullable=False),
    Index("records_by_kind_at", "kind", "at"),
)

cdrs = Table(
    "cdrs",
    metadata,
    Column("site_id", String(64), primary_key=True),
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("call_id", String(128), nullable=False, server_default=""),
    Column("start_time", Float, nullable=False),
    Column("caller", String(64), nullable=False, server_default=""),
    Column("callee", String(64), nullable=False, server_default=""),
    Column("queue", String(64), nullable=False, server_default=""),
    Column("disposition", String(16), nullable=False, server_default=""),
    Column("duration_s", Float),
    Index("cdrs_by_start", "start_time"),
    Index("cdrs_by_caller", "caller", "start_time"),
    Index("cdrs_by_queue", "queue", "start_time"),
)
"""A search projection of ``records`` of kind ``cdr``, written in the same transaction."""

metrics_latest = Table(
    "metrics_latest",
    metadata,
    Column("site_id", String(64), primary_key=True),
    Column("at", Float, nullable=False),
    Column("gauges", Json, nullable=False),
    Column("queues", Json, nullable=False),
    Column("trunks", Json, nullable=False),
)

metrics_history = Table(
    "metrics_history",
    metadata,
    Column("id", BigInteger().with_variant(Integer(), "sqlite"), primary_key=True, autoincrement=True),
    Column("site_id", String(64), nullable=False),
    Column("at", Float, nullable=False),
    Column("gauges", Json, nullable=False),
    Column("queues", Json, nullable=False),
    Column("trunks", Json, nullable=False),
    Index("metrics_history_by_site", "site_id", "at"),
)

config_layers = Table(
    "config_layers",
    metadata,
    Column("scope", String(100), primary_key=True),
    # ``base``, ``region:<name>``, ``type:<name>`` or ``site:<id>``.
    Column("version", Integer, primary_key=True, autoincrement=False),
    Column("body", Json, nullable=False),
    Column("author", String(100), nullable=False),
    Column("reason", Text, nullable=False),
    Column("created_at", Float, nullable=False),
)
"""Immutable versions of each composition layer."""

config_versions = Table(
    "config_versions",
    metadata,
    Column("site_id", String(64), primary_key=True),
    Column("version", Integer, primary_key=True, autoincrement=False),
    Column("body", Json, nullable=False),
    # The composed, validated SiteConfig mapping that was signed and published.
    Column("sources", Json, nullable=False),
    # ``{scope: layer version}`` the body was composed from.
    Column("author", String(100), nullable=False),
    Column("reason", Text, nullable=False),
    Column("created_at", Float, nullable=False),
    Column("published_at", Float),
)
"""Immutable desired configs per site: what the edge is told to run."""

alarms = Table(
    "alarms",
    metadata,
    Column("id", BigInteger().with_variant(Integer(), "sqlite"), primary_key=True, autoincrement=True),
    Column("site_id", String(64), nullable=False),
    Column("kind", String(32), nullable=False),
    Column("subject", String(100), nullable=False, server_default=""),
    Column("severity", String(16), nullable=False),
    Column("message", Text, nullable=False, server_default=""),
    Column("raised_at", Float, nullable=False),
    Column("last_seen_at", Float, nullable=False),
    Column("count", Integer, nullable=False, server_default="1"),
    Column("acked_by", String(100)),
    Column("acked_at", Float),
    Column("cleared_at", Float),
    Column("active", Boolean, nullable=False, server_default=text("true")),
    Index(
        "alarms_one_active",
        "site_id",
        "kind",
        "subject",
        unique=True,
        sqlite_where=text("active"),
        postgresql_where=text("active"),
    ),
    Index("alarms_by_raised", "raised_at"),
)
"""At most one active alarm per (site, kind, subject): the dedupe key."""

commands = Table(
    "commands",
    metadata,
    Column("site_id", String(64), primary_key=True),
    Column("id", String(64), primary_key=True),
    Column("op", String(32), nullable=False, server_default=""),
    Column("args", Json, nullable=False, server_default=text("'{}'")),
    Column("author", String(100), nullable=False, server_default=""),
    Column("sent_at", Float),
    Column("ok", Boolean),
    Column("result", Json),
    Column("error", Text, nullable=False, server_default=""),
    Column("done_at", Float),
)

audit_log = Table(
    "audit_log",
    metadata,
    Column("id", BigInteger().with_variant(Integer(), "sqlite"), primary_key=True, autoincrement=True),
    Column("at", Float, nullable=False),
    Column("actor", String(100), nullable=False),
    Column("action", String(64), nullable=False),
    Column("target", String(200), nullable=False, server_default=""),
    Column("detail", Json, nullable=False, server_default=text("'{}'")),
    Index("audit_by_at", "at"),
)
