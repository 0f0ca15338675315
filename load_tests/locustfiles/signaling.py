"""The video call's signaling under load: a Locust user that takes a checked-in consultation, has its doctor open
the queue, obtains both join tokens, joins both participants over the WebSocket and exchanges what a call's set-up
exchanges (offer, answer, trickled ICE candidates, media state, pings), then the doctor ends the call.

Each WebSocket exchange is reported to Locust as a request of type ``WS`` (``events.request.fire``), so it lands in
the same statistics, CSV and HTML report as the HTTP requests:

* ``WS connect+join``: open the socket, send ``join``, receive ``joined``.
* ``WS offer→answer (relay RTT)``: the patient's offer relayed to the doctor, whose answer is relayed back.
* ``WS ice-candidate (relay)``: one candidate from one side until the other receives it (one clock, one host).
* ``WS ping→pong``: the server's own round trip on one socket, the floor of the relay figures.
* ``WS end``: the doctor's ``end`` until both sides are told the call has ended.

``websocket-client`` (a Locust dependency) is a plain-socket client, so it cooperates with gevent.
"""

from __future__ import annotations

import contextlib
import json
import random
import time
from typing import Any

import gevent
import gevent.queue
import websocket
from locust import FastHttpUser, between, events, task

from load_tests.locustfiles.common import Session, body_of, check, manifest, staff_session

# Consultations checked in by the booking users, waiting for a signaling user: (consultation_id, doctor_username,
# patient session, slot date in Vietnam time).
READY: gevent.queue.Queue[tuple[str, str, Session, str]] = gevent.queue.Queue(maxsize=200)

RECV_TIMEOUT_S = 10.0
CANDIDATE = "candidate:842163049 1 udp 1677729535 113.161.{a}.{b} {port} typ srflx raddr 0.0.0.0 rport 0 generation 0"
SDP = "v=0\r\no=- 46117317 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n" + "a=rtpmap:96 VP8/90000\r\n" * 60


class SignalingError(Exception):
    pass


def _fire(name: str, started: float, length: int, exception: Exception | None = None) -> None:
    events.request.fire(request_type="WS", name=name, response_time=(time.perf_counter() - started) * 1000,
                        response_length=length, exception=exception, context={})


class Participant:
    """One side of the call: a blocking (gevent-friendly) WebSocket that skips frames it is not waiting for."""

    def __init__(self, ws_url: str, role: str) -> None:
        self.url = ws_url
        self.role = role
        self.ws: websocket.WebSocket | None = None

    def join(self, token: str) -> None:
        started = time.perf_counter()
        try:
            self.ws = websocket.create_connection(self.url, timeout=RECV_TIMEOUT_S, enable_multithread=False)
            frame = json.dumps({"type": "join", "token": token, "client": {"platform": "locust", "app_version": "1"}})
            self.ws.send(frame)
            joined = self.expect("joined")
        except Exception as exc:
            _fire("WS connect+join", started, 0, exc)
            raise SignalingError(f"{self.role} could not join: {exc}") from exc
        _fire("WS connect+join", started, len(json.dumps(joined)))

    def send(self, frame: dict[str, Any]) -> int:
        assert self.ws is not None
        text = json.dumps(frame)
        self.ws.send(text)
        return len(text)

    def expect(self, kind: str) -> dict[str, Any]:
        """The next frame of type ``kind``; other frames (peer-joined, media-state...) are passed over."""
        assert self.ws is not None
        deadline = time.monotonic() + RECV_TIMEOUT_S
        while time.monotonic() < deadline:
            raw = self.ws.recv()
            if not raw:
                raise SignalingError(f"{self.role}: socket closed while waiting for {kind}")
            frame: dict[str, Any] = json.loads(raw)
            if frame.get("type") == kind:
                return frame
            if frame.get("type") == "error":
                raise SignalingError(f"{self.role}: server error {frame.get('code')}: {frame.get('detail')}")
        raise SignalingError(f"{self.role}: no {kind} within {RECV_TIMEOUT_S:g} s")

    def close(self) -> None:
        if self.ws is not None:
            with contextlib.suppress(Exception):  # the server may already have closed it
                self.ws.close(timeout=1)
            self.ws = None


def timed(name: str, action: Any) -> bool:
    """Run ``action`` (returns the bytes it moved) as one WS request; False when it failed."""
    started = time.perf_counter()
    try:
        length = action()
    except Exception as exc:
        _fire(name, started, 0, exc)
        return False
    _fire(name, started, int(length or 0))
    return True


class SignalingUser(FastHttpUser):
    """Consultation ready → doctor's queue → join tokens → both join → set-up exchange → doctor ends the call."""

    abstract = True  # concrete in consultation.py and mixed.py, with their weights
    wait_time = between(0.5, 1.5)
    candidates_each_way = 4
    pings = 3

    def on_start(self) -> None:
        self.rng = random.Random()

    @task
    def call(self) -> None:
        try:
            consultation_id, doctor_username, patient, day = READY.get(timeout=5)
        except gevent.queue.Empty:
            return
        doctor = staff_session(self.client, manifest().doctor_by_username[doctor_username])
        if doctor is None:
            return
        with self.client.get("/doctors/me/queue", params={"date": day}, headers=doctor.headers,
                             name="GET /doctors/me/queue", catch_response=True) as r:
            check(r, (200,))
        tokens = {}
        for role, session in (("doctor", doctor), ("patient", patient)):
            with self.client.post(f"/consultations/{consultation_id}/join-token", headers=session.headers,
                                  name="POST /consultations/{id}/join-token", catch_response=True) as r:
                if check(r, (201,)) != "ok":
                    return
                tokens[role] = r.json()["token"]
        self.exchange(consultation_id, tokens["doctor"], tokens["patient"])
        with self.client.get(f"/consultations/{consultation_id}", headers=patient.headers,
                             name="GET /consultations/{id}", catch_response=True) as r:
            if check(r, (200,)) == "ok" and (body_of(r) or {}).get("status") != "completed":
                r.failure(f"consultation not completed after the call: {(body_of(r) or {}).get('status')}")

    def exchange(self, consultation_id: str, doctor_token: str, patient_token: str) -> None:
        ws_url = f"{self.host.replace('http', 'ws', 1)}/ws/consultations/{consultation_id}"
        doctor, patient = Participant(ws_url, "doctor"), Participant(ws_url, "patient")
        try:
            doctor.join(doctor_token)
            patient.join(patient_token)
            doctor.expect("peer-joined")

            def offer_answer() -> int:
                sent = patient.send({"type": "offer", "sdp": SDP, "negotiation_id": "n1"})
                doctor.expect("offer")
                sent += doctor.send({"type": "answer", "sdp": SDP, "negotiation_id": "n1"})
                patient.expect("answer")
                return sent

            if not timed("WS offer→answer (relay RTT)", offer_answer):
                return
            for i in range(self.candidates_each_way):
                for sender, receiver in ((patient, doctor), (doctor, patient)):
                    frame = {"type": "ice-candidate", "sdpMid": "0", "sdpMLineIndex": 0,
                             "candidate": CANDIDATE.format(a=self.rng.randint(1, 254), b=i, port=50000 + i)}

                    def relay(sender: Participant = sender, receiver: Participant = receiver,
                              frame: dict[str, Any] = frame) -> int:
                        sent = sender.send(frame)
                        receiver.expect("ice-candidate")
                        return sent

                    if not timed("WS ice-candidate (relay)", relay):
                        return
            for _ in range(self.pings):
                def ping() -> int:
                    sent = patient.send({"type": "ping"})
                    patient.expect("pong")
                    return sent

                timed("WS ping→pong", ping)

            def media_state() -> int:
                sent = patient.send({"type": "media-state", "audio": True, "video": False})
                doctor.expect("media-state")
                return sent

            timed("WS media-state (relay)", media_state)

            def end() -> int:
                sent = doctor.send({"type": "end"})
                doctor.expect("ended")
                patient.expect("ended")
                return sent

            timed("WS end", end)
        except SignalingError:
            return  # already reported
        finally:
            patient.close()
            doctor.close()


def offer_ready(consultation_id: str, doctor_username: str, patient: Session, day: str) -> bool:
    """Hand a checked-in consultation to the signaling users; False when none is keeping up (queue full)."""
    try:
        READY.put_nowait((consultation_id, doctor_username, patient, day))
    except gevent.queue.Full:
        return False
    return True

