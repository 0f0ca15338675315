"""Graceful shutdown: SIGTERM to the API (uvicorn, as deployed) lets a request already being handled finish and
commit, refuses new connections, and closes call WebSockets with 1012 (Service Restart) so the apps reconnect, to
another instance behind the load balancer or to this one once it is back."""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import httpx
import pytest

from api.settings import Settings
from tests.consultations.factories import make_consultation
from tests.reliability.fault_support import AppProcess, start_app
from tests.rtc.conftest import PATIENT, Server, doctor_token, join_token, participant, patient_token

pytestmark = pytest.mark.usefixtures("demo")

HELD_S = 1.5  # how long the in-flight request is kept waiting after SIGTERM
SERVICE_RESTART = 1012


@pytest.fixture
def server(settings: Settings, tmp_path: Path) -> Iterator[AppProcess]:
    running = start_app(settings, log_file=tmp_path / "server.log")
    try:
        yield running
    finally:
        running.stop()


async def test_sigterm_finishes_the_request_in_flight_and_tells_call_sockets_to_reconnect(
        server: AppProcess, pool: asyncpg.Pool, settings: Settings) -> None:
    consultation_id = await make_consultation(pool)
    running = Server(server.base_url)
    doctor_jt = await join_token(running, await doctor_token(pool, settings), consultation_id)
    patient_access = await patient_token(pool, settings)
    patient_id = await pool.fetchval(
        "SELECT p.id FROM patients p JOIN accounts a ON a.id = p.account_id WHERE a.phone = $1", PATIENT)

    async with participant(running, consultation_id, doctor_jt) as doctor, \
            httpx.AsyncClient(base_url=server.base_url, timeout=30) as http:
        # The request in flight: it waits on a row lock the test holds, so it is still being handled at SIGTERM.
        async with pool.acquire() as blocker:
            transaction = blocker.transaction()
            await transaction.start()
            await blocker.execute("SELECT 1 FROM patients WHERE id = $1 FOR UPDATE", patient_id)
            in_flight = asyncio.create_task(http.patch(
                "/me/profile", json={"address": "7 Lê Lợi, Quận 1, TP.HCM"},
                headers={"Authorization": f"Bearer {patient_access}"}))
            await asyncio.sleep(0.5)
            assert not in_flight.done()

            server.signal(signal.SIGTERM)
            signalled = time.monotonic()
            # the call socket is told to reconnect at once, not left to time out
            assert await doctor.closed_with(within_s=5) == SERVICE_RESTART
            closed_after = time.monotonic() - signalled
            # no new work is taken on while draining
            with pytest.raises(httpx.TransportError):
                await httpx.AsyncClient(base_url=server.base_url, timeout=2).get("/health/live")
            await asyncio.sleep(HELD_S)
            assert server.process.poll() is None, "the process exited with a request still in flight"
            await transaction.commit()

        response = await in_flight
        assert response.status_code == 200, response.text
        assert response.json()["address"] == "7 Lê Lợi, Quận 1, TP.HCM"

    # uvicorn re-raises SIGTERM once its shutdown (lifespan included) is complete: a clean exit by that signal
    assert await asyncio.to_thread(server.process.wait, 15) in (0, -signal.SIGTERM)
    drained_in = time.monotonic() - signalled
    # what the request did was committed, and the dropped participant keeps their place to rejoin
    assert await pool.fetchval("SELECT address FROM patients WHERE id = $1", patient_id) == "7 Lê Lợi, Quận 1, TP.HCM"
    assert await pool.fetchval(
        "SELECT state FROM rtc_presence WHERE consultation_id = $1 AND role = 'doctor'", consultation_id) == "away"
    print(f"\nSIGTERM: call socket closed 1012 after {closed_after:.3f} s; the request held {HELD_S} s completed; "
          f"process exited after {drained_in:.2f} s")
