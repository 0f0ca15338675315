"""The signaling WebSocket as the apps use it: joining, relaying, chat, reconnecting, ending, and who is turned away
with which close code."""

from __future__ import annotations

import asyncio
import contextlib
from uuid import UUID

import asyncpg
import pytest
from websockets.exceptions import ConnectionClosed

from api.settings import Settings
from tests.consultations.factories import make_consultation
from tests.rtc.conftest import (
    OTHER_PATIENT,
    Server,
    doctor_token,
    join_token,
    participant,
    patient_token,
)

pytestmark = pytest.mark.usefixtures("demo")


async def _tokens(server: Server, pool: asyncpg.Pool, settings: Settings, consultation_id: UUID) -> tuple[str, str]:
    """(doctor's, patient's) join tokens."""
    return (await join_token(server, await doctor_token(pool, settings), consultation_id),
            await join_token(server, await patient_token(pool, settings), consultation_id))


async def _events(pool: asyncpg.Pool, consultation_id: UUID) -> list[str]:
    rows = await pool.fetch("SELECT kind FROM consultation_events WHERE consultation_id = $1 ORDER BY id",
                            consultation_id)
    return [r["kind"] for r in rows]


async def test_later_joiner_sees_the_peer_and_frames_are_relayed_with_their_sender(
        server: Server, pool: asyncpg.Pool, settings: Settings) -> None:
    consultation_id = await make_consultation(pool)
    doctor_jt, patient_jt = await _tokens(server, pool, settings, consultation_id)

    async with participant(server, consultation_id, doctor_jt) as doctor:
        first = doctor.joined
        assert (first["role"], first["peers"], first["polite"]) == ("doctor", [], True)
        assert first["call"]["status"] == "booked" and first["call"]["max_end_at"].endswith("+07:00")
        async with participant(server, consultation_id, patient_jt) as patient:
            second = patient.joined
            assert (second["role"], second["peers"], second["polite"]) == ("patient", ["doctor"], False)
            # both are in the room for the first time: the call has started
            assert second["call"]["status"] == "in_call" and second["call"]["started_at"].endswith("+07:00")
            assert await doctor.expect("peer-joined") == {"type": "peer-joined", "role": "patient",
                                                          "reconnected": False}

            await patient.send({"type": "offer", "sdp": "v=0 offer", "negotiation_id": "n1"})
            assert await doctor.expect("offer") == {"type": "offer", "from": "patient", "sdp": "v=0 offer",
                                                    "negotiation_id": "n1"}
            await doctor.send({"type": "answer", "sdp": "v=0 answer"})
            assert (await patient.expect("answer"))["sdp"] == "v=0 answer"
            candidate = {"type": "ice-candidate", "candidate": "candidate:1 1 udp 2122260223 127.0.0.1 50000 typ host",
                         "sdpMid": "0", "sdpMLineIndex": 0, "usernameFragment": "abcd"}
            await doctor.send(candidate)
            assert await patient.expect("ice-candidate") == {**candidate, "from": "doctor"}
            await doctor.send({"type": "ice-candidate", "candidate": None})  # end of candidates
            assert (await patient.expect("ice-candidate"))["candidate"] is None
            await patient.send({"type": "media-state", "audio": False, "video": True})
            assert await doctor.expect("media-state") == {"type": "media-state", "from": "patient", "audio": False,
                                                          "video": True, "screen": False}
            await patient.send({"type": "ping"})
            assert await patient.expect("pong") == {"type": "pong"}

    status = await pool.fetchval("SELECT status FROM consultations WHERE id = $1", consultation_id)
    assert status == "in_call"  # dropping the sockets does not end the consultation
    assert (await _events(pool, consultation_id))[:3] == ["call.joined", "call_started", "call.joined"]


async def test_sending_before_the_other_side_joined_is_peer_not_present(
        server: Server, pool: asyncpg.Pool, settings: Settings) -> None:
    consultation_id = await make_consultation(pool)
    _, patient_jt = await _tokens(server, pool, settings, consultation_id)
    async with participant(server, consultation_id, patient_jt) as patient:
        await patient.send({"type": "offer", "sdp": "v=0"})
        error = await patient.expect("error")
        assert error["code"] == "peer-not-present"
    assert await pool.fetchval("SELECT status FROM consultations WHERE id = $1", consultation_id) == "booked"


async def _expire(pool: asyncpg.Pool, token: str) -> None:
    await pool.execute("""UPDATE call_join_tokens SET issued_at = now() - interval '2 minutes',
                                                      expires_at = now() - interval '1 minute'
                          WHERE jti = $1""", UUID(token.split(".", maxsplit=1)[0]))


@pytest.mark.parametrize(("case", "code", "reason"), [
    ("garbage", 4401, "invalid join token"),
    ("forged_secret", 4401, "invalid join token"),
    ("expired", 4401, "join token expired"),
    ("reused", 4401, "join token already used"),
    ("other_consultation", 4403, "token is for another consultation"),
    ("unknown_consultation", 4404, "no such consultation"),
    ("doctor_reassigned", 4403, "not a participant of this consultation"),
    ("cancelled_meanwhile", 4410, "consultation is cancelled_by_patient"),
])
async def test_refused_joins_close_with_the_right_code_and_are_audited(
        server: Server, pool: asyncpg.Pool, settings: Settings, case: str, code: int, reason: str) -> None:
    consultation_id = await make_consultation(pool)
    room = consultation_id
    token = await join_token(server, await doctor_token(pool, settings), consultation_id)
    if case == "garbage":
        token = "not-a-token"
    elif case == "forged_secret":
        token = token.split(".")[0] + "." + "A" * 43
    elif case == "expired":
        await _expire(pool, token)
    elif case == "reused":
        async with participant(server, consultation_id, token) as first:
            assert first.joined["role"] == "doctor"
    elif case == "other_consultation":
        room = await make_consultation(pool, doctor_username="bs.minh", patient_phone=OTHER_PATIENT)
    elif case == "unknown_consultation":
        room = UUID("00000000-0000-4000-8000-000000000000")
    elif case == "doctor_reassigned":
        await pool.execute("""UPDATE consultations SET doctor_id = (SELECT d.account_id FROM doctors d
                                JOIN accounts a ON a.id = d.account_id WHERE a.username = 'bs.minh') WHERE id = $1""",
                           consultation_id)
    elif case == "cancelled_meanwhile":
        await pool.execute("UPDATE consultations SET status = 'cancelled_by_patient' WHERE id = $1", consultation_id)

    async with participant(server, room, token, admitted=False) as refused:
        assert await refused.closed_with() == code
        assert refused.ws.close_reason == reason

    audited = await pool.fetchrow(
        """SELECT target_id, details FROM audit_log WHERE action = 'rtc.call.join_refused'
           ORDER BY id DESC LIMIT 1""")
    assert audited is not None
    assert (audited["target_id"], audited["details"]) == (str(room), {"close_code": code, "reason": reason})


@pytest.mark.parametrize(("first_frame", "reason"), [
    ('{"type": "ping"}', "the first frame must be a valid join"),
    ("not json", "the first frame must be a valid join"),
    (b"\x00binary", "the first frame must be a valid join"),
    (None, "send join first, within 0.3 s"),
])
async def test_a_socket_that_does_not_join_first_is_closed_4400(server: Server, pool: asyncpg.Pool,
                                                                first_frame: str | bytes | None,
                                                                reason: str) -> None:
    server.hub.first_frame_timeout_s = 0.3
    consultation_id = await make_consultation(pool)
    async with participant(server, consultation_id, None) as stranger:
        if first_frame is not None:
            await stranger.ws.send(first_frame)
        assert await stranger.closed_with() == 4400
        assert stranger.ws.close_reason == reason


async def test_two_sockets_racing_with_one_token_admit_exactly_one(server: Server, pool: asyncpg.Pool,
                                                                   settings: Settings) -> None:
    consultation_id = await make_consultation(pool)
    token = await join_token(server, await patient_token(pool, settings), consultation_id)

    async def attempt() -> str:
        async with participant(server, consultation_id, token, admitted=False) as p:
            try:
                return str((await p.recv())["type"])
            except ConnectionClosed:
                return str(p.ws.close_code)

    assert sorted(await asyncio.gather(attempt(), attempt())) == ["4401", "joined"]


async def test_only_the_doctor_ends_the_call_and_both_sides_are_told(server: Server, pool: asyncpg.Pool,
                                                                     settings: Settings) -> None:
    consultation_id = await make_consultation(pool)
    doctor_jt, patient_jt = await _tokens(server, pool, settings, consultation_id)
    async with participant(server, consultation_id, doctor_jt) as doctor, \
            participant(server, consultation_id, patient_jt) as patient:
        await doctor.expect("peer-joined")

        await patient.send({"type": "end"})
        assert (await patient.expect("error"))["code"] == "forbidden"
        assert await pool.fetchval("SELECT status FROM consultations WHERE id = $1", consultation_id) == "in_call"

        await doctor.send({"type": "end", "reason": "completed"})
        for side in (doctor, patient):
            assert await side.expect("ended") == {"type": "ended", "by": "doctor", "reason": "completed"}
            assert await side.closed_with() == 4410

    row = await pool.fetchrow("SELECT status, call_ended_at FROM consultations WHERE id = $1", consultation_id)
    assert row is not None and row["status"] == "completed" and row["call_ended_at"] is not None
    assert await pool.fetchval("SELECT count(*) FROM rtc_presence WHERE consultation_id = $1", consultation_id) == 0
    assert await _events(pool, consultation_id) == ["call.joined", "call_started", "call.joined", "completed"]


async def test_completing_from_the_notes_lets_the_patient_still_in_the_room_go(server: Server, pool: asyncpg.Pool,
                                                                              settings: Settings) -> None:
    import httpx

    consultation_id = await make_consultation(pool)
    access = await doctor_token(pool, settings)
    doctor_jt, patient_jt = await _tokens(server, pool, settings, consultation_id)
    async with participant(server, consultation_id, doctor_jt) as doctor, \
            participant(server, consultation_id, patient_jt) as patient:
        await doctor.expect("peer-joined")
        await doctor.send({"type": "leave"})  # the doctor goes to write the notes; the patient stays
        assert (await patient.expect("peer-left"))["reason"] == "left"
        async with httpx.AsyncClient(base_url=server.base_url) as http:
            done = await http.post(f"/consultations/{consultation_id}/complete",
                                   headers={"Authorization": f"Bearer {access}"})
        assert done.status_code == 200, done.text
        assert await patient.expect("ended") == {"type": "ended", "by": "doctor", "reason": "completed"}
        assert await patient.closed_with() == 4410
    assert await pool.fetchval("SELECT count(*) FROM rtc_presence WHERE consultation_id = $1", consultation_id) == 0


async def test_a_token_issued_before_the_end_cannot_reopen_the_call(server: Server, pool: asyncpg.Pool,
                                                                    settings: Settings) -> None:
    consultation_id = await make_consultation(pool)
    doctor_jt, patient_jt = await _tokens(server, pool, settings, consultation_id)
    async with participant(server, consultation_id, doctor_jt) as doctor:
        await doctor.send({"type": "end"})
        assert (await doctor.expect("error"))["code"] == "invalid-state"  # the patient never came: nothing to end
        await pool.execute("UPDATE consultations SET status = 'in_call', call_started_at = now() WHERE id = $1",
                           consultation_id)
        await doctor.send({"type": "end"})
        await doctor.expect("ended")
    async with participant(server, consultation_id, patient_jt, admitted=False) as late:
        assert await late.closed_with() == 4410


async def test_a_second_connection_of_the_same_role_replaces_the_first(server: Server, pool: asyncpg.Pool,
                                                                       settings: Settings) -> None:
    consultation_id = await make_consultation(pool)
    doctor_jt, patient_jt = await _tokens(server, pool, settings, consultation_id)
    patient_again = await join_token(server, await patient_token(pool, settings), consultation_id)
    async with participant(server, consultation_id, doctor_jt) as doctor, \
            participant(server, consultation_id, patient_jt) as on_wifi:
        await doctor.expect("peer-joined")
        async with participant(server, consultation_id, patient_again) as on_4g:
            joined = on_4g.joined
            assert joined["resumed"] is True and joined["peers"] == ["doctor"]
            assert await on_wifi.closed_with() == 4409
            assert await doctor.expect("peer-joined") == {"type": "peer-joined", "role": "patient",
                                                          "reconnected": True}
            await on_4g.send({"type": "offer", "sdp": "v=0 from 4g"})
            assert (await doctor.expect("offer"))["sdp"] == "v=0 from 4g"


async def test_a_dropped_participant_resumes_within_the_grace_period(server: Server, pool: asyncpg.Pool,
                                                                     settings: Settings) -> None:
    consultation_id = await make_consultation(pool)
    doctor_jt, patient_jt = await _tokens(server, pool, settings, consultation_id)
    async with participant(server, consultation_id, doctor_jt) as doctor:
        async with participant(server, consultation_id, patient_jt) as patient:
            await doctor.expect("peer-joined")
        # the patient's network dropped (no leave): the doctor is told at once, the call goes on
        assert await doctor.expect("peer-left") == {"type": "peer-left", "role": "patient", "reason": "disconnected"}
        await doctor.send({"type": "offer", "sdp": "v=0"})
        assert (await doctor.expect("error"))["code"] == "peer-not-present"

        rejoin = await join_token(server, await patient_token(pool, settings), consultation_id)
        async with participant(server, consultation_id, rejoin) as patient:
            joined = patient.joined
            assert (joined["resumed"], joined["peers"], joined["call"]["status"]) == (True, ["doctor"], "in_call")
            assert await doctor.expect("peer-joined") == {"type": "peer-joined", "role": "patient",
                                                          "reconnected": True}
            await patient.send({"type": "offer", "sdp": "v=0 ice restart"})
            assert (await doctor.expect("offer"))["sdp"] == "v=0 ice restart"
    assert "call.disconnected" in await _events(pool, consultation_id)
    assert await pool.fetchval("SELECT status FROM consultations WHERE id = $1", consultation_id) == "in_call"


async def test_a_participant_away_longer_than_the_grace_period_is_timed_out(server: Server, pool: asyncpg.Pool,
                                                                          settings: Settings) -> None:
    server.hub.grace_s = 0.5
    consultation_id = await make_consultation(pool)
    doctor_jt, patient_jt = await _tokens(server, pool, settings, consultation_id)
    async with participant(server, consultation_id, doctor_jt) as doctor:
        async with participant(server, consultation_id, patient_jt):
            await doctor.expect("peer-joined")
        assert (await doctor.expect("peer-left"))["reason"] == "disconnected"
        assert await doctor.expect("peer-left", within_s=5) == {"type": "peer-left", "role": "patient",
                                                                "reason": "timeout"}
    # Only the patient's events: the doctor's own socket closing above may be recorded at any moment now.
    patient_events = await pool.fetch(
        """SELECT kind FROM consultation_events WHERE consultation_id = $1 AND details->>'role' = 'patient'
           ORDER BY id""", consultation_id)
    assert [r["kind"] for r in patient_events][-2:] == ["call.disconnected", "call.timed_out"]
    assert await pool.fetchval("SELECT status FROM consultations WHERE id = $1", consultation_id) == "in_call"


async def test_leave_tells_the_other_side_without_ending_the_call(server: Server, pool: asyncpg.Pool,
                                                                  settings: Settings) -> None:
    consultation_id = await make_consultation(pool)
    doctor_jt, patient_jt = await _tokens(server, pool, settings, consultation_id)
    async with participant(server, consultation_id, doctor_jt) as doctor, \
            participant(server, consultation_id, patient_jt) as patient:
        await doctor.expect("peer-joined")
        await patient.send({"type": "leave"})
        assert await patient.closed_with() == 1000
        assert await doctor.expect("peer-left") == {"type": "peer-left", "role": "patient", "reason": "left"}
    assert "call.left" in await _events(pool, consultation_id)
    assert await pool.fetchval(
        "SELECT count(*) FROM audit_log WHERE action = 'rtc.call.left' AND target_id = $1", str(consultation_id)) == 1
    assert await pool.fetchval("SELECT status FROM consultations WHERE id = $1", consultation_id) == "in_call"


async def test_chat_is_kept_and_shown_again_after_a_reconnect(server: Server, pool: asyncpg.Pool,
                                                              settings: Settings) -> None:
    consultation_id = await make_consultation(pool)
    doctor_jt, patient_jt = await _tokens(server, pool, settings, consultation_id)
    async with participant(server, consultation_id, patient_jt) as patient:
        await patient.send({"type": "chat", "text": "Em đến muộn 5 phút ạ"})  # waiting room: no doctor yet
        mine = await patient.expect("chat")
        assert (mine["from"], mine["text"]) == ("patient", "Em đến muộn 5 phút ạ")
        assert mine["at"].endswith("+07:00")
        async with participant(server, consultation_id, doctor_jt) as doctor:
            joined = doctor.joined
            assert [m["text"] for m in joined["chat"]] == ["Em đến muộn 5 phút ạ"]
            await patient.expect("peer-joined")
            await doctor.send({"type": "chat", "text": "Không sao, chị cứ từ từ."})
            assert (await patient.expect("chat"))["text"] == "Không sao, chị cứ từ từ."
            assert (await doctor.expect("chat"))["from"] == "doctor"  # the sender's copy: it was kept

    rejoin = await join_token(server, await patient_token(pool, settings), consultation_id)
    async with participant(server, consultation_id, rejoin) as patient:
        joined = patient.joined
        assert [(m["from"], m["text"]) for m in joined["chat"]] == [
            ("patient", "Em đến muộn 5 phút ạ"), ("doctor", "Không sao, chị cứ từ từ.")]


async def test_quality_samples_are_kept_from_the_socket_and_from_rest(server: Server, pool: asyncpg.Pool,
                                                                      settings: Settings) -> None:
    import httpx

    consultation_id = await make_consultation(pool)
    access = await patient_token(pool, settings)
    patient_jt = await join_token(server, access, consultation_id)
    async with participant(server, consultation_id, patient_jt) as patient:
        await patient.send({"type": "quality", "rtt_ms": 120.5, "jitter_ms": 8, "loss_pct": 1.5, "out_kbps": 600,
                            "in_kbps": 580, "quality_limitation": "bandwidth"})
        await patient.send({"type": "quality", "rtt_ms": -1})  # impossible figures are refused, not stored
        assert (await patient.expect("error"))["code"] == "invalid-message"
    async with httpx.AsyncClient(base_url=server.base_url) as http:
        posted = await http.post(f"/consultations/{consultation_id}/quality", json={"rtt_ms": 95, "loss_pct": 0},
                                 headers={"Authorization": f"Bearer {access}"})
        assert posted.status_code == 204
        stranger = await http.post(f"/consultations/{consultation_id}/quality", json={"rtt_ms": 1}, headers={
            "Authorization": f"Bearer {await patient_token(pool, settings, OTHER_PATIENT)}"})
        assert stranger.status_code == 404
    rows = await pool.fetch("""SELECT role, rtt_ms, loss_pct, quality_limitation FROM call_quality_samples
                               WHERE consultation_id = $1 ORDER BY id""", consultation_id)
    assert [tuple(r) for r in rows] == [("patient", 120.5, 1.5, "bandwidth"), ("patient", 95.0, 0.0, None)]


async def test_bad_frames_get_errors_and_never_disturb_another_room(server: Server, pool: asyncpg.Pool,
                                                                    settings: Settings) -> None:
    noisy_id = await make_consultation(pool)
    quiet_id = await make_consultation(pool, doctor_username="bs.minh", patient_phone=OTHER_PATIENT)
    noisy_doctor_jt, noisy_patient_jt = await _tokens(server, pool, settings, noisy_id)
    quiet_doctor_jt = await join_token(server, await doctor_token(pool, settings, "bs.minh"), quiet_id)
    quiet_patient_jt = await join_token(server, await patient_token(pool, settings, OTHER_PATIENT), quiet_id)

    async with participant(server, noisy_id, noisy_doctor_jt) as noisy, \
            participant(server, noisy_id, noisy_patient_jt) as noisy_peer, \
            participant(server, quiet_id, quiet_doctor_jt) as quiet_doctor, \
            participant(server, quiet_id, quiet_patient_jt) as quiet_patient:
        await noisy.expect("peer-joined")
        await quiet_doctor.expect("peer-joined")

        bad_frames: list[tuple[str | bytes, str]] = [
            ("{not json", "invalid-message"),
            ('{"type": "teleport"}', "invalid-message"),
            ('{"type": "offer"}', "invalid-message"),
            ('{"type": "offer", "sdp": 42}', "invalid-message"),
            ('["offer"]', "invalid-message"),
            (b"\x89PNG binary", "invalid-message"),
            ('{"type": "join", "token": "again"}', "invalid-message"),
            ('{"type": "chat", "text": "' + "x" * (64 * 1024) + '"}', "message-too-large"),
        ]
        for frame, code in bad_frames:
            await noisy.ws.send(frame)
            error = await noisy.expect("error")
            assert error["code"] == code, (frame[:40], error)
            # the other room relays all along
            await quiet_patient.send({"type": "media-state", "audio": True, "video": False})
            assert (await quiet_doctor.expect("media-state"))["from"] == "patient"

        # after all that the noisy socket still works
        await noisy.send({"type": "offer", "sdp": "v=0 still fine"})
        assert (await noisy_peer.expect("offer"))["sdp"] == "v=0 still fine"


async def test_a_flood_is_rate_limited_per_socket(server: Server, pool: asyncpg.Pool, settings: Settings) -> None:
    consultation_id = await make_consultation(pool)
    _, patient_jt = await _tokens(server, pool, settings, consultation_id)
    async with participant(server, consultation_id, patient_jt) as patient:
        for _ in range(300):
            await patient.send({"type": "ping"})
        replies = []
        with contextlib.suppress(TimeoutError):
            while True:
                replies.append((await patient.recv(within_s=1))["type"])
        # the burst passes; the rest is dropped with one error, not one per frame
        assert 100 <= replies.count("pong") < 150
        assert replies.count("error") == 1
        # once the bucket refills, the same socket works again
        async with asyncio.timeout(5):
            while True:
                await patient.send({"type": "ping"})
                if (await patient.recv())["type"] == "pong":
                    break
