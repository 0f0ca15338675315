"""Signaling WebSocket fuzz: random, truncated, binary, oversized, deeply nested and out-of-order frames from a
seeded generator, sent by sockets that have not joined and by a participant inside a call, while another call's pair
keeps talking. The server answers each with an error frame or a close code, never an internal error, the noisy socket
keeps working, and the other room receives every message it was sent, in order.

About a minute in CI (fixed seed: the same frames every run); ``LIENTHONG_LONG_TESTS=1`` fuzzes for five.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import time
from collections.abc import AsyncIterator
from typing import Any
from uuid import UUID

import asyncpg
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from api.settings import Settings
from rtc.hub import MAX_FRAME_BYTES, PROTOCOL_ERROR
from rtc.tokens import BAD_TOKEN, CONSULTATION_ENDED, NOT_PARTICIPANT, UNKNOWN_CONSULTATION
from tests.consultations.factories import make_consultation
from tests.reliability.fuzz_support import LONG
from tests.rtc.conftest import (
    OTHER_PATIENT,
    Participant,
    Server,
    doctor_token,
    join_token,
    participant,
    patient_token,
    serve_here,
)

pytestmark = pytest.mark.usefixtures("demo")

SEED = 20260110
FUZZ_S = 300.0 if LONG else 35.0
UNJOINED_SOCKETS = 400 if LONG else 60
# Paced below the hub's 50 frames/s per socket (each fuzz frame is followed by a ping), so every frame is answered.
PACE_S = 0.05
ERROR_CODES = {"invalid-message", "message-too-large", "peer-not-present", "invalid-state", "forbidden"}
# What closing a socket that never joined properly may say: protocol error, or the join token's refusal.
REFUSALS = {PROTOCOL_ERROR, BAD_TOKEN, NOT_PARTICIPANT, UNKNOWN_CONSULTATION, CONSULTATION_ENDED}
INTERNAL_ERROR = 1011
MESSAGE_TOO_BIG = 1009  # uvicorn's answer to a frame over its ws_max_size (1 MiB here, as in tests/rtc)


@pytest.fixture
async def server(settings: Settings) -> AsyncIterator[Server]:
    async with serve_here(settings) as running:
        yield running


# ---------------------------------------------------------------- the frames

def _text(rng: random.Random, most: int) -> str:
    alphabet = "abc xyz 0123456789 {}[]\":,\\ đăâêôơư 🩺 \u0000\u200b\ud7ff\t\n"
    return "".join(rng.choice(alphabet) for _ in range(rng.randint(0, most)))


def _value(rng: random.Random) -> Any:
    return rng.choice([
        None, True, False, 0, -1, 2**63, 1e308, float(rng.randint(-10**6, 10**6)), "", _text(rng, 50),
        [], {}, [_text(rng, 5)], {"type": "offer"}, "x" * rng.choice([64, 65, 2000, 2001, 60_001]),
    ])


def _frame(rng: random.Random) -> dict[str, Any]:
    """A frame shaped like the protocol's, with values that are often wrong."""
    kind = rng.choice(["offer", "answer", "ice-candidate", "media-state", "quality", "chat", "ping", "join",
                       "teleport", "", None, 7, "OFFER", "error", "joined"])
    frame: dict[str, Any] = {"type": kind}
    fields = ["sdp", "negotiation_id", "candidate", "sdpMid", "sdpMLineIndex", "usernameFragment", "audio", "video",
              "screen", "rtt_ms", "loss_pct", "jitter_ms", "quality_limitation", "text", "token", "resume_session",
              "client", "from", "extra"]
    for name in rng.sample(fields, rng.randint(0, 5)):
        frame[name] = _value(rng)
    if kind == "offer" and rng.random() < 0.5:
        frame["sdp"] = "v=0\r\n" + "a=x\r\n" * rng.randint(0, 20)  # a valid offer, relayed to the peer
    return frame


# Sent first, so every run covers them whatever the seed draws: out-of-order, repeated and edge-of-limit frames.
EDGE_FRAMES: list[str | bytes] = [
    json.dumps({"type": "answer", "sdp": "v=0 answer before any offer"}),
    json.dumps({"type": "join", "token": "joining-twice"}),
    json.dumps({"type": "ice-candidate", "candidate": None}),
    json.dumps({"type": "chat", "text": "NUL \u0000 inside"}),
    json.dumps({"type": "chat", "text": "x" * 2000}),
    json.dumps({"type": "chat", "text": "x" * 2001}),
    json.dumps({"type": "quality", "rtt_ms": 1e7, "loss_pct": 100, "quality_limitation": "cpu"}),
    json.dumps({"type": "quality", "rtt_ms": float("nan")}),
    json.dumps({"type": "quality", "rtt_ms": 1e8}),
    json.dumps({"type": "media-state", "audio": "yes", "video": True}),
    json.dumps({"type": "offer", "sdp": "v" * 60_000}),
    json.dumps({"type": "offer", "sdp": "v" * 60_001}),
    json.dumps({"type": "offer", "sdp": "v" * MAX_FRAME_BYTES}),
    json.dumps({"type": "offer", "sdp": "\ud800"}),  # a lone surrogate, escaped
    '{"type": "offer", "sdp": "v=0", "sdp": 1}',  # a repeated key
    '{"type": "offer", "sdp": "v=0"} trailing',
    "", " ", "null", "[]", "{}", '{"type": null}', b"", b"\x00" * 10, "\ud800".encode("utf-8", "surrogatepass"),
]


def fuzz_frame(rng: random.Random) -> str | bytes:
    """One thing a broken or hostile client might send."""
    choice = rng.random()
    if choice < 0.45:
        return json.dumps(_frame(rng))
    if choice < 0.60:  # a truncated valid-looking frame
        text = json.dumps(_frame(rng))
        return text[:rng.randint(0, max(0, len(text) - 1))]
    if choice < 0.68:
        return rng.randbytes(rng.randint(0, 300))  # binary
    if choice < 0.74:
        return _text(rng, 300)  # not JSON at all
    if choice < 0.80:  # just under and over the frame limit
        size = rng.choice([MAX_FRAME_BYTES - 100, MAX_FRAME_BYTES + 1, 3 * MAX_FRAME_BYTES])
        return json.dumps({"type": "chat", "text": "x" * size})
    if choice < 0.85:  # an SDP over the 60,000-character field limit, inside the frame limit
        return json.dumps({"type": "offer", "sdp": "v=0 " + "a" * rng.randint(60_000, 63_000)})
    if choice < 0.90:  # deep nesting, which recursive decoders choke on
        depth = rng.randint(1_000, 20_000)
        return '{"type": "offer", "sdp": ' + "[" * depth + "]" * depth + "}"
    if choice < 0.95:
        return json.dumps({"type": "join", "token": _text(rng, 60) or "t"})  # joining twice
    return json.dumps([_frame(rng)])  # an array, not an object


# ---------------------------------------------------------------- the quiet room


class QuietRoom:
    """A call whose patient sends numbered offers and whose doctor answers each, all through the fuzz."""

    def __init__(self, doctor: Participant, patient: Participant) -> None:
        self.doctor, self.patient = doctor, patient
        self.sent = 0
        self.offers_seen: list[str] = []
        self.answers_seen: list[str] = []

    async def talk(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            number = f"q{self.sent}"
            self.sent += 1
            await self.patient.send({"type": "offer", "sdp": f"v=0 quiet {number}", "negotiation_id": number})
            offer = await self.doctor.expect("offer")
            self.offers_seen.append(offer["negotiation_id"])
            await self.doctor.send({"type": "answer", "sdp": f"v=0 answer {number}", "negotiation_id": number})
            answer = await self.patient.expect("answer")
            self.answers_seen.append(answer["negotiation_id"])
            await asyncio.sleep(0.04)


async def _two_rooms(server: Server, pool: asyncpg.Pool, settings: Settings) -> tuple[UUID, UUID, dict[str, str]]:
    noisy = await make_consultation(pool)
    quiet = await make_consultation(pool, doctor_username="bs.minh", patient_phone=OTHER_PATIENT)
    tokens = {
        "noisy_doctor": await join_token(server, await doctor_token(pool, settings), noisy),
        "noisy_patient": await join_token(server, await patient_token(pool, settings), noisy),
        "spare_patient": await join_token(server, await patient_token(pool, settings), noisy),
        "quiet_doctor": await join_token(server, await doctor_token(pool, settings, "bs.minh"), quiet),
        "quiet_patient": await join_token(server, await patient_token(pool, settings, OTHER_PATIENT), quiet),
    }
    return noisy, quiet, tokens


# ---------------------------------------------------------------- the fuzz


def _is_ping(frame: str | bytes) -> bool:
    """A fuzz frame that is a valid ping after all (unknown fields are ignored), so it gets a pong of its own."""
    with contextlib.suppress(ValueError, RecursionError):  # the deep-nesting frames are too deep for json
        decoded = json.loads(frame)
        return isinstance(decoded, dict) and decoded.get("type") == "ping"
    return False


async def _answers_until_pong(noisy: Participant, pongs: int = 1) -> list[dict[str, Any]]:
    """Everything the server said before answering the ping that follows a fuzz frame."""
    await noisy.send({"type": "ping"})
    said = []
    while pongs:
        frame = await noisy.recv(within_s=10)
        if frame["type"] == "pong":
            pongs -= 1
        else:
            said.append(frame)
    return said


async def _drain(peer: Participant, seen: list[dict[str, Any]], stop: asyncio.Event) -> None:
    """The noisy participant's peer reads what is relayed to it (so its queue never fills)."""
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            seen.append(await peer.recv(within_s=0.5))


async def _unjoined_socket(server: Server, consultation_id: UUID, first: str | bytes) -> int | None:
    """A socket whose first frame is ``first``: the close code it gets (None when it was admitted after all)."""
    async with connect(server.ws_url(consultation_id), open_timeout=10, max_size=2**21) as ws:
        await ws.send(first)
        try:
            async with asyncio.timeout(15):
                async for message in ws:
                    if json.loads(message).get("type") == "joined":
                        return None
        except ConnectionClosed:
            pass
        return ws.close_code


async def test_fuzzed_frames_get_errors_or_close_codes_and_never_disturb_another_room(
        server: Server, pool: asyncpg.Pool, settings: Settings, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.ERROR, logger="lienthong")
    rng = random.Random(SEED)
    noisy_id, quiet_id, tokens = await _two_rooms(server, pool, settings)
    frames_sent = 0
    errors_seen: dict[str, int] = {}
    close_codes: dict[int | None, int] = {}
    async with participant(server, quiet_id, tokens["quiet_doctor"]) as quiet_doctor, \
            participant(server, quiet_id, tokens["quiet_patient"]) as quiet_patient, \
            participant(server, noisy_id, tokens["noisy_doctor"]) as noisy:
        await quiet_doctor.expect("peer-joined")
        quiet = QuietRoom(quiet_doctor, quiet_patient)
        stop = asyncio.Event()
        talking = asyncio.create_task(quiet.talk(stop))

        # 1. Sockets that never join properly: out-of-order, truncated, binary, oversized first frames.
        for _ in range(UNJOINED_SOCKETS):
            code = await _unjoined_socket(server, noisy_id, fuzz_frame(rng))
            close_codes[code] = close_codes.get(code, 0) + 1
        assert set(close_codes) <= REFUSALS | {MESSAGE_TOO_BIG}, close_codes
        # a valid token, but a join whose stored details hold a NUL: refused as a bad frame, not an internal error
        nul_join = {"type": "join", "token": tokens["spare_patient"], "client": {"platform": "web\u0000"}}
        assert await _unjoined_socket(server, noisy_id, json.dumps(nul_join)) == PROTOCOL_ERROR

        # 2. A participant inside the call, its peer present, sends everything else.
        async with participant(server, noisy_id, tokens["noisy_patient"]) as noisy_peer:
            await noisy.expect("peer-joined")
            relayed: list[dict[str, Any]] = []
            draining = asyncio.create_task(_drain(noisy_peer, relayed, stop))
            deadline = time.monotonic() + FUZZ_S
            edges = list(EDGE_FRAMES)
            while time.monotonic() < deadline:
                frame = edges.pop(0) if edges else fuzz_frame(rng)
                await noisy.ws.send(frame)
                frames_sent += 1
                for said in await _answers_until_pong(noisy, pongs=2 if _is_ping(frame) else 1):
                    if said["type"] == "chat":  # a valid chat line: the sender's copy confirms it was kept
                        assert said["from"] == "doctor", said
                        continue
                    assert said["type"] == "error", (str(frame)[:200], said)
                    assert said["code"] in ERROR_CODES, (str(frame)[:200], said)
                    errors_seen[said["code"]] = errors_seen.get(said["code"], 0) + 1
                await asyncio.sleep(PACE_S)
            # an answer without any offer before it is the peers' business: relayed as sent
            await noisy.send({"type": "answer", "sdp": "v=0 unasked answer"})
            assert (await _answers_until_pong(noisy)) == []
            await asyncio.sleep(0.5)
            stop.set()
            await draining
            assert any(f.get("sdp") == "v=0 unasked answer" for f in relayed)
            relayable = {"offer", "answer", "ice-candidate", "media-state", "chat"}
            assert all(f["type"] in relayable and f["from"] == "doctor" for f in relayed), relayed[:3]
        await talking

        # 3. A frame beyond what the server reads at all closes only that socket.
        code = await _unjoined_socket(server, noisy_id, b"x" * (2**20 + 1))
        assert code == MESSAGE_TOO_BIG
        # the noisy doctor's socket still answers (its peer has hung up meanwhile) and the quiet room still talks
        assert [f["type"] for f in await _answers_until_pong(noisy)] in ([], ["peer-left"])
        await quiet_patient.send({"type": "media-state", "audio": True, "video": False})
        assert (await quiet_doctor.expect("media-state"))["from"] == "patient"

    print(f"\nsignaling fuzz: {UNJOINED_SOCKETS} unjoined sockets closed {close_codes}; {frames_sent} frames in a "
          f"call, answered with errors {errors_seen}, {len(relayed)} relayed to the peer; the other room exchanged "
          f"{quiet.sent} offer/answer pairs meanwhile")
    assert frames_sent > 100
    assert quiet.offers_seen == quiet.answers_seen == [f"q{i}" for i in range(quiet.sent)]
    assert quiet.sent > 100
    failures = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert not failures, failures
