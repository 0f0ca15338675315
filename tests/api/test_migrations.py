"""Ordered SQL migrations: applied once, in order, under an advisory lock; a schema we do not know stops start-up."""

from __future__ import annotations

import asyncio
from pathlib import Path

import asyncpg
import pytest
from litestar.testing import AsyncTestClient

from api import db
from api.app import create_app
from api.settings import Settings


async def _fetch(dsn: str, sql: str, *args: object) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(dsn)
    try:
        return await conn.fetch(sql, *args)
    finally:
        await conn.close()


async def _execute(dsn: str, sql: str, *args: object) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(sql, *args)
    finally:
        await conn.close()


async def _check_schema(dsn: str) -> None:
    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=1)
    try:
        await db.check_schema(pool)
    finally:
        await pool.close()


async def test_migrate_applies_every_file_once_in_order_and_records_it(empty_dsn: str) -> None:
    migrations = db.load_migrations()

    applied = await db.migrate(empty_dsn)

    assert applied == [m.name for m in migrations]
    rows = await _fetch(empty_dsn, "SELECT version, name, checksum FROM schema_migrations ORDER BY version")
    assert [(r["version"], r["name"], r["checksum"]) for r in rows] == [
        (m.version, m.name, m.checksum) for m in migrations]
    await _check_schema(empty_dsn)  # the app would start on it


async def test_second_migrate_applies_nothing(empty_dsn: str) -> None:
    await db.migrate(empty_dsn)
    before = await _fetch(empty_dsn, "SELECT version, applied_at FROM schema_migrations ORDER BY version")

    assert await db.migrate(empty_dsn) == []

    after = await _fetch(empty_dsn, "SELECT version, applied_at FROM schema_migrations ORDER BY version")
    assert after == before


async def test_two_concurrent_migrations_both_succeed_and_apply_each_file_once(empty_dsn: str) -> None:
    first, second = await asyncio.gather(db.migrate(empty_dsn), db.migrate(empty_dsn))

    names = [m.name for m in db.load_migrations()]
    assert sorted(first + second) == sorted(names)
    assert [] in (first, second)  # the one that waited for the lock found everything done
    rows = await _fetch(empty_dsn, "SELECT name FROM schema_migrations ORDER BY version")
    assert [r["name"] for r in rows] == names


async def test_empty_database_is_refused_until_migrated(empty_dsn: str) -> None:
    with pytest.raises(db.MigrationError, match="lienthong migrate"):
        await _check_schema(empty_dsn)


async def _add_migration_from_a_newer_release(dsn: str) -> str:
    await db.migrate(dsn)
    newer = max(m.version for m in db.load_migrations()) + 1
    name = f"{newer:04d}_from_a_newer_release.sql"
    await _execute(dsn, "INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, 'abc')", newer, name)
    return name


async def test_database_migrated_by_a_newer_release_is_refused_by_migrate(empty_dsn: str) -> None:
    name = await _add_migration_from_a_newer_release(empty_dsn)

    with pytest.raises(db.MigrationError, match=name):
        await db.migrate(empty_dsn)


async def test_database_migrated_by_a_newer_release_is_refused_at_start_up(empty_dsn: str, tmp_path: Path) -> None:
    await _add_migration_from_a_newer_release(empty_dsn)

    with pytest.raises(db.MigrationError, match="newer"):
        await _check_schema(empty_dsn)

    settings = Settings(database_url=empty_dsn, data_dir=tmp_path, jwt_secret="j" * 40, data_key=b"k" * 32,
                        otp_pepper=b"p" * 32, sms_gateway_url="http://127.0.0.1:9", run_worker=False,
                        db_pool_min=1, db_pool_max=2)
    # The server's start-up fails with the same error (Litestar surfaces it from its lifespan task group).
    with pytest.RaisesGroup(pytest.RaisesExc(db.MigrationError, match="newer than this code"),
                            allow_unwrapped=True, flatten_subgroups=True):
        async with AsyncTestClient(create_app(settings)):
            pass


async def test_applied_migration_edited_afterwards_is_refused(empty_dsn: str) -> None:
    await db.migrate(empty_dsn)
    await _execute(empty_dsn, "UPDATE schema_migrations SET checksum = 'edited' WHERE version = 1")

    with pytest.raises(db.MigrationError, match="changed after it was applied"):
        await db.migrate(empty_dsn)


async def test_extensions_later_features_need_are_installed(empty_dsn: str) -> None:
    await db.migrate(empty_dsn)

    rows = await _fetch(empty_dsn, "SELECT extname FROM pg_extension")

    assert {"btree_gist", "pg_trgm", "unaccent", "citext"} <= {r["extname"] for r in rows}


@pytest.mark.parametrize(("text", "folded"), [
    ("Nhi Khoa Đặc Biệt", "nhi khoa dac biet"),
    ("Paracetamol 500mg", "paracetamol 500mg"),
    ("ĐƯỜNG Hồng Bàng", "duong hong bang"),
])
async def test_search_fold_drops_case_and_vietnamese_diacritics(empty_dsn: str, text: str, folded: str) -> None:
    await db.migrate(empty_dsn)

    rows = await _fetch(empty_dsn, "SELECT search_fold($1) AS folded", text)

    assert rows[0]["folded"] == folded
