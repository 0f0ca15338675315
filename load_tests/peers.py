"""Synthetic call participants for benchmarks and end-to-end tests: an aiortc peer that signals through our
WebSocket exactly as the apps do, sends generated 640×480 video and a 440 Hz tone, and notes when media arrives.

Loopback only: aioice skips 127.0.0.1 when gathering, so callers run ``use_loopback_candidates()`` first, and pass
``ice_servers=[]`` unless they test TURN (aiortc would otherwise ask Google's STUN server).
"""

from __future__ import annotations

import asyncio
import contextlib
import fractions
import json
import math
import struct
import time
from collections.abc import Callable
from typing import Any

import aioice.ice
import av
from aiortc import (
    MediaStreamTrack,
    RTCConfiguration,
    RTCIceServer,
    RTCIceTransportPolicy,
    RTCPeerConnection,
    RTCSessionDescription,
)
from aiortc.mediastreams import MediaStreamError, VideoStreamTrack
from websockets.asyncio.client import ClientConnection, connect

AUDIO_RATE = 48_000
AUDIO_PTIME_S = 0.020


def use_loopback_candidates() -> Callable[[], None]:
    """Make aioice gather 127.0.0.1 (it deliberately skips loopback); returns the undo."""
    original = aioice.ice.get_host_addresses

    def loopback(use_ipv4: bool, use_ipv6: bool) -> list[str]:
        return ["127.0.0.1"] if use_ipv4 else []

    aioice.ice.get_host_addresses = loopback

    def undo() -> None:
        aioice.ice.get_host_addresses = original

    return undo


def pattern_frames(width: int = 640, height: int = 480, count: int = 60) -> list[av.VideoFrame]:
    """Moving colour bars from FFmpeg's testsrc2, decoded once: the encoder does real work, the CPU of the
    generator does not count."""
    source = av.open(f"testsrc2=size={width}x{height}:rate=30", format="lavfi")
    try:
        frames = []
        for frame in source.decode(video=0):
            frames.append(frame.reformat(format="yuv420p"))
            if len(frames) == count:
                return frames
    finally:
        source.close()
    raise RuntimeError("lavfi produced too few frames")


class PatternTrack(VideoStreamTrack):
    """30 fps video cycling pre-decoded frames."""

    def __init__(self, frames: list[av.VideoFrame]) -> None:
        super().__init__()
        self._frames = frames
        self._index = 0

    async def recv(self) -> av.VideoFrame:
        pts, time_base = await self.next_timestamp()
        frame = self._frames[self._index % len(self._frames)]
        self._index += 1
        frame.pts, frame.time_base = pts, time_base
        return frame


class ToneTrack(MediaStreamTrack):
    """A 440 Hz tone in 20 ms frames, paced in real time."""

    kind = "audio"

    def __init__(self) -> None:
        super().__init__()
        samples = int(AUDIO_RATE * AUDIO_PTIME_S)
        wave = [int(8000 * math.sin(2 * math.pi * 440 * i / AUDIO_RATE)) for i in range(samples)]
        self._pcm = struct.pack(f"<{samples}h", *wave)
        self._samples = samples
        self._pts = 0
        self._start: float | None = None

    async def recv(self) -> av.AudioFrame:
        if self._start is None:
            self._start = time.monotonic()
        else:
            self._pts += self._samples
            wait = self._start + self._pts / AUDIO_RATE - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
        frame = av.AudioFrame(format="s16", layout="mono", samples=self._samples)
        frame.planes[0].update(self._pcm)
        frame.sample_rate = AUDIO_RATE
        frame.pts = self._pts
        frame.time_base = fractions.Fraction(1, AUDIO_RATE)
        return frame


class Peer:
    """One participant: a signaling WebSocket plus an RTCPeerConnection. The later joiner offers (rtc.md §2.4)."""

    def __init__(self, ws_url: str, token: str, frames: list[av.VideoFrame], *,
                 ice_servers: list[RTCIceServer] | None = None, relay_only: bool = False) -> None:
        self.ws_url = ws_url
        self.token = token
        self.frames = frames
        self.ice_servers = ice_servers
        self.relay_only = relay_only
        self.ws: ClientConnection | None = None
        self.pc: RTCPeerConnection | None = None
        self.joined: dict[str, Any] = {}
        self.frames_received = {"audio": 0, "video": 0}
        self.first_frame_at: dict[str, float] = {}
        self.connected = asyncio.Event()
        self.media_flowing = asyncio.Event()
        self._frame_arrived = asyncio.Condition()
        self.inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()  # every other frame the server sent
        self._tasks: list[asyncio.Task[None]] = []

    async def join(self) -> dict[str, Any]:
        """Open the socket, send join, wait for joined; then signal in the background."""
        self.ws = await connect(self.ws_url, open_timeout=10, max_size=2**20)
        await self.ws.send(json.dumps({"type": "join", "token": self.token,
                                       "client": {"platform": "aiortc", "app_version": "test"}}))
        self.joined = json.loads(await asyncio.wait_for(self.ws.recv(), 10))
        if self.joined.get("type") != "joined":
            raise RuntimeError(f"expected joined, got {self.joined}")
        servers = self.ice_servers
        if servers is None:
            servers = [RTCIceServer(**s) for s in self.joined["ice_servers"]]
        policy = RTCIceTransportPolicy.RELAY if self.relay_only else RTCIceTransportPolicy.ALL
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=servers, iceTransportPolicy=policy))
        self.pc.on("track", self._on_track)
        self.pc.on("connectionstatechange", self._on_state)
        self._tasks.append(asyncio.create_task(self._signal()))
        if self.joined["peers"]:
            await self._offer()
        return self.joined

    async def _offer(self) -> None:
        assert self.pc is not None and self.ws is not None
        self.pc.addTrack(ToneTrack())
        self.pc.addTrack(PatternTrack(self.frames))
        await self.pc.setLocalDescription(await self.pc.createOffer())  # aiortc gathers here; no trickle
        await self.ws.send(json.dumps({"type": "offer", "sdp": self.pc.localDescription.sdp}))

    async def _signal(self) -> None:
        assert self.pc is not None and self.ws is not None
        async for raw in self.ws:
            message = json.loads(raw)
            if message["type"] == "offer":
                await self.pc.setRemoteDescription(RTCSessionDescription(message["sdp"], "offer"))
                self.pc.addTrack(ToneTrack())
                self.pc.addTrack(PatternTrack(self.frames))
                await self.pc.setLocalDescription(await self.pc.createAnswer())
                await self.ws.send(json.dumps({"type": "answer", "sdp": self.pc.localDescription.sdp}))
            elif message["type"] == "answer":
                await self.pc.setRemoteDescription(RTCSessionDescription(message["sdp"], "answer"))
            else:
                self.inbox.put_nowait(message)

    async def expect(self, kind: str, within_s: float = 10) -> dict[str, Any]:
        """The next server frame of type ``kind`` (others before it are dropped)."""
        async with asyncio.timeout(within_s):
            while True:
                message = await self.inbox.get()
                if message["type"] == kind:
                    return message

    def _on_state(self) -> None:
        if self.pc is not None and self.pc.connectionState == "connected":
            self.connected.set()

    def _on_track(self, track: MediaStreamTrack) -> None:
        # always drain received tracks: aiortc queues decoded frames without bound otherwise
        self._tasks.append(asyncio.create_task(self._consume(track)))

    async def _consume(self, track: MediaStreamTrack) -> None:
        with contextlib.suppress(MediaStreamError):
            while True:
                await track.recv()
                self.frames_received[track.kind] += 1
                self.first_frame_at.setdefault(track.kind, time.monotonic())
                if all(self.frames_received.values()):
                    self.media_flowing.set()
                async with self._frame_arrived:
                    self._frame_arrived.notify_all()

    async def receive_more(self, frames: int) -> None:
        """Until ``frames`` more video and audio frames each have arrived from now on."""
        wanted = {kind: count + frames for kind, count in self.frames_received.items()}
        async with self._frame_arrived:
            await self._frame_arrived.wait_for(
                lambda: all(self.frames_received[k] >= wanted[k] for k in wanted))

    async def close(self) -> None:
        if self.pc is not None:
            await self.pc.close()
        if self.ws is not None:
            await self.ws.close()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
