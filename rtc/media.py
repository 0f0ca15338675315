"""The API's side of the aiortc media worker: patients' pre-call connection test and consented call recording.

Rules and state live here and in PostgreSQL (rtc/media_db.py). The worker process (rtc/media_worker.py) only holds
live peer connections; this module reaches it over loopback HTTP and never imports aiortc, so no media work lands
in the API's event loop.
"""

from __future__ import annotations

import functools
import ssl
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar
from uuid import UUID

import asyncpg
import httpx
import msgspec
from litestar import Controller, Request, get, post
from litestar.params import FromPath, JSONBody
from litestar.status_codes import HTTP_200_OK, HTTP_201_CREATED

from api import audit
from api.audit import AuditContext, audit_context
from api.auth.principal import Principal, requires_role
from api.deps import AppSettings, Pool
from api.errors import Conflict, InvalidInput, NotFound, ServiceUnavailable, TooManyRequests
from api.settings import Settings
from rtc import media_db
from rtc.media_db import ConsultationRef
from rtc.media_schemas import (
    ParticipantRole,
    PrecallAnswer,
    PrecallReport,
    RecordingAnswer,
    RecordingConsentIn,
    RecordingState,
    SessionOffer,
    StopReason,
    WorkerAnswer,
    WorkerPrecallStart,
    WorkerRecording,
    WorkerRecordingAnswer,
    WorkerRecordingStart,
    WorkerRecordingStop,
    worker_token,
)

T = TypeVar("T")

# A recorder connection that has been 'starting' this long without the worker knowing it never got going.
STARTING_GRACE = timedelta(seconds=60)


class MediaWorkerUnavailable(ServiceUnavailable):
    slug, title = "media-worker-unavailable", "Media server unavailable"

    def __init__(self, detail: str) -> None:
        super().__init__(detail, headers={"Retry-After": "10"}, extra={"retry_after": 10})


class MediaWorkerBusy(ServiceUnavailable):
    slug, title = "media-worker-busy", "Media server busy"

    def __init__(self, detail: str) -> None:
        super().__init__(detail, headers={"Retry-After": "30"}, extra={"retry_after": 30})


class RecordingConsentMissing(Conflict):
    slug, title = "recording-consent-missing", "Recording needs both participants' consent"


class ConsultationNotInCall(Conflict):
    slug, title = "consultation-not-in-call", "The consultation is not in a call"


class AlreadyRecording(Conflict):
    slug, title = "already-recording", "Already recording"


class _WorkerForgot(Exception):
    """The worker has no such session: it finished long ago or the worker restarted."""


# ---------------------------------------------------------------- the worker, over loopback HTTP

@functools.cache
def _tls() -> ssl.SSLContext:
    # httpx builds a fresh certificate store per client (~50 ms here); one shared context makes a client ~0.3 ms,
    # so a client per call costs nothing next to the worker's own work.
    return ssl.create_default_context()


async def _worker(settings: Settings, method: str, path: str, into: type[T], *, body: msgspec.Struct | None = None,
                  params: dict[str, str] | None = None) -> T:
    if settings.media_worker_url is None:
        raise MediaWorkerUnavailable("No media server is configured (LIENTHONG_MEDIA_WORKER_URL).")
    headers = {"Authorization": f"Bearer {worker_token(settings.jwt_secret)}", "Content-Type": "application/json"}
    try:
        async with httpx.AsyncClient(base_url=settings.media_worker_url, verify=_tls(), timeout=20,
                                     headers=headers) as http:
            response = await http.request(method, path, params=params,
                                          content=None if body is None else msgspec.json.encode(body))
    except httpx.TransportError:
        raise MediaWorkerUnavailable("The media server is not reachable right now; retry shortly.") from None
    if response.status_code < 300:
        return msgspec.json.decode(response.content, type=into)
    detail = _problem_detail(response.content)
    if response.status_code == 503:
        raise MediaWorkerBusy(detail)
    if response.status_code == 404:
        raise _WorkerForgot(detail)
    if response.status_code == 409:
        raise Conflict(detail)
    if response.status_code == 422:
        raise InvalidInput("body.sdp", detail)
    raise RuntimeError(f"media worker answered {response.status_code} to {method} {path}: {detail}")


def _problem_detail(content: bytes) -> str:
    try:
        return str(msgspec.json.decode(content, type=dict[str, Any]).get("detail", ""))
    except msgspec.DecodeError:
        return content[:200].decode(errors="replace")


# ---------------------------------------------------------------- pre-call test

async def start_precall(pool: asyncpg.Pool, settings: Settings, principal: Principal,
                        offer: SessionOffer) -> PrecallAnswer:
    now = datetime.now(UTC)
    async with pool.acquire() as conn, conn.transaction():
        await media_db.lock_account(conn, principal.account_id)
        used, oldest = await media_db.precall_usage(conn, principal.account_id, now - timedelta(hours=1))
        if used >= settings.precall_per_hour:
            wait_s = int(((oldest or now) + timedelta(hours=1) - now).total_seconds()) + 1
            raise TooManyRequests(f"You can run the connection test {settings.precall_per_hour} times an hour; "
                                  f"try again in {wait_s // 60 + 1} minutes.", retry_after_s=wait_s)
        session_id = await media_db.insert_precall(conn, principal.account_id)
    try:
        answer = await _worker(settings, "POST", "/precall", WorkerAnswer, body=WorkerPrecallStart(
            session_id=session_id, sdp=offer.sdp, max_duration_s=settings.precall_max_s))
    except BaseException:
        # a test that never started (server busy, unusable offer) does not count against the hourly limit
        async with pool.acquire() as conn:
            await media_db.set_precall_status(conn, session_id, "refused")
        raise
    async with pool.acquire() as conn:
        await media_db.set_precall_status(conn, session_id, "running")
    return PrecallAnswer(session_id=session_id, type="answer", sdp=answer.sdp, max_duration_s=settings.precall_max_s)


async def precall_report(pool: asyncpg.Pool, settings: Settings, principal: Principal,
                         session_id: UUID) -> PrecallReport:
    async with pool.acquire() as conn:
        row = await media_db.precall(conn, session_id, principal.account_id)
    if row is None or row.status == "refused":
        raise NotFound("No such connection test, or it is not yours.")
    if row.report is not None:
        return row.report
    try:
        report = await _worker(settings, "GET", f"/precall/{session_id}", PrecallReport)
    except _WorkerForgot:
        report = PrecallReport(
            session_id=session_id, state="failed", verdict=None,
            advice="The test was interrupted on our side; please run it again.", elapsed_s=0, rtt_ms=None,
            upload_loss_pct=None, download_loss_pct=None, jitter_ms=None, upload_kbps=None, download_kbps=None,
            video_frames_echoed=0, audio_frames_echoed=0)
    if report.state in ("finished", "failed"):
        async with pool.acquire() as conn:
            await media_db.finish_precall(conn, session_id, report)  # kept: the worker forgets it after a while
    return report


# ---------------------------------------------------------------- recording with consent

def _role_in(c: ConsultationRef | None, principal: Principal) -> ParticipantRole:
    if c is not None:
        if principal.role == "patient" and principal.account_id == c.booked_by:
            return "patient"
        if principal.role == "doctor" and principal.account_id == c.doctor_id:
            return "doctor"
    # the same answer for "does not exist" and "not yours", so consultation ids cannot be probed
    raise NotFound("No such consultation, or you are not part of it.")


def _both(consents: dict[str, bool]) -> bool:
    return consents.get("patient", False) and consents.get("doctor", False)


async def _state(pool: asyncpg.Pool, consultation_id: UUID) -> RecordingState:
    async with pool.acquire() as conn:
        consents = await media_db.consents(conn, consultation_id)
        recordings = await media_db.recordings(conn, consultation_id)
    return RecordingState(consultation_id=consultation_id, patient_consent=consents.get("patient", False),
                          doctor_consent=consents.get("doctor", False), recording_allowed=_both(consents),
                          recordings=recordings)


async def _settle(pool: asyncpg.Pool, results: list[WorkerRecording], ctx: AuditContext,
                  patient_id: UUID) -> None:
    """Write the worker's final figures into the rows it has finished, auditing each stop once."""
    async with pool.acquire() as conn, conn.transaction():
        for r in results:
            if r.state == "recording":
                continue
            closed = await media_db.finish_recording(
                conn, r.recording_id, failed=r.state == "failed", reason=r.stop_reason or "failed",
                duration_s=r.duration_s, size_bytes=r.size_bytes, file_path=r.path)
            if closed:
                await audit.record(conn, ctx, "recording.stopped", target_type="consultation_recording",
                                   target_id=r.recording_id, subject_patient_id=patient_id,
                                   details={"consultation_id": str(r.consultation_id), "role": r.role,
                                            "reason": r.stop_reason, "duration_s": r.duration_s,
                                            "size_bytes": r.size_bytes})


async def stop_recordings(pool: asyncpg.Pool, settings: Settings, consultation_id: UUID, reason: StopReason,
                          ctx: AuditContext) -> None:
    """Stop every recorder of a consultation and keep the files' figures. The signaling side calls this with
    ``call-ended`` when the doctor ends the call; apps also close their recorder connections, which stops them too."""
    async with pool.acquire() as conn:
        c = await media_db.consultation(conn, consultation_id)
        live = await media_db.live_recordings(conn, consultation_id)
    if c is None or not live:
        return
    results = await _worker(settings, "POST", "/recordings/stop", list[WorkerRecording],
                            body=WorkerRecordingStop(consultation_id=consultation_id, reason=reason))
    await _settle(pool, results, ctx, c.patient_id)


async def _sync(pool: asyncpg.Pool, settings: Settings, c: ConsultationRef, ctx: AuditContext) -> None:
    """Bring live rows up to date with the worker: recorders end on their own when an app hangs up or the time
    limit passes, and a consultation that left the call must not keep recording."""
    async with pool.acquire() as conn:
        live = await media_db.live_recordings(conn, c.id)
    if not live:
        return
    if c.status != "in_call":
        await stop_recordings(pool, settings, c.id, "call-ended", ctx)
        return
    results = await _worker(settings, "GET", "/recordings", list[WorkerRecording],
                            params={"consultation_id": str(c.id)})
    await _settle(pool, results, ctx, c.patient_id)
    known = {r.recording_id for r in results}
    now = datetime.now(UTC)
    lost = [row for row in live if row.id not in known
            and (row.status == "recording" or now - row.started_at > STARTING_GRACE)]
    if lost:
        async with pool.acquire() as conn, conn.transaction():
            for row in lost:
                if await media_db.finish_recording(conn, row.id, failed=True, reason="worker-lost"):
                    await audit.record(conn, ctx, "recording.lost", target_type="consultation_recording",
                                       target_id=row.id, subject_patient_id=c.patient_id)


async def recording_state(pool: asyncpg.Pool, settings: Settings, principal: Principal, consultation_id: UUID,
                          ctx: AuditContext) -> RecordingState:
    async with pool.acquire() as conn:
        c = await media_db.consultation(conn, consultation_id)
    _role_in(c, principal)
    assert c is not None
    await _sync(pool, settings, c, ctx)
    return await _state(pool, consultation_id)


async def record_consent(pool: asyncpg.Pool, settings: Settings, principal: Principal, consultation_id: UUID,
                         data: RecordingConsentIn, ctx: AuditContext) -> RecordingState:
    async with pool.acquire() as conn, conn.transaction():
        c = await media_db.consultation(conn, consultation_id, for_update=True)
        role = _role_in(c, principal)
        assert c is not None
        if data.granted and c.status not in ("booked", "waiting", "in_call"):
            raise Conflict(f"A consultation that is {c.status} can no longer be recorded.")
        await media_db.insert_consent(conn, consultation_id, role, principal.account_id, data.granted)
        await audit.record(conn, ctx, "recording.consent_granted" if data.granted else "recording.consent_withdrawn",
                           target_type="consultation", target_id=consultation_id, subject_patient_id=c.patient_id,
                           details={"role": role})
    if not data.granted:
        await stop_recordings(pool, settings, consultation_id, "consent-withdrawn", ctx)
    return await _state(pool, consultation_id)


async def start_recording(pool: asyncpg.Pool, settings: Settings, principal: Principal, consultation_id: UUID,
                          offer: SessionOffer, ctx: AuditContext) -> RecordingAnswer:
    async with pool.acquire() as conn, conn.transaction():
        c = await media_db.consultation(conn, consultation_id, for_update=True)
        role = _role_in(c, principal)
        assert c is not None
        if c.status != "in_call":
            raise ConsultationNotInCall(f"Recording starts during the call; this consultation is {c.status}.",
                                        extra={"consultation_status": c.status})
        consents = await media_db.consents(conn, consultation_id)
        if not _both(consents):
            missing = [r for r in ("patient", "doctor") if not consents.get(r, False)]
            raise RecordingConsentMissing(
                f"Recording needs the consent of both participants; missing: {', '.join(missing)}.",
                extra={"missing": missing})
        seq = await media_db.next_seq(conn, consultation_id, role)
        try:
            recording_id = await media_db.insert_recording(conn, consultation_id, role, seq, principal.account_id)
        except asyncpg.UniqueViolationError:
            raise AlreadyRecording("Your side of this call is already being recorded.") from None
    # the recorder may run until the join window closes, never longer
    limit = c.ends_at + timedelta(minutes=settings.join_grace_after_min) - datetime.now(UTC)
    try:
        answer = await _worker(settings, "POST", "/recordings", WorkerRecordingAnswer, body=WorkerRecordingStart(
            recording_id=recording_id, consultation_id=consultation_id, role=role, seq=seq, sdp=offer.sdp,
            max_duration_s=min(6 * 3600, max(60, int(limit.total_seconds())))))
    except BaseException:
        async with pool.acquire() as conn:
            await media_db.finish_recording(conn, recording_id, failed=True, reason="failed")
        raise
    # Consent may have been withdrawn while the worker was answering; the withdrawal's stop found no recorder yet.
    async with pool.acquire() as conn, conn.transaction():
        await media_db.consultation(conn, consultation_id, for_update=True)
        still_allowed = _both(await media_db.consents(conn, consultation_id))
        if still_allowed:
            await media_db.mark_recording(conn, recording_id, answer.path)
            await audit.record(conn, ctx, "recording.started", target_type="consultation_recording",
                               target_id=recording_id, subject_patient_id=c.patient_id,
                               details={"consultation_id": str(consultation_id), "role": role, "seq": seq})
    if not still_allowed:
        await stop_recordings(pool, settings, consultation_id, "consent-withdrawn", ctx)
        raise RecordingConsentMissing("Consent to record was withdrawn while the recorder was starting.")
    return RecordingAnswer(recording_id=recording_id, type="answer", sdp=answer.sdp)


async def doctor_stop(pool: asyncpg.Pool, settings: Settings, principal: Principal, consultation_id: UUID,
                      ctx: AuditContext) -> RecordingState:
    async with pool.acquire() as conn:
        c = await media_db.consultation(conn, consultation_id)
    _role_in(c, principal)  # the route admits doctors only; this makes it the treating one
    await stop_recordings(pool, settings, consultation_id, "stopped-by-doctor", ctx)
    return await _state(pool, consultation_id)


# ---------------------------------------------------------------- routes

class PrecallController(Controller):
    path = "/rtc/precall"
    tags = ["rtc"]

    @post("/", status_code=HTTP_201_CREATED, guards=[requires_role("patient")],
          summary="Patient: start a pre-call connection test (echo peer; a few per hour)",
          description="Send an SDP offer with all candidates; the answer comes from an aiortc peer that echoes your "
                      "audio and video for up to `max_duration_s`. Poll the report for the verdict: `good` (RTT ≤ "
                      "300 ms, loss ≤ 3 %, upload ≥ 250 kb/s), `audio-only recommended` (RTT ≤ 800 ms, loss ≤ 10 %, "
                      "upload ≥ 40 kb/s) or `too weak`. 429 past the hourly limit, 503 when the media server is full.")
    async def start(self, data: JSONBody[SessionOffer], request: Request[Principal, Any, Any], pool: Pool,
                    settings: AppSettings) -> PrecallAnswer:
        return await start_precall(pool, settings, request.user, data)

    @get("/{session_id:uuid}", guards=[requires_role("patient")],
         summary="Patient: the link report of own connection test (RTT, loss, bitrate, verdict)")
    async def report(self, session_id: FromPath[UUID], request: Request[Principal, Any, Any], pool: Pool,
                     settings: AppSettings) -> PrecallReport:
        return await precall_report(pool, settings, request.user, session_id)


class RecordingController(Controller):
    path = "/consultations/{consultation_id:uuid}/recording"
    tags = ["rtc"]
    guards = [requires_role("patient", "doctor")]

    @get("/", summary="Participants: consent in force and the recordings of this consultation")
    async def state(self, consultation_id: FromPath[UUID], request: Request[Principal, Any, Any], pool: Pool,
                    settings: AppSettings) -> RecordingState:
        return await recording_state(pool, settings, request.user, consultation_id, audit_context(request))

    @post("/consent", status_code=HTTP_200_OK,
          summary="Booked patient/guardian or treating doctor: grant or withdraw consent to record (audited); "
                  "withdrawing stops any recording")
    async def consent(self, consultation_id: FromPath[UUID], data: JSONBody[RecordingConsentIn],
                      request: Request[Principal, Any, Any], pool: Pool, settings: AppSettings) -> RecordingState:
        return await record_consent(pool, settings, request.user, consultation_id, data, audit_context(request))

    @post("/offer", status_code=HTTP_201_CREATED,
          summary="Participant: send an extra peer connection to be recorded (both consents required, in call)")
    async def offer(self, consultation_id: FromPath[UUID], data: JSONBody[SessionOffer],
                    request: Request[Principal, Any, Any], pool: Pool, settings: AppSettings) -> RecordingAnswer:
        return await start_recording(pool, settings, request.user, consultation_id, data, audit_context(request))

    @post("/stop", status_code=HTTP_200_OK, guards=[requires_role("doctor")],
          summary="Treating doctor: stop recording this consultation (patients withdraw consent instead)")
    async def stop(self, consultation_id: FromPath[UUID], request: Request[Principal, Any, Any], pool: Pool,
                   settings: AppSettings) -> RecordingState:
        return await doctor_stop(pool, settings, request.user, consultation_id, audit_context(request))

