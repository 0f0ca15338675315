"""What the bad-input tests share: the whole platform served by uvicorn in its own process on a database of its own
(a copy of the demo data), kept for a whole test module, and access tokens for each role.

The per-test ``live_server`` fixture of tests/conftest.py starts a server for every test; fuzzing runs thousands of
requests against one server, so these tests start theirs once per module with the same helpers.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import msgspec

from api import db
from api.auth.db import principal_for
from api.auth.principal import issue_access_token
from api.demo import PHARMACY_ID
from api.embedded_pg import EmbeddedCluster
from api.settings import Settings
from tests.conftest import free_port, server_env, test_settings, wait_until_ready

LONG = os.environ.get("LIENTHONG_LONG_TESTS") == "1"

# Who calls: a demo account of each role (README, "Demo accounts"); None is the anonymous caller.
ROLE_LOGINS: Mapping[str, str | None] = {
    "anonymous": None, "patient": "+84912345678", "doctor": "bs.lan", "pharmacist": "ds.hoa", "admin": "admin",
}
TOKEN_TTL_S = 6 * 3600  # outlives the long runs; tokens are minted by our issuer exactly as sign-in does
@dataclass
class LiveServer:
    base_url: str
    settings: Settings
    process: subprocess.Popen[bytes]
    headers: dict[str, dict[str, str]] = field(default_factory=dict)

    @property
    def ws_base(self) -> str:
        return self.base_url.replace("http://", "ws://")

    def alive(self) -> bool:
        """The process still runs and answers its readiness probe."""
        if self.process.poll() is not None:
            return False
        try:
            return httpx.get(f"{self.base_url}/health/ready", timeout=5).status_code == 200
        except httpx.TransportError:
            return False


@asynccontextmanager
async def demo_database(cluster: EmbeddedCluster, template: str) -> AsyncIterator[db.DatabaseTarget]:
    """A database of its own holding a copy of the demo data, dropped afterwards."""
    name = f"f_{uuid.uuid4().hex[:16]}"
    admin = await asyncpg.connect(cluster.admin_dsn("postgres"))
    try:
        await admin.execute(f"CREATE DATABASE {name} TEMPLATE {template} STRATEGY FILE_COPY")
        try:
            yield db.DatabaseTarget(cluster.app_dsn(name), cluster.admin_dsn(name), None)
        finally:
            await admin.execute(f"DROP DATABASE {name} WITH (FORCE)")
    finally:
        await admin.close()


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(10)


def _wait_for_media_worker(url: str, process: subprocess.Popen[bytes], timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the media worker exited with {process.returncode}")
        try:
            if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise TimeoutError(f"media worker at {url} not ready after {timeout_s} s")


@contextmanager
def serve(settings: Settings, *extra_args: str) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """The app under uvicorn in a separate process, as ``lienthong serve`` runs it (without background workers),
    with its aiortc media worker (pre-call tests, recording) in another, ICE on loopback only."""
    quiet = {"LIENTHONG_LOG_LEVEL": "WARNING", "LIENTHONG_MEDIA_LOOPBACK_ONLY": "true"}
    media_port, port = free_port(), free_port()
    media_url, base_url = f"http://127.0.0.1:{media_port}", f"http://127.0.0.1:{port}"
    media = subprocess.Popen(
        [sys.executable, "-m", "api.cli", "media-worker", "--host", "127.0.0.1", "--port", str(media_port)],
        env=server_env(settings, **quiet))
    try:
        process = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "--factory", "api.app:create_app", "--host", "127.0.0.1",
             "--port", str(port), "--log-level", "warning", *extra_args],
            env=server_env(settings, LIENTHONG_MEDIA_WORKER_URL=media_url, **quiet))
        try:
            wait_until_ready(base_url, process)
            _wait_for_media_worker(media_url, media)
            yield base_url, process
        finally:
            _stop(process)
    finally:
        _stop(media)


async def role_headers(pool: asyncpg.Pool, settings: Settings) -> dict[str, dict[str, str]]:
    """Authorization headers per role name, from the same claims sign-in puts in a token (api.auth.db)."""
    headers: dict[str, dict[str, str]] = {}
    for role, login in ROLE_LOGINS.items():
        if login is None:
            headers[role] = {}
            continue
        account_id = await pool.fetchval("SELECT id FROM accounts WHERE username = $1 OR phone = $1", login)
        assert account_id is not None, f"no demo account {login}"
        async with pool.acquire() as conn:
            principal = await principal_for(conn, account_id)
        headers[role] = {"Authorization": f"Bearer {issue_access_token(principal, settings, TOKEN_TTL_S)}"}
    return headers


@asynccontextmanager
async def live_demo_server(cluster: EmbeddedCluster, template: str, sms_url: str, data_dir: Path,
                           *uvicorn_args: str) -> AsyncIterator[tuple[LiveServer, asyncpg.Pool]]:
    """The platform with the demo data on a fresh database, and a pool of the app role to look at what it stored."""
    async with demo_database(cluster, template) as target:
        settings = test_settings(target.app_dsn, sms_url, data_dir)
        pool = await db.create_pool(target, settings)
        try:
            with serve(settings, *uvicorn_args) as (base_url, process):
                server = LiveServer(base_url, settings, process, await role_headers(pool, settings))
                yield server, pool
        finally:
            await pool.close()


def problem_defects(status: int, content_type: str, body: bytes) -> list[str]:
    """What keeps a 4xx answer from being a usable RFC 9457 problem document (api/errors.py); empty when it is."""
    defects: list[str] = []
    if not content_type.startswith("application/problem+json"):
        defects.append(f"content-type {content_type!r}, not application/problem+json")
    try:
        problem: Any = msgspec.json.decode(body)
    except msgspec.DecodeError:
        return [*defects, f"body is not JSON: {body[:120]!r}"]
    if not isinstance(problem, dict):
        return [*defects, f"body is not a JSON object: {body[:120]!r}"]
    kind = problem.get("type")
    if not (isinstance(kind, str) and kind.startswith("/problems/")):
        defects.append(f"type {kind!r} is not a /problems/... URI")
    if not isinstance(problem.get("title"), str) or not isinstance(problem.get("detail"), str):
        defects.append("title or detail missing")
    if problem.get("status") != status:
        defects.append(f"status member {problem.get('status')!r} differs from HTTP {status}")
    if status == 422 and kind == "/problems/validation-error":
        errors = problem.get("errors")
        if not (isinstance(errors, list) and errors and all(isinstance(e, dict) and e.get("path") for e in errors)):
            defects.append(f"validation problem without field paths: {problem.get('errors')!r}")
    return defects


# Where the fuzzer may find a real id for a path parameter: the first row of each (the world arranged below adds
# a consultation, a signed prescription and what hangs off them). Parameters with no row keep random values only.
_ID_LOOKUPS: Mapping[str, str] = {
    "patient_id": "SELECT p.id FROM patients p JOIN accounts a ON a.id = p.account_id WHERE a.phone = '+84912345678'",
    "doctor_id": "SELECT a.id FROM doctors d JOIN accounts a ON a.id = d.account_id WHERE a.username = 'bs.lan'",
    "drug_id": "SELECT id FROM drugs ORDER BY inn LIMIT 1",
    "device_id": "SELECT id FROM push_devices LIMIT 1",
    "notification_id": "SELECT id FROM notification_outbox LIMIT 1",
    "key_id": "SELECT id FROM pharmacy_api_keys LIMIT 1",
    "exception_id": "SELECT id FROM availability_exceptions LIMIT 1",
    "dose_id": "SELECT id FROM vaccination_doses LIMIT 1",
    "dispense_id": "SELECT id FROM dispenses LIMIT 1",
    "payment_id": "SELECT id FROM payments LIMIT 1",
    "session_id": "SELECT id FROM precall_tests LIMIT 1",
}


async def arrange_world(server: LiveServer, pool: asyncpg.Pool) -> dict[str, str]:
    """A consultation in its call with a signed prescription (through the API, as the console does), then a real id
    for every path parameter that has one, so fuzzed requests also reach past the 404 of a random id."""
    from tests.pharmacy_link.dispensing_helpers import signed_prescription

    async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as http:
        rx = await signed_prescription(http, pool, server.settings)  # type: ignore[arg-type]
        mai = server.headers["patient"]
        device = await http.post("/notifications/devices", headers=mai, json={
            "target_kind": "token", "target": f"fuzz-{uuid.uuid4().hex}", "platform": "android"})
        assert device.status_code in {200, 201}, device.text
    known = {"consultation_id": rx["consultation_id"], "rx_id": rx["id"], "code": rx["code"],
             "pharmacy_id": str(PHARMACY_ID)}
    for name, sql in _ID_LOOKUPS.items():
        found = await pool.fetchval(sql)
        if found is not None:
            known[name] = str(found)
    return known
