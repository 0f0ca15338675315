"""Test peers for the media worker: an aiortc app that sends generated 640×480 video and a 440 Hz tone, and reads
back what it receives. Each video frame carries its index as a 16-bit barcode of 32×32 black/white blocks along
the top edge, which survives VP8 encoding, so a received frame tells exactly which sent frame it is (rtc.md §4.1).
"""

from __future__ import annotations

import asyncio
import fractions
import os
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import av
from aiortc import MediaStreamTrack, RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError
from av import VideoFrame

from load_tests.peers import ToneTrack

WIDTH, HEIGHT, FPS = 640, 480, 30
BITS, BLOCK = 16, 32
VIDEO_TIME_BASE = fractions.Fraction(1, 90_000)


def _source_planes() -> list[list[bytes]]:
    """30 moving test-pattern frames (lavfi testsrc2), decoded once: the encoder gets real work, like a camera."""
    with av.open(f"testsrc2=size={WIDTH}x{HEIGHT}:rate={FPS}", format="lavfi") as source:
        frames: list[list[bytes]] = []
        for frame in source.decode(video=0):
            yuv = frame.reformat(format="yuv420p")
            frames.append([bytes(plane) for plane in yuv.planes])
            if len(frames) == FPS:
                return frames
    raise RuntimeError("lavfi testsrc2 produced too few frames")


def stamp(frame: VideoFrame, index: int) -> None:
    plane = frame.planes[0]
    view = memoryview(plane)
    for bit in range(BITS):
        value = bytes([235 if (index >> bit) & 1 else 16]) * BLOCK
        for row in range(BLOCK):
            start = row * plane.line_size + bit * BLOCK
            view[start:start + BLOCK] = value


def read_stamp(frame: VideoFrame) -> int:
    yuv = frame if frame.format.name == "yuv420p" else frame.reformat(format="yuv420p")
    plane = yuv.planes[0]
    data = memoryview(plane)
    row = BLOCK // 2 * plane.line_size
    return sum(1 << bit for bit in range(BITS) if data[row + bit * BLOCK + BLOCK // 2] > 128)


class SyntheticCamera(MediaStreamTrack):
    """640×480 at 30 fps; remembers when each stamped frame was handed to the encoder."""

    kind = "video"

    def __init__(self) -> None:
        super().__init__()
        self._frames = _source_planes()
        self._index = 0
        self._start: float | None = None
        self.sent_at: dict[int, float] = {}

    async def recv(self) -> VideoFrame:
        if self.readyState != "live":
            raise MediaStreamError
        now = time.monotonic()
        if self._start is None:
            self._start = now
        else:
            await asyncio.sleep(max(0.0, self._start + self._index / FPS - now))
        frame = VideoFrame(width=WIDTH, height=HEIGHT, format="yuv420p")
        for plane, data in zip(frame.planes, self._frames[self._index % FPS], strict=True):
            plane.update(data)
        stamp(frame, self._index % (1 << BITS))
        frame.pts = self._index * (90_000 // FPS)
        frame.time_base = VIDEO_TIME_BASE
        self.sent_at[self._index % (1 << BITS)] = time.monotonic()
        self._index += 1
        return frame


@dataclass
class Received:
    """What came back on one remote track: arrival times, and for video the barcode of each frame."""

    kind: str
    arrivals: list[float] = field(default_factory=list)
    stamps: list[int] = field(default_factory=list)
    sizes: set[tuple[int, int]] = field(default_factory=set)
    first: asyncio.Event = field(default_factory=asyncio.Event)


async def consume(track: MediaStreamTrack, into: Received) -> None:
    while True:
        try:
            frame = await track.recv()
        except MediaStreamError:
            return
        into.arrivals.append(time.monotonic())
        if isinstance(frame, VideoFrame):
            into.stamps.append(read_stamp(frame))
            into.sizes.add((frame.width, frame.height))
        into.first.set()


@dataclass
class AppPeer:
    """The patient's (or doctor's) app: sends camera + microphone, consumes whatever comes back."""

    pc: RTCPeerConnection
    camera: SyntheticCamera
    microphone: ToneTrack
    received: dict[str, Received]
    tasks: list[asyncio.Task[None]]

    async def offer(self) -> dict[str, str]:
        await self.pc.setLocalDescription(await self.pc.createOffer())  # gathers every candidate here
        return {"type": "offer", "sdp": self.pc.localDescription.sdp}

    async def accept(self, answer: dict[str, Any]) -> None:
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=answer["sdp"], type=answer["type"]))


@asynccontextmanager
async def app_peer() -> AsyncIterator[AppPeer]:
    """iceServers=[]: never aiortc's default Google STUN. Host candidates are loopback by the tests' patch."""
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    peer = AppPeer(pc, SyntheticCamera(), ToneTrack(), {}, [])

    @pc.on("track")
    def on_track(track: MediaStreamTrack) -> None:
        peer.received[track.kind] = Received(track.kind)
        peer.tasks.append(asyncio.ensure_future(consume(track, peer.received[track.kind])))

    pc.addTrack(peer.microphone)
    pc.addTrack(peer.camera)
    try:
        yield peer
    finally:
        await pc.close()  # before the loop ends: decoder threads and tasks belong to it
        for task in peer.tasks:
            task.cancel()
        await asyncio.gather(*peer.tasks, return_exceptions=True)


async def wait_for(predicate: Any, timeout_s: float, what: str, interval_s: float = 0.05) -> None:
    """Poll ``predicate`` (sync or async) until true; fail naming ``what`` after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        result = predicate()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        await asyncio.sleep(interval_s)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc), to report the worker's cost per job."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
