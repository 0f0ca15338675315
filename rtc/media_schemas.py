"""Wire shapes of the media-worker features: what apps send and receive for the pre-call test and for recordings,
and the loopback protocol between the API (rtc/media.py) and the aiortc worker process (rtc/media_worker.py).

Both processes import this module; it must never import aiortc, so the API process stays free of media code.
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import datetime
from typing import Annotated, Literal
from uuid import UUID

import msgspec

# A full aiortc offer is 2.5–2.8 KB and Chromium's 5.6 KB (rtc.md §2.2); 32 KiB leaves room for many candidates.
Sdp = Annotated[str, msgspec.Meta(min_length=10, max_length=32_768)]
ParticipantRole = Literal["patient", "doctor"]
Verdict = Literal["good", "audio-only recommended", "too weak"]
PrecallState = Literal["connecting", "running", "finished", "failed"]
RecordingStatus = Literal["starting", "recording", "stopped", "failed"]
StopReason = Literal["stopped-by-doctor", "consent-withdrawn", "call-ended", "peer-disconnected", "time-limit",
                     "worker-shutdown", "worker-lost", "failed"]


class Strict(msgspec.Struct, forbid_unknown_fields=True):
    """Input shapes: a misspelt field is an error, not silently ignored."""


# ---------------------------------------------------------------- apps ⇄ API

class SessionOffer(Strict):
    """An SDP offer with every candidate inside (aiortc answers in full and never trickles, rtc.md §1.3)."""

    type: Literal["offer"]
    sdp: Sdp


class PrecallAnswer(msgspec.Struct):
    session_id: UUID
    type: Literal["answer"]
    sdp: str
    max_duration_s: int


class PrecallReport(msgspec.Struct):
    """How the link between the app and our media worker behaved, measured by the worker's getStats.

    ``verdict`` is null until there is enough data to judge; it is final once ``state`` is finished or failed.
    Upload = app → server (what the worker received), download = server → app (what the app reported back).
    """

    session_id: UUID
    state: PrecallState
    verdict: Verdict | None
    advice: str
    elapsed_s: float
    rtt_ms: float | None
    upload_loss_pct: float | None
    download_loss_pct: float | None
    jitter_ms: float | None
    upload_kbps: float | None
    download_kbps: float | None
    video_frames_echoed: int
    audio_frames_echoed: int


class RecordingConsentIn(Strict):
    granted: bool


class Recording(msgspec.Struct):
    id: UUID
    role: ParticipantRole
    seq: int
    status: RecordingStatus
    started_at: datetime
    ended_at: datetime | None
    duration_s: float | None
    size_bytes: int | None
    stop_reason: str | None
    file_name: str | None  # relative to the recordings folder; the full path stays on the server


class RecordingState(msgspec.Struct):
    consultation_id: UUID
    patient_consent: bool
    doctor_consent: bool
    recording_allowed: bool
    recordings: list[Recording]


class RecordingAnswer(msgspec.Struct):
    recording_id: UUID
    type: Literal["answer"]
    sdp: str


# ---------------------------------------------------------------- API ⇄ worker (loopback HTTP)

class WorkerAnswer(msgspec.Struct):
    sdp: str


class WorkerRecordingAnswer(msgspec.Struct):
    sdp: str
    path: str  # where the worker writes the file, on its own host


class WorkerPrecallStart(Strict):
    session_id: UUID
    sdp: Sdp
    max_duration_s: Annotated[int, msgspec.Meta(ge=5, le=120)]


class WorkerRecordingStart(Strict):
    recording_id: UUID
    consultation_id: UUID
    role: ParticipantRole
    seq: Annotated[int, msgspec.Meta(ge=1, le=10_000)]
    sdp: Sdp
    max_duration_s: Annotated[int, msgspec.Meta(ge=10, le=6 * 3600)]


class WorkerRecordingStop(Strict):
    consultation_id: UUID
    reason: StopReason


class WorkerRecording(msgspec.Struct):
    recording_id: UUID
    consultation_id: UUID
    role: ParticipantRole
    state: Literal["recording", "stopped", "failed"]
    path: str
    started_at: datetime
    duration_s: float | None
    size_bytes: int | None
    stop_reason: StopReason | None


class WorkerHealth(msgspec.Struct):
    status: Literal["ok"]
    cpu_budget_pct: int
    cpu_committed_pct: int
    precall_sessions: int
    recordings: int


def worker_token(jwt_secret: str) -> str:
    """The bearer token the API presents to the worker, derived from the secret both processes already share, so a
    stray local process cannot start recordings or read link reports."""
    return hmac.new(jwt_secret.encode(), b"lienthong media worker v1", hashlib.sha256).hexdigest()
