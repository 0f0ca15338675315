"""Call tests run the real app behind uvicorn on 127.0.0.1: in this event loop (fast, and the hub can be reached to
shorten the reconnection grace), or as separate processes when the test is about several instances."""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import aioice.ice
import asyncpg
import httpx
import pytest
import uvicorn
from litestar import Litestar
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from api.app import create_app
from api.auth.principal import Principal, issue_access_token
from api.settings import Settings
from rtc.hub import Hub
from tests.conftest import free_port, server_env, wait_until_ready

PATIENT = "+84912345678"
OTHER_PATIENT = "+84987654321"


@dataclass
class Server:
    base_url: str
    app: Litestar | None = None  # None when it runs in another process

    def ws_url(self, consultation_id: object) -> str:
        return f"{self.base_url.replace('http://', 'ws://')}/ws/consultations/{consultation_id}"

    @property
    def hub(self) -> Hub:
        assert self.app is not None, "the hub of another process is out of reach"
        hub: Hub = self.app.state.rtc_hub
        return hub


@asynccontextmanager
async def serve_here(settings: Settings) -> AsyncIterator[Server]:
    """The app on a socket bound before uvicorn starts, so no other test can take the port in between."""
    app = create_app(settings)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    # uvicorn's default 16 MiB would let 64 KiB+ frames in; the hub answers those up to 1 MiB with an error frame
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on", ws_max_size=2**20))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        async with asyncio.timeout(30):
            while not server.started:
                if task.done():
                    task.result()
                    raise RuntimeError("uvicorn stopped before it started")
                await asyncio.sleep(0.02)
        yield Server(f"http://127.0.0.1:{port}", app)
    finally:
        server.should_exit = True
        await task
        sock.close()


@pytest.fixture
async def server(settings: Settings) -> AsyncIterator[Server]:
    async with serve_here(settings) as running:
        yield running


@pytest.fixture
def two_processes(settings: Settings) -> Iterator[tuple[Server, Server]]:
    """Two uvicorn processes on one database: two instances of the API behind a load balancer."""
    ports = [free_port(), free_port()]
    processes = [subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "--factory", "api.app:create_app", "--host", "127.0.0.1", "--port",
         str(port), "--log-level", "warning", "--ws-max-size", str(2**20)], env=server_env(settings))
        for port in ports]
    servers = [Server(f"http://127.0.0.1:{port}") for port in ports]
    try:
        for running, process in zip(servers, processes, strict=True):
            wait_until_ready(running.base_url, process)
        yield servers[0], servers[1]
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(10)


@pytest.fixture
def loopback(monkeypatch: pytest.MonkeyPatch) -> None:
    """aioice skips 127.0.0.1 when gathering host candidates; in tests that is the only address there is."""
    monkeypatch.setattr(aioice.ice, "get_host_addresses", lambda use_ipv4=True, use_ipv6=True: ["127.0.0.1"])


async def doctor_token(pool: asyncpg.Pool, settings: Settings, username: str = "bs.lan") -> str:
    """An access token from our issuer, as /auth/login would give (TOTP codes are single use, so tests that need
    many sessions mint them)."""
    row = await pool.fetchrow(
        "SELECT a.id, d.facility_id FROM accounts a JOIN doctors d ON d.account_id = a.id WHERE a.username = $1",
        username)
    assert row is not None
    return issue_access_token(Principal(account_id=row["id"], role="doctor", facility_id=row["facility_id"]), settings)


async def patient_token(pool: asyncpg.Pool, settings: Settings, phone: str = PATIENT) -> str:
    row = await pool.fetchrow(
        "SELECT a.id, p.id AS patient_id FROM accounts a JOIN patients p ON p.account_id = a.id WHERE a.phone = $1",
        phone)
    assert row is not None
    return issue_access_token(Principal(account_id=row["id"], role="patient", patient_id=row["patient_id"]), settings)


async def join_token(server: Server, access_token: str, consultation_id: UUID) -> str:
    async with httpx.AsyncClient(base_url=server.base_url) as http:
        response = await http.post(f"/consultations/{consultation_id}/join-token",
                                   headers={"Authorization": f"Bearer {access_token}"})
    assert response.status_code == 201, response.text
    token: str = response.json()["token"]
    return token


class Participant:
    """A signaling client without media: sends frames, reads frames, sees the close code."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.joined: dict[str, Any] = {}

    async def send(self, frame: dict[str, Any]) -> None:
        await self.ws.send(json.dumps(frame))

    async def recv(self, within_s: float = 5) -> dict[str, Any]:
        message: dict[str, Any] = json.loads(await asyncio.wait_for(self.ws.recv(), within_s))
        return message

    async def expect(self, kind: str, within_s: float = 5) -> dict[str, Any]:
        """The next frame, which must be of type ``kind``."""
        message = await self.recv(within_s)
        assert message["type"] == kind, message
        return message

    async def closed_with(self, within_s: float = 5) -> int | None:
        """Read until the server closes; its close code."""
        try:
            async with asyncio.timeout(within_s):
                async for _ in self.ws:
                    pass
        except ConnectionClosed:
            pass
        return self.ws.close_code


@asynccontextmanager
async def participant(server: Server, consultation_id: UUID, token: str | None, *,
                      admitted: bool = True) -> AsyncIterator[Participant]:
    """A socket to the call. With a token it sends join and, when ``admitted``, waits for joined (kept in
    ``.joined``), so participants opened one after the other join in that order."""
    async with connect(server.ws_url(consultation_id), open_timeout=10, max_size=2**21) as ws:
        joining = Participant(ws)
        if token is not None:
            await joining.send({"type": "join", "token": token})
            if admitted:
                joining.joined = await joining.expect("joined", within_s=10)
        yield joining
