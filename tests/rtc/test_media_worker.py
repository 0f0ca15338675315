"""The aiortc media worker through the real stack: the API and the worker as separate processes on 127.0.0.1, and
aiortc test peers that send generated 640×480 video and a tone, as a patient's or doctor's app would.

Figures (join → first echoed frame, echo latency, worker CPU) are printed (``pytest -s``), never asserted.
"""

from __future__ import annotations

import asyncio
import re
import signal
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from uuid import UUID

import asyncpg
import av
import httpx
import pytest

from api.db import DatabaseTarget
from api.demo import PATIENTS
from api.settings import Settings
from notifications.sms_sandbox import SmsSandbox
from rtc.media_worker import PRECALL_COST_PCT, verdict
from tests.api.test_cli import cli_env, serving
from tests.conftest import free_port, server_env
from tests.consultations.factories import make_consultation
from tests.helpers import Client, bearer, sign_in_patient, sign_in_staff
from tests.rtc.media_helpers import AppPeer, app_peer, cpu_seconds, wait_for

pytestmark = pytest.mark.usefixtures("demo", "loopback")

GUARDIAN, OTHER_PATIENT = PATIENTS[0][0], PATIENTS[1][0]
DOCTOR = "bs.lan"  # the doctor of make_consultation's consultations
PROBLEM = "application/problem+json"


@dataclass
class Stack:
    api_url: str
    worker_pid: int
    http: httpx.AsyncClient


async def _ready(url: str, process: asyncio.subprocess.Process, path: str, timeout_s: float = 60) -> None:
    async def answers() -> bool:
        assert process.returncode is None, f"{url} exited with {process.returncode}"
        try:
            async with httpx.AsyncClient(timeout=1) as http:
                return (await http.get(f"{url}{path}")).status_code == 200
        except httpx.TransportError:
            return False

    await wait_for(answers, timeout_s, f"{url}{path}", interval_s=0.1)


@asynccontextmanager
async def media_stack(settings: Settings, **env: str) -> AsyncIterator[Stack]:
    """``lienthong media-worker`` (ICE on loopback only) and the API (uvicorn) as two processes on free ports;
    ``env`` adds settings to both."""
    worker_port, api_port = free_port(), free_port()
    worker_url, api_url = f"http://127.0.0.1:{worker_port}", f"http://127.0.0.1:{api_port}"
    quiet = {"LIENTHONG_LOG_LEVEL": "WARNING", **env}
    worker = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "api.cli", "media-worker", "--host", "127.0.0.1", "--port", str(worker_port),
        env=server_env(settings, LIENTHONG_MEDIA_LOOPBACK_ONLY="true", **quiet))
    api = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "uvicorn", "--factory", "api.app:create_app", "--host", "127.0.0.1", "--port",
        str(api_port), "--log-level", "warning", env=server_env(settings, LIENTHONG_MEDIA_WORKER_URL=worker_url,
                                                                **quiet))
    try:
        await asyncio.gather(_ready(worker_url, worker, "/health"), _ready(api_url, api, "/health/ready"))
        async with httpx.AsyncClient(base_url=api_url, timeout=30) as http:
            yield Stack(api_url, worker.pid, http)
    finally:
        for process in (api, worker):
            if process.returncode is None:
                process.terminate()
        for process in (api, worker):
            await asyncio.wait_for(process.wait(), 20)


def _problem(response: httpx.Response, status: int, slug: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    body: dict[str, Any] = response.json()
    assert body["type"] == f"/problems/{slug}", body
    return body


async def _report_until(http: httpx.AsyncClient, headers: dict[str, str], session_id: str, done: Any,
                        timeout_s: float, what: str) -> dict[str, Any]:
    latest: dict[str, Any] = {}

    async def check() -> bool:
        response = await http.get(f"/rtc/precall/{session_id}", headers=headers)
        assert response.status_code == 200, response.text
        latest.update(response.json())
        return bool(done(latest))

    await wait_for(check, timeout_s, what, interval_s=0.25)
    return latest


# ---------------------------------------------------------------- pre-call test

async def test_precall_echoes_the_patients_own_frames_and_reports_rtt_loss_bitrate_and_a_verdict(
        settings: Settings, sms: SmsSandbox, pool: asyncpg.Pool) -> None:
    async with media_stack(settings) as stack:
        headers = bearer(await sign_in_patient(stack.http, sms, GUARDIAN))
        unusable = await stack.http.post("/rtc/precall", json={"type": "offer", "sdp": "v=0\r\ns=no media\r\n"},
                                         headers=headers)
        assert _problem(unusable, 422, "validation-error")["errors"][0]["path"] == "body.sdp"
        async with app_peer() as peer:
            offer = await peer.offer()
            joined = time.monotonic()
            response = await stack.http.post("/rtc/precall", json=offer, headers=headers)
            assert response.status_code == 201, response.text
            answer = response.json()
            assert answer["type"] == "answer"
            assert "a=candidate:" in answer["sdp"] and "127.0.0.1" in answer["sdp"]  # every candidate inside
            video = answer["sdp"][answer["sdp"].index("m=video"):]
            assert video.split("\r\n")[0].split()[3] == _payload_type(video, "VP8")  # VP8 first
            await peer.accept(answer)

            await wait_for(lambda: "video" in peer.received and peer.received["video"].first.is_set(), 15,
                           "the first echoed video frame")
            first_echo_ms = (peer.received["video"].arrivals[0] - joined) * 1000
            cpu_before, wall_before = cpu_seconds(stack.worker_pid), time.monotonic()
            running = await _report_until(stack.http, headers, answer["session_id"],
                                          lambda r: r["rtt_ms"] is not None and r["upload_kbps"] is not None, 15,
                                          "RTT and bitrate in the report")
            await asyncio.sleep(max(0.0, wall_before + 3 - time.monotonic()))  # a 3 s window for the CPU figure
            worker_cpu = (cpu_seconds(stack.worker_pid) - cpu_before) / (time.monotonic() - wall_before)
            assert running["state"] == "running"
            echoed = _echo_figures(peer)
        # the app hung up (DTLS close): the worker ends the test and the API keeps the final report
        final = await _report_until(stack.http, headers, answer["session_id"], lambda r: r["state"] == "finished",
                                    15, "the finished report")

    assert echoed["frames"] >= 20 and echoed["sizes"] == {(640, 480)}
    assert echoed["matched"] >= 0.9 * echoed["frames"], "echoed frames must be the ones the app sent"
    assert peer.received["audio"].arrivals, "the tone came back too"
    for field in ("rtt_ms", "upload_loss_pct", "download_loss_pct", "jitter_ms", "upload_kbps", "download_kbps"):
        assert isinstance(final[field], int | float) and final[field] >= 0, (field, final)
    assert final["verdict"] in ("good", "audio-only recommended", "too weak")
    assert final["video_frames_echoed"] >= echoed["frames"] and final["audio_frames_echoed"] > 0
    stored = await pool.fetch("SELECT id, status, report FROM precall_tests ORDER BY created_at")
    assert [r["status"] for r in stored] == ["refused", "finished"]  # the unusable offer does not count
    assert stored[1]["id"] == UUID(answer["session_id"]) and stored[1]["report"]["verdict"] == final["verdict"]
    print(f"\nprecall: join → first echoed frame {first_echo_ms:.0f} ms; echo latency p50 {echoed['p50_ms']:.0f} ms "
          f"over {echoed['frames']} frames; worker CPU {worker_cpu * 100:.0f} % of a core; report: "
          f"RTT {final['rtt_ms']} ms, loss up/down {final['upload_loss_pct']}/{final['download_loss_pct']} %, "
          f"up {final['upload_kbps']} kb/s, verdict {final['verdict']!r}")


def _payload_type(media_section: str, codec: str) -> str:
    return next(line.split(":")[1].split()[0] for line in media_section.split("\r\n")
                if line.startswith("a=rtpmap:") and f" {codec}/" in line)


def _echo_figures(peer: AppPeer) -> dict[str, Any]:
    video = peer.received["video"]
    latencies = sorted(arrived - peer.camera.sent_at[stamp] for arrived, stamp in zip(video.arrivals, video.stamps,
                                                                                    strict=True)
                       if stamp in peer.camera.sent_at)
    return {"frames": len(video.arrivals), "sizes": set(video.sizes), "matched": len(latencies),
            "p50_ms": latencies[len(latencies) // 2] * 1000 if latencies else float("nan")}


async def test_doctor_cannot_start_a_precall_test(client: Client) -> None:
    doctor = await sign_in_staff(client, DOCTOR)
    response = await client.post("/rtc/precall", json={"type": "offer", "sdp": "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\n"},
                                 headers=bearer(doctor))
    _problem(response, 403, "forbidden")


async def test_precall_past_the_hourly_limit_is_429_with_retry_after(client: Client, sms: SmsSandbox,
                                                                     pool: asyncpg.Pool, settings: Settings) -> None:
    session = await sign_in_patient(client, sms, GUARDIAN)
    account = await pool.fetchval("SELECT id FROM accounts WHERE phone = $1", GUARDIAN)
    for minutes_ago in range(settings.precall_per_hour):
        await pool.execute(
            """INSERT INTO precall_tests (account_id, status, created_at)
               VALUES ($1, 'running', now() - make_interval(mins => $2))""", account, 10 + minutes_ago)
    # a refused attempt (the worker was full) does not count, and neither does one from two hours ago
    await pool.execute("INSERT INTO precall_tests (account_id, status) VALUES ($1, 'refused')", account)
    await pool.execute("""INSERT INTO precall_tests (account_id, status, created_at)
                          VALUES ($1, 'running', now() - interval '2 hours')""", account)
    response = await client.post("/rtc/precall", json={"type": "offer", "sdp": "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\n"},
                                 headers=bearer(session))
    body = _problem(response, 429, "rate-limited")
    assert 0 < int(response.headers["retry-after"]) <= 3600 and body["retry_after"] > 0


async def test_full_media_worker_refuses_with_503_and_the_refusal_does_not_count(
        settings: Settings, sms: SmsSandbox, pool: asyncpg.Pool) -> None:
    async with media_stack(settings, LIENTHONG_MEDIA_CPU_BUDGET=str(PRECALL_COST_PCT)) as stack:
        first = bearer(await sign_in_patient(stack.http, sms, GUARDIAN))
        second = bearer(await sign_in_patient(stack.http, sms, OTHER_PATIENT))
        async with app_peer() as peer:
            response = await stack.http.post("/rtc/precall", json=await peer.offer(), headers=first)
            assert response.status_code == 201, response.text
            session_id = response.json()["session_id"]
            await peer.accept(response.json())
            await wait_for(lambda: peer.pc.connectionState == "connected", 15, "the first test's connection")
            async with app_peer() as other:
                refused = await stack.http.post("/rtc/precall", json=await other.offer(), headers=second)
                body = _problem(refused, 503, "media-worker-busy")
                assert refused.headers["retry-after"] and body["retry_after"] > 0
        # the first test ended when its app hung up, which frees the worker for the next patient
        await _report_until(stack.http, first, session_id, lambda r: r["state"] == "finished", 15, "first test end")
        async with app_peer() as other:
            response = await stack.http.post("/rtc/precall", json=await other.offer(), headers=second)
            assert response.status_code == 201, response.text
            await other.accept(response.json())
    statuses = await pool.fetch(
        """SELECT a.phone, t.status FROM precall_tests t JOIN accounts a ON a.id = t.account_id
           ORDER BY t.created_at""")
    assert [(r["phone"], r["status"]) for r in statuses] == [
        (GUARDIAN, "finished"), (OTHER_PATIENT, "refused"), (OTHER_PATIENT, "running")]


# ---------------------------------------------------------------- recording with consent

async def _consent(http: Any, consultation_id: UUID, headers: dict[str, str], granted: bool) -> dict[str, Any]:
    response = await http.post(f"/consultations/{consultation_id}/recording/consent", json={"granted": granted},
                               headers=headers)
    assert response.status_code == 200, response.text
    state: dict[str, Any] = response.json()
    return state


async def _start_recorder(http: httpx.AsyncClient, consultation_id: UUID, headers: dict[str, str],
                          peer: AppPeer) -> str:
    response = await http.post(f"/consultations/{consultation_id}/recording/offer", json=await peer.offer(),
                               headers=headers)
    assert response.status_code == 201, response.text
    await peer.accept(response.json())
    await wait_for(lambda: peer.pc.connectionState == "connected", 15, "the recorder connection")
    recording_id: str = response.json()["recording_id"]
    return recording_id


def _playable(path: str) -> float:
    """Seconds of video in the file, read back with PyAV."""
    with av.open(path) as container:
        assert any(s.type == "video" for s in container.streams), container.streams
        assert container.duration is not None
        return float(container.duration / 1_000_000)


async def test_recording_without_both_consents_is_409(client: Client, sms: SmsSandbox, pool: asyncpg.Pool) -> None:
    consultation_id = await make_consultation(pool, status="in_call")
    patient = bearer(await sign_in_patient(client, sms, GUARDIAN))
    state = await _consent(client, consultation_id, patient, True)
    assert state["patient_consent"] and not state["doctor_consent"] and not state["recording_allowed"]
    response = await client.post(f"/consultations/{consultation_id}/recording/offer",
                                 json={"type": "offer", "sdp": "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\n"}, headers=patient)
    body = _problem(response, 409, "recording-consent-missing")
    assert body["missing"] == ["doctor"]
    assert await pool.fetchval("SELECT count(*) FROM consultation_recordings") == 0


async def test_recording_rules_for_strangers_patients_and_consultations_not_in_call(
        client: Client, sms: SmsSandbox, pool: asyncpg.Pool) -> None:
    consultation_id = await make_consultation(pool, status="booked")
    stranger = bearer(await sign_in_patient(client, sms, OTHER_PATIENT))
    guardian = bearer(await sign_in_patient(client, sms, GUARDIAN))
    doctor = bearer(await sign_in_staff(client, DOCTOR))
    response = await client.post(f"/consultations/{consultation_id}/recording/consent", json={"granted": True},
                                 headers=stranger)
    _problem(response, 404, "not-found")
    _problem(await client.post(f"/consultations/{consultation_id}/recording/stop", headers=guardian),
             403, "forbidden")
    await _consent(client, consultation_id, guardian, True)
    await _consent(client, consultation_id, doctor, True)
    response = await client.post(f"/consultations/{consultation_id}/recording/offer",
                                 json={"type": "offer", "sdp": "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\n"}, headers=doctor)
    _problem(response, 409, "consultation-not-in-call")
    history = await pool.fetch(
        "SELECT role, granted FROM recording_consents WHERE consultation_id = $1 ORDER BY id", consultation_id)
    assert [(r["role"], r["granted"]) for r in history] == [("patient", True), ("doctor", True)]
    actions = await pool.fetch("SELECT action FROM audit_log WHERE target_id = $1 ORDER BY id", str(consultation_id))
    assert [a["action"] for a in actions] == ["recording.consent_granted"] * 2
    with pytest.raises(asyncpg.PostgresError, match="append-only"):
        await pool.execute("UPDATE recording_consents SET granted = false")


async def test_recording_with_both_consents_writes_a_playable_file_per_participant(
        settings: Settings, sms: SmsSandbox, pool: asyncpg.Pool) -> None:
    consultation_id = await make_consultation(pool, status="in_call")
    async with media_stack(settings) as stack:
        patient = bearer(await sign_in_patient(stack.http, sms, GUARDIAN))
        doctor = bearer(await sign_in_staff(stack.http, DOCTOR))
        await _consent(stack.http, consultation_id, patient, True)
        assert (await _consent(stack.http, consultation_id, doctor, True))["recording_allowed"]
        async with app_peer() as patient_app, app_peer() as rival_app, app_peer() as doctor_app:
            # the patient's app fires two recorder offers at once: the database lets exactly one through
            url = f"/consultations/{consultation_id}/recording/offer"
            offers = [await patient_app.offer(), await rival_app.offer()]
            responses = await asyncio.gather(*(stack.http.post(url, json=o, headers=patient) for o in offers))
            assert sorted(r.status_code for r in responses) == [201, 409], [r.text for r in responses]
            winner, loser = (0, 1) if responses[0].status_code == 201 else (1, 0)
            _problem(responses[loser], 409, "already-recording")
            apps = (patient_app, rival_app)
            await apps[winner].accept(responses[winner].json())
            await wait_for(lambda: apps[winner].pc.connectionState == "connected", 15, "the patient's recorder")
            await _start_recorder(stack.http, consultation_id, doctor, doctor_app)
            await asyncio.sleep(3)  # the recording's length, not a wait for something
            response = await stack.http.post(f"/consultations/{consultation_id}/recording/stop", headers=doctor)
            assert response.status_code == 200, response.text
    recordings = response.json()["recordings"]
    assert sorted(r["role"] for r in recordings) == ["doctor", "patient"]
    for r in recordings:
        assert r["status"] == "stopped" and r["stop_reason"] == "stopped-by-doctor", r
        assert r["duration_s"] > 2 and r["size_bytes"] > 10_000, r
        assert r["file_name"] == f"{consultation_id}/{r['role']}-1.mkv"
    rows = await pool.fetch("SELECT role, file_path FROM consultation_recordings WHERE consultation_id = $1",
                            consultation_id)
    folder = settings.data_dir / "recordings" / str(consultation_id)
    for row in rows:
        assert Path(row["file_path"]) == folder / f"{row['role']}-1.mkv"
        assert _playable(row["file_path"]) > 2
    actions = [r["action"] for r in await pool.fetch("SELECT action FROM audit_log ORDER BY id")]
    assert actions.count("recording.started") == 2 and actions.count("recording.stopped") == 2


async def test_withdrawing_consent_stops_the_recording_and_refuses_new_ones(
        settings: Settings, sms: SmsSandbox, pool: asyncpg.Pool) -> None:
    consultation_id = await make_consultation(pool, status="in_call")
    async with media_stack(settings) as stack:
        patient = bearer(await sign_in_patient(stack.http, sms, GUARDIAN))
        doctor = bearer(await sign_in_staff(stack.http, DOCTOR))
        await _consent(stack.http, consultation_id, patient, True)
        await _consent(stack.http, consultation_id, doctor, True)
        async with app_peer() as patient_app:
            await _start_recorder(stack.http, consultation_id, patient, patient_app)
            await asyncio.sleep(2)  # the recording's length
            state = await _consent(stack.http, consultation_id, patient, False)
            assert not state["recording_allowed"]
            [recording] = state["recordings"]
            assert recording["status"] == "stopped" and recording["stop_reason"] == "consent-withdrawn", recording
            # the worker closed the recorder connection, and the app sees it end
            await wait_for(lambda: patient_app.pc.connectionState == "closed", 10, "the recorder to hang up")
        async with app_peer() as patient_app:
            refused = await stack.http.post(f"/consultations/{consultation_id}/recording/offer",
                                            json=await patient_app.offer(), headers=patient)
            _problem(refused, 409, "recording-consent-missing")
    path = await pool.fetchval("SELECT file_path FROM consultation_recordings WHERE consultation_id = $1",
                               consultation_id)
    assert _playable(path) > 1
    assert [r["granted"] for r in await pool.fetch(
        "SELECT granted FROM recording_consents WHERE role = 'patient' ORDER BY id")] == [True, False]


async def test_recording_stops_when_the_call_ends(settings: Settings, sms: SmsSandbox, pool: asyncpg.Pool) -> None:
    consultation_id = await make_consultation(pool, status="in_call")
    async with media_stack(settings) as stack:
        patient = bearer(await sign_in_patient(stack.http, sms, GUARDIAN))
        doctor = bearer(await sign_in_staff(stack.http, DOCTOR))
        await _consent(stack.http, consultation_id, patient, True)
        await _consent(stack.http, consultation_id, doctor, True)
        async with app_peer() as doctor_app:
            await _start_recorder(stack.http, consultation_id, doctor, doctor_app)
            await asyncio.sleep(1.5)  # the recording's length
            # the doctor ends the call (the signaling hub's job; written directly here)
            await pool.execute("UPDATE consultations SET status = 'completed', call_ended_at = now() WHERE id = $1",
                               consultation_id)
            response = await stack.http.get(f"/consultations/{consultation_id}/recording", headers=patient)
            assert response.status_code == 200, response.text
    [recording] = response.json()["recordings"]
    assert recording["status"] == "stopped" and recording["stop_reason"] == "call-ended", recording
    assert recording["duration_s"] > 1


async def test_serve_runs_its_own_media_worker_and_stops_it_on_exit(
        database: DatabaseTarget, sms: SmsSandbox, tmp_path: Path) -> None:
    env = cli_env(DATABASE_URL=database.admin_dsn, LIENTHONG_DATA_DIR=str(tmp_path), SMS_GATEWAY_URL=sms.base_url,
                  LIENTHONG_RUN_WORKER="false", LIENTHONG_MEDIA_LOOPBACK_ONLY="true", LIENTHONG_LOG_LEVEL="WARNING")
    async with serving(env, tmp_path, "serve") as server, httpx.AsyncClient(base_url=server.base_url,
                                                                             timeout=30) as http:
        found = re.search(r"Media worker \(aiortc\) listening on (http://127\.0\.0\.1:\d+)", server.output())
        assert found, server.logs()
        worker_url = found.group(1)
        headers = bearer(await sign_in_patient(http, sms, GUARDIAN))
        async with app_peer() as peer:
            response = await http.post("/rtc/precall", json=await peer.offer(), headers=headers)
            assert response.status_code == 201, response.text
            await peer.accept(response.json())
            await wait_for(lambda: "video" in peer.received and peer.received["video"].first.is_set(), 15,
                           "an echoed frame through serve's own worker")
        assert await server.stop(signal.SIGTERM) == 0

    async def worker_gone() -> bool:
        try:
            async with httpx.AsyncClient(timeout=1) as probe:
                await probe.get(f"{worker_url}/health")
        except httpx.TransportError:
            return True
        return False

    await wait_for(worker_gone, 5, "the media worker to exit with serve")


@pytest.mark.parametrize(("rtt_ms", "loss_pct", "kbps", "expected"), [
    (40, 0.0, 600, "good"),
    (300, 3.0, 250, "good"),
    (None, 0.0, 600, "good"),            # no receiver report yet is not held against the link
    (301, 0.0, 600, "audio-only recommended"),
    (80, 5.0, 600, "audio-only recommended"),
    (80, 0.0, 120, "audio-only recommended"),
    (800, 10.0, 40, "audio-only recommended"),
    (900, 0.0, 600, "too weak"),
    (80, 12.0, 600, "too weak"),
    (80, 0.0, 20, "too weak"),
    (80, 0.0, None, None),               # nothing measured yet
])
def test_verdict_thresholds(rtt_ms: float | None, loss_pct: float, kbps: float | None, expected: str | None) -> None:
    assert verdict(rtt_ms, loss_pct, kbps) == expected

