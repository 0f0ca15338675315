"""Two API instances on one database: the participants of a call may land on different ones (after a redeploy or
a reconnect), and signaling crosses between them through PostgreSQL LISTEN/NOTIFY."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import asyncpg
import pytest

from api.settings import Settings
from rtc import db as rtc_db
from rtc.bus import INLINE_LIMIT_BYTES
from rtc.hub import INSTANCE_STALE_S
from tests.consultations.factories import make_consultation
from tests.rtc.conftest import Server, doctor_token, join_token, participant, patient_token, serve_here

pytestmark = pytest.mark.usefixtures("demo")


@pytest.fixture
async def second_server(settings: Settings) -> AsyncIterator[Server]:
    async with serve_here(settings) as running:
        yield running


async def test_a_call_crosses_instances_and_big_messages_go_through_the_outbox(
        server: Server, second_server: Server, pool: asyncpg.Pool, settings: Settings) -> None:
    consultation_id = await make_consultation(pool)
    doctor_jt = await join_token(server, await doctor_token(pool, settings), consultation_id)
    patient_jt = await join_token(second_server, await patient_token(pool, settings), consultation_id)
    assert server.hub.instance_id != second_server.hub.instance_id

    async with participant(server, consultation_id, doctor_jt) as doctor, \
            participant(second_server, consultation_id, patient_jt) as patient:
        joined = patient.joined
        assert joined["peers"] == ["doctor"]
        assert await doctor.expect("peer-joined") == {"type": "peer-joined", "role": "patient", "reconnected": False}

        small = "v=0\r\n" + "a=x\r\n" * 100
        await patient.send({"type": "offer", "sdp": small})
        assert (await doctor.expect("offer"))["sdp"] == small
        # a browser offer with many codecs and candidates can pass NOTIFY's 8000-byte limit
        big = "v=0\r\n" + "a=candidate:1 1 udp 2122260223 10.0.0.1 50000 typ host – Việt\r\n" * 400
        assert len(big.encode()) > 3 * INLINE_LIMIT_BYTES
        await doctor.send({"type": "answer", "sdp": big})
        assert (await patient.expect("answer"))["sdp"] == big
        assert await pool.fetchval("SELECT count(*) FROM rtc_signal_outbox") >= 1
        # order survives the outbox: the small frame sent right after the big one arrives after it
        await doctor.send({"type": "offer", "sdp": big})
        await doctor.send({"type": "media-state", "audio": True, "video": False})
        assert (await patient.recv())["type"] == "offer"
        assert (await patient.recv())["type"] == "media-state"

        await doctor.send({"type": "end"})
        assert (await patient.expect("ended"))["by"] == "doctor"
        assert await patient.closed_with() == 4410


async def test_a_reconnect_to_another_instance_replaces_the_old_socket(
        server: Server, second_server: Server, pool: asyncpg.Pool, settings: Settings) -> None:
    consultation_id = await make_consultation(pool)
    doctor_jt = await join_token(server, await doctor_token(pool, settings), consultation_id)
    first_jt = await join_token(server, await patient_token(pool, settings), consultation_id)
    again_jt = await join_token(second_server, await patient_token(pool, settings), consultation_id)
    async with participant(server, consultation_id, doctor_jt) as doctor, \
            participant(server, consultation_id, first_jt) as on_wifi:
        await doctor.expect("peer-joined")
        async with participant(second_server, consultation_id, again_jt) as on_4g:
            assert on_4g.joined["resumed"] is True
            assert await on_wifi.closed_with() == 4409
            assert (await doctor.expect("peer-joined"))["reconnected"] is True
            await doctor.send({"type": "offer", "sdp": "v=0 to the new instance"})
            assert (await on_4g.expect("offer"))["sdp"] == "v=0 to the new instance"


async def test_signaling_recovers_when_the_listener_connection_is_killed(
        server: Server, second_server: Server, pool: asyncpg.Pool, settings: Settings) -> None:
    killed = await pool.fetchval(
        """SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
           WHERE application_name = 'lienthong-rtc-listener' AND datname = current_database()""")
    assert killed == 2
    async with asyncio.timeout(10):
        while True:
            if server.hub.bus.reconnects and second_server.hub.bus.reconnects:
                break
            await asyncio.sleep(0.05)

    consultation_id = await make_consultation(pool)
    doctor_jt = await join_token(server, await doctor_token(pool, settings), consultation_id)
    patient_jt = await join_token(second_server, await patient_token(pool, settings), consultation_id)
    async with participant(server, consultation_id, doctor_jt) as doctor, \
            participant(second_server, consultation_id, patient_jt) as patient:
        await doctor.expect("peer-joined")  # crossed the re-established LISTEN
        await doctor.send({"type": "offer", "sdp": "v=0 after reconnect"})
        assert (await patient.expect("offer"))["sdp"] == "v=0 after reconnect"


async def test_an_instance_taken_for_dead_while_stalled_takes_its_open_sockets_back(
        server: Server, pool: asyncpg.Pool, settings: Settings) -> None:
    consultation_id = await make_consultation(pool)
    doctor_jt = await join_token(server, await doctor_token(pool, settings), consultation_id)
    patient_jt = await join_token(server, await patient_token(pool, settings), consultation_id)
    async with participant(server, consultation_id, doctor_jt) as doctor, \
            participant(server, consultation_id, patient_jt) as patient:
        await doctor.expect("peer-joined")
        # this instance went silent (a stalled event loop) and another one's sweep marked its participants away
        await pool.execute("UPDATE rtc_instances SET seen_at = now() - interval '1 minute' WHERE instance_id = $1",
                           server.hub.instance_id)
        async with pool.acquire() as conn:
            marked = await rtc_db.mark_orphans_away(conn, INSTANCE_STALE_S)
        assert {o.role for o in marked if o.consultation_id == consultation_id} == {"doctor", "patient"}
        # its next round finds both sockets still open: present again, and each side is told
        assert await doctor.expect("peer-joined", within_s=5) == {"type": "peer-joined", "role": "patient",
                                                                  "reconnected": True}
        assert (await patient.expect("peer-joined", within_s=5))["role"] == "doctor"
        states = await pool.fetch("SELECT state FROM rtc_presence WHERE consultation_id = $1", consultation_id)
        assert [r["state"] for r in states] == ["connected", "connected"]
        await patient.send({"type": "offer", "sdp": "v=0"})
        assert (await doctor.expect("offer"))["sdp"] == "v=0"  # the call goes on
