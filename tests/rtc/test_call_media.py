"""Whole calls with real media: two aiortc peers sign in, get join tokens over HTTP, meet through our signaling
WebSocket and exchange 640×480 video and audio peer to peer on 127.0.0.1."""

from __future__ import annotations

import asyncio
import time
from uuid import UUID

import asyncpg
import httpx
import pytest

from api.settings import Settings
from load_tests.peers import Peer, pattern_frames
from notifications.sms_sandbox import SmsSandbox
from tests.consultations.factories import make_consultation
from tests.helpers import sign_in_patient, sign_in_staff
from tests.rtc.conftest import PATIENT, Server, doctor_token, join_token, patient_token

pytestmark = pytest.mark.usefixtures("demo", "loopback")

FRAMES = pattern_frames()


async def _call(doctor_server: Server, patient_server: Server, consultation_id: UUID, doctor_access: str,
                patient_access: str) -> tuple[Peer, Peer, float]:
    """The doctor waits in the room, the patient joins and offers; returns both peers once each has decoded
    video and audio from the other, and the patient's join time (monotonic)."""
    doctor = Peer(doctor_server.ws_url(consultation_id),
                  await join_token(doctor_server, doctor_access, consultation_id), FRAMES, ice_servers=[])
    patient = Peer(patient_server.ws_url(consultation_id),
                   await join_token(patient_server, patient_access, consultation_id), FRAMES, ice_servers=[])
    try:
        await doctor.join()
        joined_at = time.monotonic()
        await patient.join()
        async with asyncio.timeout(30):
            await asyncio.gather(doctor.media_flowing.wait(), patient.media_flowing.wait())
    except BaseException:
        await patient.close()
        await doctor.close()
        raise
    return doctor, patient, joined_at


async def _assert_media_both_ways(doctor: Peer, patient: Peer, joined_at: float, label: str) -> None:
    # the media keeps coming on both sides: 20 more frames of each kind (two thirds of a second of video)
    async with asyncio.timeout(10):
        await asyncio.gather(doctor.receive_more(20), patient.receive_more(20))
    for p in (doctor, patient):
        assert p.connected.is_set()
    doctor_ms = 1000 * (doctor.first_frame_at["video"] - joined_at)
    patient_ms = 1000 * (patient.first_frame_at["video"] - joined_at)
    print(f"\n{label}: join → first decoded video: doctor {doctor_ms:.0f} ms, patient {patient_ms:.0f} ms; "
          f"frames doctor {doctor.frames_received}, patient {patient.frames_received}")


async def test_patient_and_doctor_exchange_video_and_audio_through_the_real_server(
        server: Server, sms: SmsSandbox, pool: asyncpg.Pool) -> None:
    consultation_id = await make_consultation(pool)
    async with httpx.AsyncClient(base_url=server.base_url) as http:
        patient_session = await sign_in_patient(http, sms, PATIENT)  # type: ignore[arg-type]
        doctor_session = await sign_in_staff(http, "bs.lan")  # type: ignore[arg-type]

    doctor, patient, joined_at = await _call(server, server, consultation_id, doctor_session["access_token"],
                                             patient_session["access_token"])
    try:
        await _assert_media_both_ways(doctor, patient, joined_at, "one server")
        assert doctor.joined["polite"] is True and patient.joined["peers"] == ["doctor"]
        assert await pool.fetchval("SELECT status FROM consultations WHERE id = $1", consultation_id) == "in_call"
    finally:
        await patient.close()
        await doctor.close()


async def test_the_same_call_with_each_participant_on_a_different_server_process(
        two_processes: tuple[Server, Server], pool: asyncpg.Pool, settings: Settings) -> None:
    first, second = two_processes
    consultation_id = await make_consultation(pool)
    doctor, patient, joined_at = await _call(first, second, consultation_id, await doctor_token(pool, settings),
                                             await patient_token(pool, settings))
    try:
        await _assert_media_both_ways(doctor, patient, joined_at, "two processes")
        instances = await pool.fetch("SELECT role, instance_id FROM rtc_presence WHERE consultation_id = $1",
                                     consultation_id)
        assert len({r["instance_id"] for r in instances}) == 2
        assert doctor.ws is not None
        await doctor.ws.send('{"type": "end"}')
        assert (await patient.expect("ended"))["by"] == "doctor"
    finally:
        await patient.close()
        await doctor.close()
    assert await pool.fetchval("SELECT status FROM consultations WHERE id = $1", consultation_id) == "completed"
