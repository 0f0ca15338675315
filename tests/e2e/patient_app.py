"""The patient's app in the browser tests: an aiortc peer that signs in by SMS, joins a call's signaling room and
sends generated video and a tone, and the check that the console's <video> of it really plays."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from typing import Any

import av
import httpx
from aiortc import MediaStreamTrack, RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError
from aiortc.sdp import candidate_from_sdp
from playwright.async_api import Page
from websockets.asyncio.client import ClientConnection, connect

from load_tests.peers import PatternTrack, ToneTrack
from notifications.sms_sandbox import SmsSandbox
from tests.helpers import latest_otp

REMOTE_VIDEO = "document.getElementById('remote-video')"


def _fingerprint(sdp: str) -> str:
    match = re.search(r"^a=fingerprint:(.+)$", sdp, re.MULTILINE)
    return match.group(1).strip() if match else ""


def _ice_ufrag(sdp: str) -> str:
    match = re.search(r"^a=ice-ufrag:(.+)$", sdp, re.MULTILINE)
    return match.group(1).strip() if match else ""


class PatientApp:
    """The patient's app: joins the call's signaling room with a join token, sends generated video and a tone,
    counts the video frames it decodes. Like every aiortc peer it is the impolite side and cannot restart ICE, so a
    new offer from a new peer connection (another DTLS fingerprint) gets a new peer connection here too."""

    def __init__(self, http: httpx.AsyncClient, access_token: str, consultation_id: str,
                 frames: list[av.VideoFrame]) -> None:
        self.http = http
        self.access_token = access_token
        self.consultation_id = consultation_id
        self.frames = frames
        self.ws: ClientConnection | None = None
        self.pc: RTCPeerConnection | None = None
        self.connections = 0  # peer connections made so far
        self.video_frames = 0
        self.video_sizes: set[tuple[int, int]] = set()
        self.inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._frame_arrived = asyncio.Condition()
        self._tasks: list[asyncio.Task[None]] = []

    async def join(self) -> dict[str, Any]:
        grant = await self.http.post(f"/consultations/{self.consultation_id}/join-token",
                                     headers={"Authorization": f"Bearer {self.access_token}"})
        assert grant.status_code == 201, grant.text
        url = str(self.http.base_url).replace("http://", "ws://").rstrip("/") + grant.json()["websocket_path"]
        self.ws = await connect(url, open_timeout=10, max_size=2**20)
        await self.send({"type": "join", "token": grant.json()["token"],
                         "client": {"platform": "aiortc", "app_version": "test"}})
        joined: dict[str, Any] = json.loads(await asyncio.wait_for(self.ws.recv(), 10))
        assert joined["type"] == "joined", joined
        self._tasks.append(asyncio.create_task(self._signal()))
        if joined["peers"]:  # the later joiner offers
            await self.offer_anew()
        return joined

    async def offer_anew(self) -> None:
        pc = self._renew()
        await pc.setLocalDescription(await pc.createOffer())
        await self.send({"type": "offer", "sdp": pc.localDescription.sdp})

    async def send(self, frame: dict[str, Any]) -> None:
        assert self.ws is not None
        await self.ws.send(json.dumps(frame))

    def _renew(self) -> RTCPeerConnection:
        if self.pc is not None:
            # closing can wait on a peer that is gone for good; the new connection need not wait for it
            self._tasks.append(asyncio.create_task(self.pc.close()))
        pc = self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))  # never Google's STUN
        self.connections += 1
        pc.on("track", lambda track: self._tasks.append(asyncio.create_task(self._consume(track))))
        pc.addTrack(ToneTrack())
        pc.addTrack(PatternTrack(self.frames))
        return pc

    async def _signal(self) -> None:
        assert self.ws is not None
        async for raw in self.ws:
            message = json.loads(raw)
            kind = message["type"]
            if kind == "offer":
                await self._offered(message["sdp"])
            elif kind == "answer" and self.pc is not None and self.pc.signalingState == "have-local-offer":
                await self.pc.setRemoteDescription(RTCSessionDescription(message["sdp"], "answer"))
            elif kind == "ice-candidate":
                await self._candidate(message)
            else:
                self.inbox.put_nowait(message)

    async def _offered(self, sdp: str) -> None:
        pc = self.pc
        if pc is not None and pc.signalingState == "have-local-offer":
            return  # impolite: our own offer wins a collision
        # aiortc closes a connection by itself once the other side's DTLS says goodbye
        live = pc is not None and pc.signalingState != "closed"
        current = pc.remoteDescription.sdp if live and pc is not None and pc.remoteDescription else None
        same_connection = current is not None and _fingerprint(current) == _fingerprint(sdp)
        if same_connection and _ice_ufrag(current or "") != _ice_ufrag(sdp):
            # an ICE restart, which aiortc cannot do: it starts a new connection and offers (rtc.md §2.5)
            await self.offer_anew()
            return
        if pc is None or not same_connection:
            pc = self._renew()
        await pc.setRemoteDescription(RTCSessionDescription(sdp, "offer"))
        await pc.setLocalDescription(await pc.createAnswer())
        await self.send({"type": "answer", "sdp": pc.localDescription.sdp})

    async def _candidate(self, message: dict[str, Any]) -> None:
        text = message.get("candidate")
        if self.pc is None or not text:
            return
        candidate = candidate_from_sdp(text.split(":", 1)[1])
        candidate.sdpMid, candidate.sdpMLineIndex = message.get("sdpMid"), message.get("sdpMLineIndex")
        with contextlib.suppress(ValueError):  # a candidate for a connection already replaced
            await self.pc.addIceCandidate(candidate)

    async def _consume(self, track: MediaStreamTrack) -> None:
        with contextlib.suppress(MediaStreamError):
            while True:
                frame = await track.recv()
                if isinstance(frame, av.VideoFrame):
                    self.video_frames += 1
                    self.video_sizes.add((frame.width, frame.height))
                    async with self._frame_arrived:
                        self._frame_arrived.notify_all()

    async def receive_video(self, frames: int, within_s: float = 15) -> None:
        """Until ``frames`` more video frames from the browser have been decoded."""
        wanted = self.video_frames + frames
        async with asyncio.timeout(within_s), self._frame_arrived:
            await self._frame_arrived.wait_for(lambda: self.video_frames >= wanted)

    async def expect(self, kind: str, within_s: float = 10) -> dict[str, Any]:
        """The next server frame of type ``kind`` (others before it are dropped)."""
        async with asyncio.timeout(within_s):
            while True:
                message = await self.inbox.get()
                if message["type"] == kind:
                    return message

    async def close(self) -> None:
        if self.pc is not None:
            await self.pc.close()
        if self.ws is not None:
            await self.ws.close()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


async def sign_in_patient(http: httpx.AsyncClient, sms: SmsSandbox, phone: str) -> str:
    """The patient app's sign-in: an SMS code from the sandbox."""
    sent = await http.post("/auth/otp/request", json={"phone": phone})
    assert sent.status_code == 202, sent.text
    code = latest_otp(sms, phone)
    verified = await http.post("/auth/otp/verify", json={"phone": phone, "code": code})
    assert verified.status_code == 200, verified.text
    token: str = verified.json()["access_token"]
    return token


async def remote_video_plays(page: Page) -> None:
    """The patient's video has a picture and its playback clock moves on (about 0.5 s of new frames)."""
    await page.wait_for_function(f"() => {REMOTE_VIDEO}.videoWidth > 0 && {REMOTE_VIDEO}.currentTime > 0")
    started = await page.evaluate(f"{REMOTE_VIDEO}.currentTime")
    await page.wait_for_function(f"() => {REMOTE_VIDEO}.currentTime > {started} + 0.5")
    assert await page.evaluate(f"{REMOTE_VIDEO}.videoWidth") == 640  # the patient's 640×480 pattern
