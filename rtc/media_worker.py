"""The aiortc media worker: a process of its own that answers pre-call echo tests and records consented calls.

The API reaches it over loopback HTTP (rtc/media.py) and keeps all state that matters in PostgreSQL; this process
only holds live peer connections. aiortc decodes every received frame and encodes every sent one, in threads that
compete for the GIL (rtc.md §1.3–1.4), which is why none of this runs inside the API's event loop.

CPU cost per job, measured on the 2-core reference machine with 640×480@30 VP8 + Opus test peers
(``python -m tests.rtc.media_bench``: worker CPU-seconds per wall-second, 15 s windows, 3 runs, medians):

- pre-call echo: VP8 and Opus decoded and re-encoded back, 36–42 % of a core (rtc.md §4.4 measured 25 % for
  relaying video alone);
- recording one participant: VP8/Opus decode + libx264/AAC encode by MediaRecorder, 56–64 % of a core; two
  streams 96–109 %.

Jobs are admitted against ``LIENTHONG_MEDIA_CPU_BUDGET`` (percent of one core, default 120: one consultation's two
recordings, or three pre-call tests) and refused with 503 beyond it, never squeezed: MediaRecorder encodes on the
event loop, so an overloaded worker queues decoded frames without bound and adds latency to every echo.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import UUID

import aioice.ice
import av
from aiortc import (
    MediaStreamTrack,
    RTCConfiguration,
    RTCIceServer,
    RTCPeerConnection,
    RTCRtpSender,
    RTCRtpTransceiver,
    RTCSessionDescription,
)
from aiortc.contrib.media import MediaBlackhole, MediaRecorder, MediaRelay
from aiortc.exceptions import OperationError
from aiortc.sdp import SessionDescription
from aiortc.stats import RTCInboundRtpStreamStats, RTCRemoteInboundRtpStreamStats, RTCTransportStats
from av.frame import Frame
from av.packet import Packet
from litestar import Controller, Litestar, Router, get, post
from litestar.connection import ASGIConnection
from litestar.di import NamedDependency, Provide
from litestar.exceptions import NotAuthorizedException
from litestar.handlers.base import BaseRouteHandler
from litestar.params import FromPath

from api.errors import EXCEPTION_HANDLERS, Conflict, InvalidInput, NotFound, ServiceUnavailable
from api.settings import Settings
from rtc.media_schemas import (
    PrecallReport,
    PrecallState,
    StopReason,
    Verdict,
    WorkerAnswer,
    WorkerHealth,
    WorkerPrecallStart,
    WorkerRecording,
    WorkerRecordingAnswer,
    WorkerRecordingStart,
    WorkerRecordingStop,
    worker_token,
)
from rtc.turn import ice_servers

log = logging.getLogger("lienthong.media_worker")

PRECALL_COST_PCT = 40
RECORDING_COST_PCT = 55
# ICE + DTLS complete in ~50 ms on a good link (rtc.md §4.3); a client that has not connected after this long is
# behind a firewall that blocks us, and its CPU slot is better given back.
CONNECT_TIMEOUT_S = 10.0
STATS_INTERVAL_S = 1.0
# Bitrates are averaged over the last few seconds: a browser ramps its send rate up during the first seconds,
# and what matters for the consultation is the rate the link settles at.
BITRATE_WINDOW_S = 5.0
# Finished reports and recordings wait this long for the API to collect them, then are forgotten.
KEEP_FINISHED_S = 600.0
# RTP clock rates: aiortc reports jitter in timestamp units (VP8 90 kHz, Opus 48 kHz).
CLOCK_RATE = {"video": 90_000, "audio": 48_000}

# Verdict thresholds.
# - Round-trip time: ITU-T G.114 puts comfortable one-way delay below 150 ms and the limit for a usable
#   conversation near 400 ms, hence ≤ 300 ms RTT for video and ≤ 800 ms for a voice call.
# - Loss (worst direction): VP8 has no FEC here and repairs loss with NACK/PLI, which costs a round trip per
#   repair, so video stutters above a few percent; Opus' concealment keeps speech intelligible up to ~10 %.
# - Upload bitrate the worker actually received: aiortc's VP8 encoder floor is 250 kb/s (rtc.md §1.3), below which
#   480p video does not hold; speech needs a few tens of kb/s (Opus is usable from ~24 kb/s).
GOOD_MAX_RTT_MS, GOOD_MAX_LOSS_PCT, GOOD_MIN_KBPS = 300.0, 3.0, 250.0
AUDIO_MAX_RTT_MS, AUDIO_MAX_LOSS_PCT, AUDIO_MIN_KBPS = 800.0, 10.0, 40.0

ADVICE: dict[Verdict | None, str] = {
    None: "Measuring your connection…",
    "good": "Your connection is good enough for a video consultation.",
    "audio-only recommended": "Your connection is weak for video; the consultation will work better with audio only.",
    "too weak": "Your connection is too weak for a consultation right now; move closer to Wi-Fi or try again later.",
}
NO_CONNECTION_ADVICE = ("We could not reach the test server. Check that mobile data or Wi-Fi is on; some office "
                        "networks block video calls.")


class WorkerBusy(ServiceUnavailable):
    slug, title = "media-worker-busy", "Media worker busy"

    def __init__(self, detail: str) -> None:
        super().__init__(detail, headers={"Retry-After": "30"}, extra={"retry_after": 30})


class BadOffer(InvalidInput):
    def __init__(self, message: str) -> None:
        super().__init__("body.sdp", message)


def verdict(rtt_ms: float | None, loss_pct: float | None, upload_kbps: float | None) -> Verdict | None:
    """The plain answer for the patient; None until media has flowed long enough to measure a bitrate.

    An unknown RTT (the app sent no receiver report yet) is not held against the link.
    """
    if upload_kbps is None:
        return None
    rtt, loss = rtt_ms or 0.0, loss_pct or 0.0
    if rtt <= GOOD_MAX_RTT_MS and loss <= GOOD_MAX_LOSS_PCT and upload_kbps >= GOOD_MIN_KBPS:
        return "good"
    if rtt <= AUDIO_MAX_RTT_MS and loss <= AUDIO_MAX_LOSS_PCT and upload_kbps >= AUDIO_MIN_KBPS:
        return "audio-only recommended"
    return "too weak"


class CpuBudget:
    """Admission control in percent of one core, committed per job for its whole life."""

    def __init__(self, capacity_pct: int) -> None:
        self.capacity_pct = capacity_pct
        self.committed_pct = 0

    def admit(self, cost_pct: int, what: str) -> None:
        if self.committed_pct + cost_pct > self.capacity_pct:
            raise WorkerBusy(f"The media server is at capacity and cannot start a {what} now; retry in a minute.")
        self.committed_pct += cost_pct

    def release(self, cost_pct: int) -> None:
        self.committed_pct = max(0, self.committed_pct - cost_pct)


def ice_configuration(settings: Settings) -> RTCConfiguration:
    """Our own STUN/TURN servers, or an empty list: with ``iceServers=None`` aiortc would ask Google's STUN server.

    aiortc uses the first usable STUN and the first usable TURN URL only (rtc.md §1.3); credentials are minted per
    peer connection, so a long-running worker never holds expired ones.
    """
    return RTCConfiguration(iceServers=[
        RTCIceServer(urls=s.urls, username=s.username, credential=s.credential)
        for s in ice_servers(settings, "media-worker")])


def _prefer_vp8(transceiver: RTCRtpTransceiver) -> None:
    """VP8 first (rtc.md §1.3: aiortc's H.264 is baseline-only and has Safari trouble); H.264 stays as a fallback so
    an app that cannot do VP8 still gets an answer."""
    if transceiver.kind != "video":
        return
    codecs = RTCRtpSender.getCapabilities("video").codecs
    transceiver.setCodecPreferences(sorted(codecs, key=lambda c: c.mimeType.lower() not in ("video/vp8", "video/rtx")))


def _offered_directions(sdp: str) -> dict[str, str]:
    """Direction of each audio/video m-line by mid, as the app offered it; refuses an offer that sends no media."""
    try:
        parsed = SessionDescription.parse(sdp)
    except ValueError as exc:
        raise BadOffer(f"The offer is not valid SDP: {exc}") from None
    directions = {m.rtp.muxId: m.direction or "sendrecv" for m in parsed.media if m.kind in ("audio", "video")}
    if not any("send" in d for d in directions.values()):
        raise BadOffer("The offer sends no audio or video.")
    return directions


class _EchoTrack(MediaStreamTrack):
    """One received track sent back to its sender, counting frames as proof that media made the round trip."""

    def __init__(self, source: MediaStreamTrack) -> None:
        super().__init__()
        self.kind = source.kind
        self._source = source
        self.frames = 0

    async def recv(self) -> Frame | Packet[Any]:
        frame = await self._source.recv()
        self.frames += 1
        return frame

    def stop(self) -> None:
        super().stop()
        self._source.stop()


class _Peer:
    """One RTCPeerConnection with its life rules: closed on every path, given up if it never connects."""

    def __init__(self, settings: Settings) -> None:
        self.pc = RTCPeerConnection(ice_configuration(settings))
        self.connected = asyncio.Event()
        self.ended = asyncio.Event()
        self._timer = asyncio.get_running_loop().call_later(CONNECT_TIMEOUT_S, self._give_up)

        @self.pc.on("connectionstatechange")
        def _on_state() -> None:
            state = self.pc.connectionState
            if state == "connected":
                self.connected.set()
            elif state in ("failed", "closed"):
                self.ended.set()

    def _give_up(self) -> None:
        if not self.connected.is_set():
            self.ended.set()

    async def wait_connected(self, timeout_s: float) -> bool:
        """True once connected; False if the connection ended, was given up, or ``timeout_s`` passed first."""
        waiters = [asyncio.ensure_future(self.connected.wait()), asyncio.ensure_future(self.ended.wait())]
        try:
            await asyncio.wait(waiters, timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()
        return self.connected.is_set()

    async def accept_offer(self, offer_sdp: str) -> dict[str, str]:
        """Apply the app's offer (we are always the answerer: aiortc cannot roll back, so never the polite side);
        returns the offered direction of each m-line by mid."""
        directions = _offered_directions(offer_sdp)
        try:
            await self.pc.setRemoteDescription(RTCSessionDescription(sdp=offer_sdp, type="offer"))
        except (ValueError, OperationError) as exc:  # no ICE credentials or fingerprint, no codec in common...
            raise BadOffer(f"The offer cannot be answered: {exc}") from None
        for transceiver in self.pc.getTransceivers():
            _prefer_vp8(transceiver)
        return directions

    async def answer(self) -> str:
        """Our answer, with every local candidate gathered into it (aiortc does not trickle)."""
        await self.pc.setLocalDescription(await self.pc.createAnswer())
        return self.pc.localDescription.sdp

    async def close(self) -> None:
        self._timer.cancel()
        await self.pc.close()


async def _wait(event: asyncio.Event, timeout_s: float) -> bool:
    try:
        await asyncio.wait_for(event.wait(), timeout_s)
    except TimeoutError:
        return False
    return True


class PrecallSession:
    """An echo peer for one pre-call test, with the link figures sampled from getStats once a second."""

    def __init__(self, session_id: UUID, peer: _Peer, max_duration_s: int) -> None:
        self.session_id = session_id
        self.peer = peer
        self.max_duration_s = max_duration_s
        self.created = time.monotonic()
        self.finished_at: float | None = None
        self.state: PrecallState = "connecting"
        self.echoes: list[_EchoTrack] = []
        self.relay = MediaRelay()
        self.blackhole = MediaBlackhole()
        self.rtt_ms: float | None = None
        self.upload_loss_pct: float | None = None
        self.download_loss_pct: float | None = None
        self.jitter_ms: float | None = None
        self._bytes: deque[tuple[float, int, int]] = deque()
        self.task: asyncio.Task[None] | None = None

    async def start(self, offer_sdp: str) -> str:
        pc = self.peer.pc
        directions = await self.peer.accept_offer(offer_sdp)
        for transceiver in pc.getTransceivers():
            remote = transceiver.receiver.track
            offered = directions.get(transceiver.mid or "", "inactive")
            if "send" not in offered:
                continue  # the app sends nothing on this m-line: nothing to consume or echo
            if "recv" in offered:
                # buffered=False: when encoding falls behind, the echo skips to the newest frame instead of queueing
                # a growing backlog (buffered=True measured ~1 s of added latency, rtc.md §1.2)
                echo = _EchoTrack(self.relay.subscribe(remote, buffered=False))
                pc.addTrack(echo)
                self.echoes.append(echo)
            else:
                self.blackhole.addTrack(remote)  # an unconsumed remote track grows without bound (rtc.md §1.3)
        await self.blackhole.start()
        return await self.peer.answer()

    async def run(self) -> None:
        deadline = self.created + self.max_duration_s
        if await self.peer.wait_connected(max(0.0, deadline - time.monotonic())):
            self.state = "running"
            while not self.peer.ended.is_set() and time.monotonic() < deadline:
                await self._sample()
                await _wait(self.peer.ended, min(STATS_INTERVAL_S, max(0.0, deadline - time.monotonic())))
            await self._sample()  # last figures before the connection goes away
            self.state = "finished"
        else:
            self.state = "failed"

    async def close(self) -> None:
        for echo in self.echoes:
            echo.stop()
        await self.blackhole.stop()
        await self.peer.close()
        self.finished_at = time.monotonic()

    async def _sample(self) -> None:
        if self.peer.pc.connectionState == "closed":
            return
        stats = await self.peer.pc.getStats()
        received = lost = remote_received = remote_lost = bytes_in = bytes_out = 0
        jitters: list[float] = []
        rtts: list[float] = []
        for item in stats.values():
            if isinstance(item, RTCInboundRtpStreamStats):
                received += item.packetsReceived
                lost += max(0, item.packetsLost)
                jitters.append(item.jitter / CLOCK_RATE.get(item.kind, 90_000) * 1000)
            elif isinstance(item, RTCRemoteInboundRtpStreamStats):
                remote_received += max(0, item.packetsReceived)
                remote_lost += max(0, item.packetsLost)
                if item.roundTripTime is not None:  # None until the app's first receiver report
                    rtts.append(item.roundTripTime * 1000)
            elif isinstance(item, RTCTransportStats):
                bytes_in += item.bytesReceived
                bytes_out += item.bytesSent
        if received + lost:
            self.upload_loss_pct = 100 * lost / (received + lost)
        if remote_received + remote_lost:
            self.download_loss_pct = 100 * remote_lost / (remote_received + remote_lost)
        if jitters:
            self.jitter_ms = max(jitters)
        if rtts:
            self.rtt_ms = max(rtts)
        now = time.monotonic()
        self._bytes.append((now, bytes_in, bytes_out))
        while len(self._bytes) > 2 and now - self._bytes[1][0] >= BITRATE_WINDOW_S:
            self._bytes.popleft()

    def _kbps(self) -> tuple[float | None, float | None]:
        if len(self._bytes) < 2:
            return None, None
        (t0, in0, out0), (t1, in1, out1) = self._bytes[0], self._bytes[-1]
        if t1 - t0 < 0.5:
            return None, None
        return (in1 - in0) * 8 / (t1 - t0) / 1000, (out1 - out0) * 8 / (t1 - t0) / 1000

    def report(self) -> PrecallReport:
        upload_kbps, download_kbps = self._kbps()
        worst_loss = max((x for x in (self.upload_loss_pct, self.download_loss_pct) if x is not None), default=None)
        judged: Verdict | None = "too weak" if self.state == "failed" else verdict(self.rtt_ms, worst_loss,
                                                                                    upload_kbps)
        end = self.finished_at or time.monotonic()
        return PrecallReport(
            session_id=self.session_id, state=self.state, verdict=judged,
            advice=NO_CONNECTION_ADVICE if self.state == "failed" else ADVICE[judged],
            elapsed_s=round(end - self.created, 2), rtt_ms=_round(self.rtt_ms),
            upload_loss_pct=_round(self.upload_loss_pct), download_loss_pct=_round(self.download_loss_pct),
            jitter_ms=_round(self.jitter_ms), upload_kbps=_round(upload_kbps), download_kbps=_round(download_kbps),
            video_frames_echoed=sum(e.frames for e in self.echoes if e.kind == "video"),
            audio_frames_echoed=sum(e.frames for e in self.echoes if e.kind == "audio"),
        )


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


def _probe(path: Path) -> tuple[int | None, float | None]:
    """Size and playable duration of a finished recording, read back from the file itself."""
    if not path.exists():
        return None, None
    size = path.stat().st_size
    try:
        with av.open(str(path)) as container:
            duration = container.duration / 1_000_000 if container.duration else None
    except av.FFmpegError:
        duration = None
    return size, duration


class RecordingJob:
    """One participant's extra peer connection written to a file by MediaRecorder until something stops it."""

    def __init__(self, start: WorkerRecordingStart, path: Path, peer: _Peer) -> None:
        self.start_request = start
        self.path = path
        self.peer = peer
        # Matroska with H.264 + AAC: libx264 costs ~9.5 ms a 640×480 frame here against ~15 ms for libvpx (WebM),
        # and unlike MP4 a Matroska file cut short by a crash still plays up to its last cluster.
        self.recorder = MediaRecorder(str(path), format="matroska")
        self.started_at = datetime.now(UTC)
        self.stop_reason: StopReason | None = None
        self.state: str = "recording"
        self.size_bytes: int | None = None
        self.duration_s: float | None = None
        self.finished_at: float | None = None
        self.task: asyncio.Task[None] | None = None

        @peer.pc.on("track")
        def _on_track(track: MediaStreamTrack) -> None:
            self.recorder.addTrack(track)  # the recorder consumes every remote track

    async def begin(self) -> str:
        await self.peer.accept_offer(self.start_request.sdp)
        answer = await self.peer.answer()
        await self.recorder.start()
        return answer

    def request_stop(self, reason: StopReason) -> None:
        self.stop_reason = self.stop_reason or reason
        self.peer.ended.set()

    async def run(self) -> None:
        if not await _wait(self.peer.ended, self.start_request.max_duration_s):
            self.stop_reason = self.stop_reason or "time-limit"
        if not self.peer.connected.is_set():
            self.state, self.stop_reason = "failed", self.stop_reason or "failed"
        self.stop_reason = self.stop_reason or "peer-disconnected"

    async def close(self) -> None:
        try:
            await self.recorder.stop()  # flushes the encoders and writes the Matroska index
        except (av.FFmpegError, ValueError) as exc:
            # e.g. a stream that never received a frame has no size to write a header with
            log.warning("recording could not be finalised", extra={"recording": str(self.start_request.recording_id),
                                                                    "error": str(exc)})
            self.state = "failed"
        await self.peer.close()
        self.size_bytes, self.duration_s = await asyncio.to_thread(_probe, self.path)
        if self.state == "recording":
            self.state = "stopped" if self.duration_s else "failed"
        self.finished_at = time.monotonic()

    def describe(self) -> WorkerRecording:
        s = self.start_request
        return WorkerRecording(
            recording_id=s.recording_id, consultation_id=s.consultation_id, role=s.role,
            state="recording" if self.finished_at is None else ("stopped" if self.state == "stopped" else "failed"),
            path=str(self.path), started_at=self.started_at,
            duration_s=None if self.duration_s is None else round(self.duration_s, 2), size_bytes=self.size_bytes,
            stop_reason=self.stop_reason if self.finished_at is not None else None)


class MediaWorker:
    """Every live session and recording of this process, and the CPU budget they draw on."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.budget = CpuBudget(settings.media_cpu_budget_pct)
        self.recordings_dir = settings.data_dir / "recordings"
        self.precalls: dict[UUID, PrecallSession] = {}
        self.recordings: dict[UUID, RecordingJob] = {}

    async def start_precall(self, request: WorkerPrecallStart) -> str:
        self._forget_finished()
        if request.session_id in self.precalls:
            raise Conflict("This pre-call session already exists.")
        self.budget.admit(PRECALL_COST_PCT, "connection test")
        session = PrecallSession(request.session_id, _Peer(self.settings), request.max_duration_s)
        try:
            answer = await session.start(request.sdp)
        except BaseException:
            await session.close()
            self.budget.release(PRECALL_COST_PCT)
            raise
        self.precalls[request.session_id] = session
        session.task = asyncio.create_task(self._run_precall(session))
        return answer

    async def _run_precall(self, session: PrecallSession) -> None:
        try:
            await session.run()
        finally:
            await session.close()
            self.budget.release(PRECALL_COST_PCT)

    def precall_report(self, session_id: UUID) -> PrecallReport:
        session = self.precalls.get(session_id)
        if session is None:
            raise NotFound("This media worker has no such pre-call session (finished long ago, or restarted).")
        return session.report()

    async def start_recording(self, request: WorkerRecordingStart) -> WorkerRecordingAnswer:
        self._forget_finished()
        if request.recording_id in self.recordings:
            raise Conflict("This recording already exists.")
        folder = self.recordings_dir / str(request.consultation_id)
        path = folder / f"{request.role}-{request.seq}.mkv"
        if path.exists():
            raise Conflict(f"{path.name} already exists for this consultation; it is never overwritten.")
        self.budget.admit(RECORDING_COST_PCT, "recording")
        try:
            folder.mkdir(parents=True, exist_ok=True)
            job = RecordingJob(request, path, _Peer(self.settings))
        except BaseException:
            self.budget.release(RECORDING_COST_PCT)
            raise
        try:
            answer = await job.begin()
        except BaseException:
            job.request_stop("failed")
            await job.close()
            self.budget.release(RECORDING_COST_PCT)
            path.unlink(missing_ok=True)
            raise
        self.recordings[request.recording_id] = job
        job.task = asyncio.create_task(self._run_recording(job))
        return WorkerRecordingAnswer(sdp=answer, path=str(path))

    async def _run_recording(self, job: RecordingJob) -> None:
        try:
            await job.run()
        finally:
            await job.close()
            self.budget.release(RECORDING_COST_PCT)
            log.info("recording finished", extra={"recording": str(job.start_request.recording_id),
                                                  "reason": job.stop_reason, "seconds": job.duration_s})

    async def stop_recordings(self, request: WorkerRecordingStop) -> list[WorkerRecording]:
        jobs = [j for j in self.recordings.values() if j.start_request.consultation_id == request.consultation_id]
        for job in jobs:
            if job.finished_at is None:
                job.request_stop(request.reason)
        await asyncio.gather(*(j.task for j in jobs if j.task is not None))
        return [j.describe() for j in jobs]

    def recordings_of(self, consultation_id: UUID) -> list[WorkerRecording]:
        return [j.describe() for j in self.recordings.values() if j.start_request.consultation_id == consultation_id]

    def health(self) -> WorkerHealth:
        return WorkerHealth(
            status="ok", cpu_budget_pct=self.budget.capacity_pct, cpu_committed_pct=self.budget.committed_pct,
            precall_sessions=sum(1 for s in self.precalls.values() if s.finished_at is None),
            recordings=sum(1 for j in self.recordings.values() if j.finished_at is None))

    async def shutdown(self) -> None:
        for job in self.recordings.values():
            job.request_stop("worker-shutdown")
        for session in self.precalls.values():
            session.peer.ended.set()
        tasks = [t for t in (*(j.task for j in self.recordings.values()), *(s.task for s in self.precalls.values()))
                 if t is not None]
        await asyncio.gather(*tasks, return_exceptions=True)

    def _forget_finished(self) -> None:
        cutoff = time.monotonic() - KEEP_FINISHED_S
        for key, session in list(self.precalls.items()):
            if session.finished_at is not None and session.finished_at < cutoff:
                del self.precalls[key]
        for key, job in list(self.recordings.items()):
            if job.finished_at is not None and job.finished_at < cutoff:
                del self.recordings[key]


Worker = NamedDependency[MediaWorker]


class WorkerController(Controller):
    """The worker's loopback API; only the API calls it (see ``create_worker_app`` for the bearer check)."""

    path = "/"

    @post("/precall", status_code=201)
    async def start_precall(self, data: WorkerPrecallStart, worker: Worker) -> WorkerAnswer:
        return WorkerAnswer(sdp=await worker.start_precall(data))

    @get("/precall/{session_id:uuid}")
    async def precall_report(self, session_id: FromPath[UUID], worker: Worker) -> PrecallReport:
        return worker.precall_report(session_id)

    @post("/recordings", status_code=201)
    async def start_recording(self, data: WorkerRecordingStart, worker: Worker) -> WorkerRecordingAnswer:
        return await worker.start_recording(data)

    @post("/recordings/stop", status_code=200)
    async def stop_recordings(self, data: WorkerRecordingStop, worker: Worker) -> list[WorkerRecording]:
        return await worker.stop_recordings(data)

    @get("/recordings")
    async def recordings(self, consultation_id: UUID, worker: Worker) -> list[WorkerRecording]:
        return worker.recordings_of(consultation_id)


def create_worker_app(settings: Settings) -> Litestar:
    worker = MediaWorker(settings)
    expected = f"Bearer {worker_token(settings.jwt_secret)}"

    def require_token(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
        if connection.headers.get("authorization") != expected:
            raise NotAuthorizedException("media worker token required")

    @get("/health", sync_to_thread=False)
    def health() -> WorkerHealth:
        return worker.health()

    @asynccontextmanager
    async def lifespan(_: Litestar) -> AsyncIterator[None]:
        try:
            yield
        finally:
            await worker.shutdown()  # finalises every recording file before the process exits

    def provide_worker() -> MediaWorker:
        return worker

    return Litestar(
        route_handlers=[Router("/", route_handlers=[WorkerController], guards=[require_token]), health],
        dependencies={"worker": Provide(provide_worker, sync_to_thread=False)},
        lifespan=[lifespan], exception_handlers=dict(EXCEPTION_HANDLERS), openapi_config=None, debug=False,
        logging_config=None,
    )


def _loopback_addresses(use_ipv4: bool, use_ipv6: bool) -> list[str]:
    return ["127.0.0.1"] if use_ipv4 else []


def serve(settings: Settings, host: str, port: int) -> None:
    """Run the worker until SIGINT/SIGTERM; open recordings are finalised on the way out."""
    import uvicorn  # noqa: PLC0415 - only the worker process needs the server

    # aioice logs every candidate-pair check at INFO: thousands of lines a day that say nothing about our jobs
    logging.getLogger("aioice").setLevel(max(logging.WARNING, logging.getLogger().level))
    if settings.media_loopback_only:
        # aioice deliberately never offers 127.0.0.1 (rtc.md §4.5 #2); tests and single-host demos need exactly that
        aioice.ice.get_host_addresses = _loopback_addresses
    uvicorn.run(create_worker_app(settings), host=host, port=port, log_config=None, access_log=False,
                lifespan="on")

