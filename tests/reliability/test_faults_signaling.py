"""A signaling server process killed with SIGKILL during a call (two uvicorn processes on one database, as behind a
load balancer): the participant whose socket it held reconnects to the other process and the call resumes, with the
room's state, the other participant's presence and the chat history. Meanwhile the surviving process notices the
dead one has stopped announcing itself and tells the other participant, as after a network drop."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest

from api.settings import Settings
from rtc.hub import INSTANCE_STALE_S
from tests.consultations.factories import make_consultation
from tests.reliability.fault_support import AppProcess, start_app
from tests.rtc.conftest import Server, doctor_token, join_token, participant, patient_token

pytestmark = pytest.mark.usefixtures("demo")


@pytest.fixture
def two_processes(settings: Settings, tmp_path: Path) -> Iterator[tuple[AppProcess, AppProcess]]:
    first = start_app(settings, log_file=tmp_path / "a.log")
    try:
        second = start_app(settings, log_file=tmp_path / "b.log")
        try:
            yield first, second
        finally:
            second.stop()
    finally:
        first.stop()


async def test_participant_of_a_killed_process_reconnects_to_the_other_and_the_call_resumes(
        two_processes: tuple[AppProcess, AppProcess], pool: asyncpg.Pool, settings: Settings) -> None:
    survivor, doomed = two_processes
    a, b = Server(survivor.base_url), Server(doomed.base_url)
    consultation_id = await make_consultation(pool)
    doctor_jt = await join_token(a, await doctor_token(pool, settings), consultation_id)
    patient_jt = await join_token(b, await patient_token(pool, settings), consultation_id)

    async with participant(a, consultation_id, doctor_jt) as doctor:
        async with participant(b, consultation_id, patient_jt) as patient:
            first_session = patient.joined["session_id"]
            await doctor.expect("peer-joined")
            await patient.send({"type": "chat", "text": "Chào bác sĩ, bé bị sốt từ tối qua."})
            assert (await doctor.expect("chat"))["text"] == "Chào bác sĩ, bé bị sốt từ tối qua."
            await patient.expect("chat")  # the sender's copy: it was kept
            await doctor.send({"type": "chat", "text": "Bé sốt bao nhiêu độ?"})
            await patient.expect("chat")
            await doctor.expect("chat")

            doomed.signal(signal.SIGKILL)
            await asyncio.to_thread(doomed.process.wait, 10)
            code = await patient.closed_with(within_s=5)
            assert code not in (None, 1000)  # dropped abnormally: nobody closed it
        # no process saw the patient's socket close; the survivor notices the dead one has gone silent and tells
        # the doctor, as after a network drop (the reconnect grace period starts)
        started = asyncio.get_running_loop().time()
        assert await doctor.expect("peer-left", within_s=INSTANCE_STALE_S + 5) == {
            "type": "peer-left", "role": "patient", "reason": "disconnected"}
        noticed_s = asyncio.get_running_loop().time() - started
        assert await pool.fetchval("SELECT state FROM rtc_presence WHERE consultation_id = $1 AND role = 'patient'",
                                   consultation_id) == "away"
        status = await pool.fetchval("SELECT status FROM consultations WHERE id = $1", consultation_id)
        assert status == "in_call"

        # the app reconnects to the surviving process (a new join token, as after any drop)
        again_jt = await join_token(a, await patient_token(pool, settings), consultation_id)
        async with participant(a, consultation_id, again_jt) as patient:
            joined = patient.joined
            assert joined["resumed"] is True
            assert joined["session_id"] != first_session
            assert joined["peers"] == ["doctor"]  # the doctor is still in the room
            assert joined["call"]["status"] == "in_call"
            assert [(m["from"], m["text"]) for m in joined["chat"]] == [
                ("patient", "Chào bác sĩ, bé bị sốt từ tối qua."), ("doctor", "Bé sốt bao nhiêu độ?")]
            assert (await doctor.expect("peer-joined")) == {"type": "peer-joined", "role": "patient",
                                                           "reconnected": True}
            # signaling flows again both ways, and the call can end normally
            await doctor.send({"type": "offer", "sdp": "v=0 ice restart"})
            assert (await patient.expect("offer"))["sdp"] == "v=0 ice restart"
            await patient.send({"type": "answer", "sdp": "v=0 answer"})
            assert (await doctor.expect("answer"))["sdp"] == "v=0 answer"
            await doctor.send({"type": "end"})
            assert (await patient.expect("ended"))["by"] == "doctor"
    assert await pool.fetchval("SELECT status FROM consultations WHERE id = $1", consultation_id) == "completed"
    assert await pool.fetchval("SELECT count(*) FROM rtc_presence WHERE consultation_id = $1", consultation_id) == 0
    print(f"\nthe doctor was told the patient's process had died {noticed_s:.1f} s after its socket dropped")
