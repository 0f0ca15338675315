"""Test infrastructure: one embedded PostgreSQL per run, a fresh database per test cloned from a migrated
template, the SMS sandbox on loopback, and the real app behind Litestar's ASGI test client."""

from __future__ import annotations

import asyncio
import base64
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import httpx
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from api import db, embedded_pg
from api.app import create_app
from api.demo import seed_demo
from api.settings import Settings
from notifications.sms_sandbox import SmsSandbox

TEMPLATE = "lienthong_template"


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[embedded_pg.EmbeddedCluster]:
    base = Path(tempfile.mkdtemp(prefix="lienthong-test-"))
    cluster = embedded_pg.ensure_running(base, durable=False)
    try:
        yield cluster
    finally:
        embedded_pg.stop(base)
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="session")
async def template_db(pg_cluster: embedded_pg.EmbeddedCluster) -> str:
    admin = await asyncpg.connect(pg_cluster.admin_dsn("postgres"))
    try:
        await admin.execute(f"CREATE DATABASE {TEMPLATE}")
    finally:
        await admin.close()
    await db.migrate(pg_cluster.admin_dsn(TEMPLATE))
    return TEMPLATE


def test_settings(database_url: str, sms_url: str, data_dir: Path) -> Settings:
    return Settings(
        mode="demo", database_url=database_url, data_dir=data_dir, jwt_secret="test-jwt-secret-" + "x" * 32,
        data_key=b"k" * 32, otp_pepper=b"p" * 32, sms_gateway_url=sms_url, run_worker=False, run_dispatcher=False,
        db_pool_min=1, db_pool_max=8,
    )


@pytest.fixture(scope="session")
async def demo_template_db(pg_cluster: embedded_pg.EmbeddedCluster, template_db: str) -> str:
    """The migrated template plus the demo data, seeded once per run (argon2 hashing is slow on purpose)."""
    name = f"{TEMPLATE}_demo"
    admin = await asyncpg.connect(pg_cluster.admin_dsn("postgres"))
    try:
        await admin.execute(f"CREATE DATABASE {name} TEMPLATE {template_db}")
    finally:
        await admin.close()
    settings = test_settings(pg_cluster.app_dsn(name), "http://127.0.0.1:9", Path(tempfile.gettempdir()))
    pool = await db.create_pool(db.DatabaseTarget(settings.database_url or "", "", None), settings)
    try:
        assert await seed_demo(pool, settings)
    finally:
        await pool.close()
    return name


@pytest.fixture
async def database(request: pytest.FixtureRequest, pg_cluster: embedded_pg.EmbeddedCluster,
                   template_db: str, demo_template_db: str) -> AsyncIterator[db.DatabaseTarget]:
    """A database of its own for each test: tests may commit, race and fail without touching each other.

    Tests that use the ``demo`` fixture get a copy that already holds the demo data.
    """
    template = demo_template_db if "demo" in request.fixturenames else template_db
    name = f"t_{uuid.uuid4().hex[:16]}"
    admin = await asyncpg.connect(pg_cluster.admin_dsn("postgres"))
    try:
        await admin.execute(f"CREATE DATABASE {name} TEMPLATE {template} STRATEGY FILE_COPY")
        yield db.DatabaseTarget(pg_cluster.app_dsn(name), pg_cluster.admin_dsn(name), None)
        await admin.execute(f"DROP DATABASE {name} WITH (FORCE)")
    finally:
        await admin.close()


@pytest.fixture
async def empty_dsn(pg_cluster: embedded_pg.EmbeddedCluster) -> AsyncIterator[str]:
    """A fresh database that was never migrated, dropped afterwards; the superuser's DSN to it (what an operator
    would configure as DATABASE_URL)."""
    name = f"e_{uuid.uuid4().hex[:16]}"
    admin = await asyncpg.connect(pg_cluster.admin_dsn("postgres"))
    try:
        await admin.execute(f"CREATE DATABASE {name}")
        yield pg_cluster.admin_dsn(name)
        await admin.execute(f"DROP DATABASE {name} WITH (FORCE)")
    finally:
        await admin.close()


@pytest.fixture(scope="session")
def sms_sandbox() -> Iterator[SmsSandbox]:
    with SmsSandbox() as sandbox:
        yield sandbox


@pytest.fixture
def sms(sms_sandbox: SmsSandbox) -> SmsSandbox:
    sms_sandbox.clear()
    return sms_sandbox


@pytest.fixture
def settings(database: db.DatabaseTarget, sms: SmsSandbox, tmp_path: Path) -> Settings:
    return test_settings(database.app_dsn, sms.base_url, tmp_path)


@pytest.fixture
async def pool(database: db.DatabaseTarget, settings: Settings) -> AsyncIterator[asyncpg.Pool]:
    """A pool of the application role, for arranging data and checking what the API stored."""
    pool = await db.create_pool(database, settings)
    yield pool
    await pool.close()


@pytest.fixture
def app(settings: Settings) -> Litestar:
    return create_app(settings)


@pytest.fixture
async def client(app: Litestar) -> AsyncIterator[AsyncTestClient[Litestar]]:
    async with AsyncTestClient(app) as test_client:
        yield test_client


@pytest.fixture
def demo() -> None:
    """Request it to get a database holding the demo clinic, doctors, pharmacy, patients and child (api/demo.py);
    the ``database`` fixture clones it from a template seeded once per run."""


@pytest.fixture(scope="session")
def event_loop_policy() -> asyncio.AbstractEventLoopPolicy:
    return asyncio.DefaultEventLoopPolicy()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def server_env(settings: Settings, **extra: str) -> dict[str, str]:
    """Environment that makes a separate process load the same settings as the in-process app."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("LIENTHONG_", "SMS_", "NATIONAL_RX_", "FCM_", "VNPAY_", "DATABASE_URL"))}
    env.update({
        "LIENTHONG_MODE": settings.mode, "DATABASE_URL": settings.database_url or "",
        "LIENTHONG_DATA_DIR": str(settings.data_dir), "LIENTHONG_JWT_SECRET": settings.jwt_secret,
        "LIENTHONG_DATA_KEY": base64.b64encode(settings.data_key).decode(),
        "LIENTHONG_OTP_PEPPER": base64.b64encode(settings.otp_pepper).decode(),
        "SMS_GATEWAY_URL": settings.sms_gateway_url or "", "LIENTHONG_RUN_WORKER": "false",
        "LIENTHONG_RUN_DISPATCHER": "false", "VNPAY_SANDBOX_PORT": str(settings.vnpay_sandbox_port),
        "FCM_SANDBOX_PORT": str(settings.fcm_sandbox_port), "LIENTHONG_PUBLIC_URL": settings.public_url,
    })
    env.update(extra)
    return env


def wait_until_ready(base_url: str, process: subprocess.Popen[bytes], timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}")
        try:
            if httpx.get(f"{base_url}/health/ready", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise TimeoutError(f"{base_url} not ready after {timeout_s} s")


@pytest.fixture
def live_server_env() -> dict[str, str]:
    """Environment the live server gets on top of this test's settings; a module overrides it to change one."""
    return {}


@pytest.fixture
def live_server(settings: Settings, live_server_env: dict[str, str]) -> Iterator[str]:
    """The app served by uvicorn in its own process on 127.0.0.1, against this test's database."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "--factory", "api.app:create_app", "--host", "127.0.0.1",
         "--port", str(port), "--log-level", "warning"], env=server_env(settings, **live_server_env))
    base_url = f"http://127.0.0.1:{port}"
    try:
        wait_until_ready(base_url, process)
        yield base_url
    finally:
        process.terminate()
        process.wait(10)
