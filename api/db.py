"""Database plumbing: where the database is, the asyncpg pool, and the ordered SQL migrations."""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass
from importlib import resources
from typing import TYPE_CHECKING, Any

import asyncpg
import msgspec

from api import embedded_pg
from api.settings import Settings

if TYPE_CHECKING:
    from asyncpg.pool import PoolConnectionProxy

    # What domain db modules take: a bare connection or one borrowed from the pool.
    Conn = asyncpg.Connection[asyncpg.Record] | PoolConnectionProxy[asyncpg.Record]
else:
    Conn = asyncpg.Connection

log = logging.getLogger("lienthong.db")

_MIGRATION_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")
_MIGRATION_LOCK = 7_240_001  # advisory lock key shared by every process that migrates


class MigrationError(RuntimeError):
    """The database's schema is not one this code can run against."""


@dataclass(frozen=True)
class DatabaseTarget:
    """Where the API connects (``app_dsn``) and where migrations run (``admin_dsn``, the schema owner)."""

    app_dsn: str
    admin_dsn: str
    app_role: str | None  # SET ROLE after connecting, when the app shares the owner's login


def resolve_target(settings: Settings) -> DatabaseTarget:
    """Start the embedded cluster when no DATABASE_URL is set; otherwise use the URL for both purposes."""
    if settings.database_url is not None:
        return DatabaseTarget(settings.database_url, settings.database_url, settings.db_app_role)
    cluster = embedded_pg.ensure_running(settings.data_dir)
    return DatabaseTarget(cluster.app_dsn(), cluster.admin_dsn(), None)


async def _init_connection(conn: asyncpg.Connection) -> None:
    # jsonb columns travel as bytes through msgspec: faster than the stdlib json asyncpg uses by default.
    await conn.set_type_codec("jsonb", encoder=lambda v: b"\x01" + msgspec.json.encode(v),
                              decoder=lambda b: msgspec.json.decode(b[1:]), schema="pg_catalog", format="binary")


async def _keep_session(conn: asyncpg.Connection) -> None:
    """The pool's reset on release. asyncpg's default runs ``SELECT pg_advisory_unlock_all(); CLOSE ALL;
    UNLISTEN *; RESET ALL`` on every release: a second round trip for every one-statement request (measured: verify
    spent a third of its database time on it). Before this runs asyncpg has already rolled back any open transaction
    and dropped its listeners; the rest cannot be needed, because the code sets no session state: settings are
    given at connect time (role, time zone) or with ``set_config(..., true)`` inside a transaction, advisory locks are
    transaction-scoped (``pg_advisory_xact_lock``), no cursor outlives its transaction, and the one LISTEN (the
    notification dispatcher) is UNLISTENed before its connection goes back."""


async def create_pool(target: DatabaseTarget, settings: Settings) -> asyncpg.Pool:
    server_settings = {"application_name": "lienthong", "TimeZone": "UTC"}
    if target.app_role:
        server_settings["role"] = target.app_role
    pool: asyncpg.Pool = await asyncpg.create_pool(
        target.app_dsn, min_size=settings.db_pool_min, max_size=settings.db_pool_max,
        init=_init_connection, reset=_keep_session, server_settings=server_settings, command_timeout=30,
    )
    return pool


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def load_migrations() -> list[Migration]:
    found = []
    for entry in resources.files("api.migrations").iterdir():
        match = _MIGRATION_NAME.match(entry.name)
        if match:
            found.append(Migration(int(match.group(1)), entry.name, entry.read_text(encoding="utf-8")))
    found.sort(key=lambda m: m.version)
    versions = [m.version for m in found]
    if versions != list(range(1, len(found) + 1)):
        raise MigrationError(f"migration files must be numbered 0001.. without gaps, found {versions}")
    return found


_GRANTS = """
DO $$
BEGIN
  IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'lienthong_app') THEN
    GRANT USAGE ON SCHEMA public TO lienthong_app;
    GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO lienthong_app;
    GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO lienthong_app;
    -- append-only tables: the application may add rows, never change or remove them
    REVOKE UPDATE, DELETE, TRUNCATE ON audit_log, consents FROM lienthong_app;
  END IF;
END $$;
"""


async def migrate(dsn: str) -> list[str]:
    """Apply pending migrations in order under an advisory lock; return the names applied.

    Refuses to touch a database that has migrations this code does not know (a newer release ran there) or
    whose applied migrations were edited afterwards.
    """
    migrations = load_migrations()
    conn: asyncpg.Connection = await asyncpg.connect(dsn, server_settings={"TimeZone": "UTC"})
    applied_now: list[str] = []
    try:
        await conn.execute("SELECT pg_advisory_lock($1)", _MIGRATION_LOCK)
        await conn.execute(
            """CREATE TABLE IF NOT EXISTS schema_migrations (
                 version integer PRIMARY KEY, name text NOT NULL, checksum text NOT NULL,
                 applied_at timestamptz NOT NULL DEFAULT now())"""
        )
        rows = await conn.fetch("SELECT version, name, checksum FROM schema_migrations ORDER BY version")
        known = {m.version: m for m in migrations}
        for row in rows:
            migration = known.get(row["version"])
            if migration is None:
                raise MigrationError(
                    f"database has migration {row['name']} that this version of Lienthong does not know; "
                    "run a newer release or restore a matching backup"
                )
            if migration.checksum != row["checksum"]:
                raise MigrationError(f"migration {migration.name} was changed after it was applied")
        done = {row["version"] for row in rows}
        for migration in migrations:
            if migration.version in done:
                continue
            async with conn.transaction():
                await conn.execute(migration.sql)
                await conn.execute(
                    "INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)",
                    migration.version, migration.name, migration.checksum,
                )
            applied_now.append(migration.name)
            log.info("migration applied", extra={"migration": migration.name})
        await conn.execute(_GRANTS)
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", _MIGRATION_LOCK)
        await conn.close()
    return applied_now


async def check_schema(pool: asyncpg.Pool) -> None:
    """Start-up check: the schema must be exactly as migrated by this code (run ``lienthong migrate``)."""
    latest = max(m.version for m in load_migrations())
    try:
        current = await pool.fetchval("SELECT max(version) FROM schema_migrations")
    except asyncpg.UndefinedTableError:
        current = None
    if current is None or current < latest:
        raise MigrationError(f"database schema is at {current or 0}, code expects {latest}: run `lienthong migrate`")
    if current > latest:
        raise MigrationError(f"database schema {current} is newer than this code ({latest}); refusing to start")


def record_to(struct_type: type[Any], row: asyncpg.Record) -> Any:
    """Turn a row into a Struct at the database edge."""
    return msgspec.convert(dict(row), struct_type, from_attributes=False)
