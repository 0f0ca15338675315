"""Backup and restore with the commands the README gives: ``lienthong backup`` of a database holding the demo clinic and
a signed prescription, ``lienthong restore`` into a fresh embedded PostgreSQL; every table comes back with all its
rows, the append-only rules still hold, and the prescription still verifies at the pharmacy."""

from __future__ import annotations

import asyncio
import shutil
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest
from litestar.testing import AsyncTestClient

from api import db, embedded_pg
from api.app import create_app
from api.settings import Settings, with_overrides
from tests.conftest import server_env
from tests.eprescription.prescribing import staff_headers
from tests.helpers import Client
from tests.pharmacy_link.dispensing_helpers import signed_prescription

pytestmark = pytest.mark.usefixtures("demo")


def lienthong(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "api.cli", *args], env=env, capture_output=True, text=True,
                          timeout=300, check=False)


async def row_counts(dsn: str) -> dict[str, int]:
    conn: asyncpg.Connection = await asyncpg.connect(dsn)
    try:
        tables = [r["tablename"] for r in await conn.fetch(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename")]
        return {t: await conn.fetchval(f'SELECT count(*) FROM "{t}"') for t in tables}  # noqa: S608
    finally:
        await conn.close()


@pytest.fixture
def fresh_data_dir() -> Iterator[Path]:
    """Where a new embedded PostgreSQL will live (LIENTHONG_DATA_DIR of the restored installation)."""
    base = Path(tempfile.mkdtemp(prefix="lienthong-restore-"))
    try:
        yield base
    finally:
        if embedded_pg.is_running(base):
            embedded_pg.stop(base)
        shutil.rmtree(base, ignore_errors=True)


async def test_backup_restores_into_a_fresh_embedded_database_with_every_row_and_a_verifiable_prescription(
        client: Client, pool: asyncpg.Pool, settings: Settings, database: db.DatabaseTarget, fresh_data_dir: Path,
        tmp_path: Path) -> None:
    rx = await signed_prescription(client, pool, settings)
    hoa = await staff_headers(pool, settings, "ds.hoa")
    before = (await client.post("/dispensing/verify", headers=hoa, json={"code": rx["code"]})).json()
    assert before["signature_valid"] is True

    # backup of the running installation (here one on DATABASE_URL, as the schema owner)
    dump = tmp_path / "lienthong.dump"
    source_env = server_env(settings, DATABASE_URL=database.admin_dsn)
    made = await asyncio.to_thread(lienthong, source_env, "backup", str(dump))
    assert made.returncode == 0, made.stderr
    assert dump.stat().st_size > 10_000
    assert stat.S_IMODE(dump.stat().st_mode) == 0o600  # it holds patient data
    assert database.admin_dsn.split("@")[0].rsplit(":", 1)[1] not in made.stdout + made.stderr

    # restore into a new installation: the embedded database of a fresh LIENTHONG_DATA_DIR (README's commands)
    target_env = {k: v for k, v in source_env.items() if k != "DATABASE_URL"}
    target_env["LIENTHONG_DATA_DIR"] = str(fresh_data_dir)
    restored = await asyncio.to_thread(lienthong, target_env, "restore", str(dump))
    assert restored.returncode == 0, restored.stdout + restored.stderr
    cluster = await asyncio.to_thread(embedded_pg.ensure_running, fresh_data_dir)

    source_counts = await row_counts(database.admin_dsn)
    restored_counts = await row_counts(cluster.admin_dsn())
    assert restored_counts == source_counts
    assert source_counts["prescriptions"] >= 1 and source_counts["audit_log"] >= 1

    # restoring over a database that holds data is refused unless asked for
    again = await asyncio.to_thread(lienthong, target_env, "restore", str(dump))
    assert again.returncode == 2
    assert "not empty" in again.stdout
    assert await row_counts(cluster.admin_dsn()) == source_counts

    # the restored installation works: the app starts on it and the signed prescription still verifies
    restored_settings = with_overrides(settings, database_url=cluster.app_dsn())
    async with AsyncTestClient(create_app(restored_settings)) as restored_client:
        after = await restored_client.post("/dispensing/verify", headers=hoa, json={"code": rx["code"]})
        assert after.status_code == 200, after.text
        assert after.json()["signature_valid"] is True
        assert after.json()["prescription_id"] == before["prescription_id"]
    # ... and the audit log is still append-only for the application
    app_conn: asyncpg.Connection = await asyncpg.connect(cluster.app_dsn())
    try:
        with pytest.raises(asyncpg.PostgresError):
            await app_conn.execute("DELETE FROM audit_log")
    finally:
        await app_conn.close()
    print(f"\nbackup {dump.stat().st_size:,} bytes; {len(source_counts)} tables, "
          f"{sum(source_counts.values()):,} rows restored identically")
