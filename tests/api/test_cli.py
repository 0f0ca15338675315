"""The ``lienthong`` command as a user runs it: real subprocesses, a real embedded PostgreSQL or an external one.

Start-up times are printed (``pytest -s`` shows them), never asserted.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import asyncpg
import httpx
import pytest

from api import embedded_pg
from api.demo import PATIENTS, demo_accounts
from tests.conftest import free_port
from tests.helpers import Client

_ENTRY_POINT = Path(sys.executable).with_name("lienthong")
LIENTHONG = [str(_ENTRY_POINT)] if _ENTRY_POINT.exists() else [sys.executable, "-m", "api.cli"]
FIRST_START_TIMEOUT_S = 180.0  # initdb + migrations + demo data on a slow CI machine
STOP_TIMEOUT_S = 60.0
GUARDIAN_PHONE, GUARDIAN_NAME = PATIENTS[0][0], PATIENTS[0][1]
_OTP = re.compile(r"\b(\d{6})\b")


def cli_env(**extra: str) -> dict[str, str]:
    """This process's environment without any Lienthong configuration, plus ``extra``. The national, FCM and VNPay
    sandboxes get free ports, so a `lienthong serve` a developer left running on the default ones does not fail
    the test."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("LIENTHONG_", "SMS_", "NATIONAL_RX_", "FCM_", "VNPAY_", "DATABASE_URL"))}
    env["PYTHONUNBUFFERED"] = "1"
    env["NATIONAL_RX_SANDBOX_PORT"] = str(free_port())
    env["FCM_SANDBOX_PORT"] = str(free_port())
    env["VNPAY_SANDBOX_PORT"] = str(free_port())
    env.update(extra)
    return env


@pytest.fixture
def data_dir() -> Iterator[Path]:
    """A fresh LIENTHONG_DATA_DIR the postgres OS user can traverse; any embedded cluster in it is stopped after."""
    path = Path(tempfile.mkdtemp(prefix="lienthong-cli-"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        if (path / "pgdata").exists():
            embedded_pg.stop(path)
        shutil.rmtree(path, ignore_errors=True)


async def run_cli(env: dict[str, str], *args: str, stdin: bytes | None = None,
                  timeout_s: float = 120) -> tuple[int, str, str]:
    """Run one ``lienthong`` command to completion; (exit code, stdout, stderr)."""
    process = await asyncio.create_subprocess_exec(
        *LIENTHONG, *args, env=env, stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        out, err = await asyncio.wait_for(process.communicate(stdin), timeout_s)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


def _open_log(path: Path) -> IO[bytes]:
    return path.open("wb")


@dataclass
class Server:
    process: asyncio.subprocess.Process
    base_url: str
    stdout: Path
    stderr: Path
    startup_s: float = 0.0

    def output(self) -> str:
        return self.stdout.read_text()

    def logs(self) -> str:
        return f"--- stdout\n{self.output()}\n--- stderr\n{self.stderr.read_text()}"

    async def stop(self, sig: signal.Signals) -> int:
        self.process.send_signal(sig)
        return await asyncio.wait_for(self.process.wait(), STOP_TIMEOUT_S)


async def _wait_until_ready(server: Server, timeout_s: float) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    async with httpx.AsyncClient(base_url=server.base_url, timeout=2) as http:
        while True:
            if server.process.returncode is not None:
                raise AssertionError(f"lienthong serve exited with {server.process.returncode}\n{server.logs()}")
            try:
                if (await http.get("/health/ready")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if loop.time() > deadline:
                raise AssertionError(f"lienthong serve not ready after {timeout_s} s\n{server.logs()}")
            await asyncio.sleep(0.2)


@asynccontextmanager
async def serving(env: dict[str, str], logs_dir: Path, name: str,
                  timeout_s: float = FIRST_START_TIMEOUT_S) -> AsyncIterator[Server]:
    """``lienthong serve`` on a free port until the block ends; killed if the block did not stop it."""
    port = free_port()
    stdout, stderr = logs_dir / f"{name}.out", logs_dir / f"{name}.err"
    out_file, err_file = _open_log(stdout), _open_log(stderr)
    started = time.monotonic()
    process = await asyncio.create_subprocess_exec(
        *LIENTHONG, "serve", "--port", str(port), env=env, stdin=asyncio.subprocess.DEVNULL, stdout=out_file,
        stderr=err_file)
    server = Server(process, f"http://127.0.0.1:{port}", stdout, stderr)
    try:
        await _wait_until_ready(server, timeout_s)
        server.startup_s = time.monotonic() - started
        yield server
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
        out_file.close()
        err_file.close()


async def sign_in_with_sandbox_inbox(http: httpx.AsyncClient, sms_port: int, phone: str) -> dict[str, Any]:
    """The demo journey: ask for a code, read it from the SMS sandbox's inbox page, exchange it for a session."""
    sent = await http.post("/auth/otp/request", json={"phone": phone})
    assert sent.status_code == 202, sent.text
    inbox = await http.get(f"http://127.0.0.1:{sms_port}/inbox", params={"phone": phone})
    assert inbox.status_code == 200
    match = _OTP.search(inbox.json()["messages"][0]["content"])
    assert match, inbox.text
    verified = await http.post("/auth/otp/verify", json={"phone": phone, "code": match.group(1)})
    assert verified.status_code == 200, verified.text
    session: dict[str, Any] = verified.json()
    return session


def _bearer(session: dict[str, Any]) -> dict[str, str]:
    return {"Authorization": f"Bearer {session['access_token']}"}


async def _tables(dsn: str) -> set[str]:
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
    finally:
        await conn.close()
    return {r["tablename"] for r in rows}


async def test_serve_runs_the_demo_on_an_embedded_database_that_survives_a_restart(
        data_dir: Path, tmp_path: Path) -> None:
    sms_port = free_port()
    env = cli_env(LIENTHONG_DATA_DIR=str(data_dir), SMS_SANDBOX_PORT=str(sms_port),
                  LIENTHONG_OTP_PER_PHONE_PER_MINUTE="5")
    new_address = "45 Lê Lợi, Phường Bến Thành, Quận 1, TP.HCM"

    async with serving(env, tmp_path, "first") as first, httpx.AsyncClient(base_url=first.base_url,
                                                                            timeout=10) as http:
        output = first.output()
        assert "Applied migrations: 0001_foundation.sql" in output
        assert f"Embedded PostgreSQL running, data in {data_dir / 'pgdata'}" in output
        assert "Demo data loaded." in output
        for account in demo_accounts():
            assert account.login in output
        assert f"http://127.0.0.1:{sms_port}/inbox" in output

        docs = await http.get("/docs")
        assert docs.is_redirect
        swagger = await http.get(docs.headers["location"])
        assert swagger.status_code == 200
        assets = re.findall(r"""(?:src|href)=["'](/docs/assets/[^"']+)["']""", swagger.text)
        assert assets, swagger.text
        for asset in assets:
            fetched = await http.get(asset)
            assert fetched.status_code == 200, asset
            assert fetched.content, asset

        schema = await http.get("/schema/openapi.json")
        assert schema.status_code == 200
        assert schema.json()["openapi"].startswith("3.")
        assert "/auth/otp/request" in schema.json()["paths"]

        session = await sign_in_with_sandbox_inbox(http, sms_port, "0912 345 678")
        assert session["new_account"] is False  # the demo patient
        me = await http.get("/me", headers=_bearer(session))
        assert me.json()["full_name"] == GUARDIAN_NAME
        patched = await http.patch("/me/profile", json={"address": new_address}, headers=_bearer(session))
        assert patched.status_code == 200, patched.text

        assert await first.stop(signal.SIGINT) == 0, first.logs()
    assert not embedded_pg.is_running(data_dir), "serve left the embedded PostgreSQL it started running"

    async with serving(env, tmp_path, "second") as second, httpx.AsyncClient(base_url=second.base_url,
                                                                              timeout=10) as http:
        output = second.output()
        assert "Demo data loaded." not in output
        assert "Applied migrations" not in output
        assert f"http://127.0.0.1:{sms_port}/inbox" in output

        # the same secrets and the same rows: yesterday's session still works and the edit is still there
        me = await http.get("/me", headers=_bearer(session))
        assert me.status_code == 200, me.text
        assert me.json()["patient"]["address"] == new_address
        refreshed = await http.post("/auth/refresh", json={"refresh_token": session["refresh_token"]})
        assert refreshed.status_code == 200, refreshed.text
        again = await sign_in_with_sandbox_inbox(http, sms_port, GUARDIAN_PHONE)
        assert again["new_account"] is False
        assert again["account_id"] == session["account_id"]

        # what systemd, Docker and Kubernetes send to stop a service
        exit_code = await second.stop(signal.SIGTERM)

    print(f"\nlienthong serve start-up: first {first.startup_s:.1f} s (initdb, migrations, demo data), "
          f"restart {second.startup_s:.1f} s")
    assert not embedded_pg.is_running(data_dir), "serve left the embedded PostgreSQL running after SIGTERM"
    assert exit_code == 0, second.logs()


async def test_migrate_and_serve_use_database_url_instead_of_an_embedded_database(
        data_dir: Path, tmp_path: Path, empty_dsn: str) -> None:
    env = cli_env(LIENTHONG_DATA_DIR=str(data_dir), DATABASE_URL=empty_dsn, SMS_SANDBOX_PORT=str(free_port()))

    code, out, err = await run_cli(env, "migrate")
    assert code == 0, err
    assert "Applied: 0001_foundation.sql" in out
    assert {"schema_migrations", "accounts", "patients", "consents", "audit_log"} <= await _tables(empty_dsn)

    code, out, err = await run_cli(env, "migrate")
    assert code == 0, err
    assert "up to date" in out

    async with serving(env, tmp_path, "external") as server:
        output = server.output()
        assert "Embedded PostgreSQL" not in output
        assert "Applied migrations" not in output
        assert "Demo data loaded." in output
        conn = await asyncpg.connect(empty_dsn)
        try:
            usernames = {r["username"] for r in await conn.fetch("SELECT username::text FROM accounts")}
        finally:
            await conn.close()
        assert {"bs.lan", "ds.hoa", "admin"} <= usernames
        assert await server.stop(signal.SIGINT) == 0, server.logs()

    assert not (data_dir / "pgdata").exists()
    code, out, _ = await run_cli(env, "db-stop")
    assert code == 2
    assert "DATABASE_URL is set" in out


async def test_createuser_creates_a_staff_account_with_a_hashed_password(data_dir: Path, empty_dsn: str) -> None:
    env = cli_env(LIENTHONG_DATA_DIR=str(data_dir), DATABASE_URL=empty_dsn)
    password = "correct-horse-battery-staple"

    code, out, err = await run_cli(env, "createuser", "--role", "admin", "--username", "ops.thu",
                                   "--full-name", "Võ Minh Thư", "--password-stdin", stdin=f"{password}\n".encode())

    assert code == 0, out + err
    assert "Created admin ops.thu" in out
    conn = await asyncpg.connect(empty_dsn)
    try:
        account = await conn.fetchrow("SELECT * FROM accounts WHERE username = 'ops.thu'")
        audited = await conn.fetchval(
            "SELECT count(*) FROM audit_log WHERE action = 'account.created' AND target_id = $1", str(account["id"]))
    finally:
        await conn.close()
    assert account["role"] == "admin"
    assert account["full_name"] == "Võ Minh Thư"
    assert account["status"] == "active"
    assert account["password_hash"].startswith("$argon2")
    assert password not in account["password_hash"]
    assert audited == 1

    code, out, _ = await run_cli(env, "createuser", "--role", "admin", "--username", "OPS.THU",
                                 "--full-name", "Someone Else", "--password-stdin", stdin=b"another-long-password\n")
    assert code == 2
    assert "taken" in out

    code, out, _ = await run_cli(env, "createuser", "--role", "admin", "--username", "ops.short",
                                 "--full-name", "Short Password", "--password-stdin", stdin=b"short\n")
    assert code == 2
    assert "10 characters" in out


async def test_bad_configuration_stops_the_command_with_the_variable_named(data_dir: Path) -> None:
    env = cli_env(LIENTHONG_DATA_DIR=str(data_dir), LIENTHONG_PORT="eighty")

    code, _, err = await run_cli(env, "migrate")

    assert code == 2
    assert "LIENTHONG_PORT" in err
    assert "Traceback" not in err
    assert not (data_dir / "pgdata").exists()


async def test_api_docs_page_loads_nothing_from_the_internet(client: Client) -> None:
    """Demo installations run offline (and a health app should not leak visits to CDNs): every asset is local."""
    swagger = await client.get("/docs", follow_redirects=True)
    assert swagger.status_code == 200

    external = re.findall(r"""(?:src|href)=["'](https?://[^"']+)["']""", swagger.text)

    assert external == []
