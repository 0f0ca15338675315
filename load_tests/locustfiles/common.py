"""What every Lienthong locustfile shares: the manifest of seeded data, signing in as each role, TOTP steps, and
the accounting of outcomes that are correct under load (a 409 for a slot someone else took) apart from failures.

Environment (set by ``python -m load_tests.run_load``):

* ``LIENTHONG_LOAD_MANIFEST``: the JSON manifest written by ``load_tests.datagen`` (or the runner's tiny fallback):
  doctors, patients, pharmacists, open prescriptions, in-call consultations, drug ids, pharmacy search points.
* ``LIENTHONG_LOAD_SMS_URL``: the SMS sandbox the API sends OTPs to; patients read their code from its inbox.
* ``LIENTHONG_LOAD_TOTP_STATE`` (optional): a JSON file of the last TOTP step used per staff account, read at start
  and written at the end, so consecutive runs against one platform never replay a step.

One Locust process per run (2 cores: the client is the limit), so cross-user coordination (which doctor a user
plays, a doctor's TOTP steps, codes ready to dispense) lives in module state guarded by gevent locks.
"""

from __future__ import annotations

import contextlib
import csv
import itertools
import json
import os
import random
import re
import time
import urllib.parse
import urllib.request
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gevent
import pyotp
from gevent.lock import BoundedSemaphore
from locust import events
from locust.stats import PERCENTILES_TO_REPORT, StatsCSV

TOTP_STEP_S = 30
PREVIOUS_STEP_MARGIN_S = 8
OTP_CODE = re.compile(r"\b(\d{6})\b")

# ------------------------------------------------------------------------------------------------- manifest


@dataclass(frozen=True)
class Manifest:
    doctors: list[dict[str, Any]]
    patients: list[dict[str, Any]]
    pharmacists: list[dict[str, Any]]
    open_prescriptions: list[dict[str, Any]]
    in_call: list[dict[str, Any]]
    drug_ids: list[str]
    pharmacy_points: list[list[float]]
    doctor_by_username: dict[str, dict[str, Any]] = field(default_factory=dict)
    doctor_by_id: dict[str, dict[str, Any]] = field(default_factory=dict)
    in_call_by_doctor: dict[str, list[str]] = field(default_factory=dict)
    bookable_doctors: list[dict[str, Any]] = field(default_factory=list)  # free: a booking confirms at once


_loaded: dict[str, Manifest] = {}


def manifest() -> Manifest:
    if "manifest" not in _loaded:
        path = os.environ.get("LIENTHONG_LOAD_MANIFEST")
        if not path:
            raise RuntimeError("LIENTHONG_LOAD_MANIFEST is not set: run through python -m load_tests.run_load")
        raw = json.loads(Path(path).read_text())
        found = Manifest(**{k: list(raw.get(k) or []) for k in (
            "doctors", "patients", "pharmacists", "open_prescriptions", "in_call", "drug_ids", "pharmacy_points")})
        found.doctor_by_username.update({d["username"]: d for d in found.doctors})
        found.doctor_by_id.update({str(d["account_id"]): d for d in found.doctors})
        found.bookable_doctors.extend(d for d in found.doctors if not d.get("fee_vnd"))
        for call in found.in_call:
            found.in_call_by_doctor.setdefault(call["doctor_username"], []).append(str(call["consultation_id"]))
        _loaded["manifest"] = found
    return _loaded["manifest"]


_counters: dict[str, Iterator[int]] = {}


def next_index(kind: str) -> int:
    """0, 1, 2, ... per kind within this process: each new user takes the next account of its kind."""
    return next(_counters.setdefault(kind, itertools.count()))


def popularity(count: int, rng: random.Random) -> int:
    """An index in ``range(count)`` skewed to the front (Zipf-like), so a few doctors draw most bookings."""
    return min(count - 1, int(count * rng.random() ** 3))


# ------------------------------------------------------------------------------------------------- outcomes


def problem_slug(response: Any) -> str:
    """The ``type`` slug of an RFC 9457 problem body (``/problems/slot-taken`` -> ``slot-taken``), or ''."""
    try:
        body = response.json()
    except Exception:
        return ""
    return str(body.get("type", "")).rsplit("/", 1)[-1] if isinstance(body, dict) else ""


def check(response: Any, ok: tuple[int, ...], expected: dict[str, str] | None = None) -> str:
    """Judge a ``catch_response=True`` response: 'ok' for a status in ``ok``; 'expected' for a problem whose slug
    is a key of ``expected`` (the request is then reported under its own name, e.g. "POST /consultations [409 slot
    taken]", and counts as a success there); otherwise the request fails with the status and the problem slug."""
    if response.status_code in ok:
        response.success()
        return "ok"
    slug = problem_slug(response)
    if expected and slug in expected:
        response.request_meta["name"] = f"{response.request_meta['name']} [{response.status_code} {expected[slug]}]"
        response.success()
        return "expected"
    if slug:
        errors = (body_of(response) or {}).get("errors") or []
        first = errors[0] if errors and isinstance(errors[0], dict) else {}
        text = f"{slug}: {first.get('path', '')} {first.get('message', '')}".strip().rstrip(":")
    else:
        text = (response.text or "")[:200] if response.status_code else str(getattr(response, "error", ""))
    response.failure(f"{response.status_code} {text}")
    return "failed"


def body_of(response: Any) -> Any:
    try:
        return response.json()
    except Exception:
        return None


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


# ------------------------------------------------------------------------------------------------- TOTP steps


class TotpClock:
    """The steps each staff account has used. A code is accepted once per 30 s step (and the server takes the
    previous step too, for phone clock skew), so a doctor signs at most once a step: ``code()`` waits for the next
    one when the account's last step is the current one. With ``LIENTHONG_LOAD_TOTP_STATE`` the steps, and the staff
    sessions, carry over to the next run against the same platform: staff stay signed in, as they do at work."""

    def __init__(self) -> None:
        self.last: dict[str, int] = {}
        self.locks: dict[str, BoundedSemaphore] = {}
        self.state_path = os.environ.get("LIENTHONG_LOAD_TOTP_STATE")
        self.saved_sessions: dict[str, dict[str, Any]] = {}
        if self.state_path and Path(self.state_path).exists():
            state = json.loads(Path(self.state_path).read_text())
            self.last.update({k: int(v) for k, v in state.get("steps", {}).items()})
            self.saved_sessions = state.get("sessions", {})

    def lock(self, username: str) -> BoundedSemaphore:
        return self.locks.setdefault(username, BoundedSemaphore())

    def code(self, username: str, secret: str, *, allow_previous: bool = False) -> str:
        """A code for a step this account has not used, waiting for a new step if need be. ``allow_previous``
        (sign-in) takes the step that just ended when it is unused, as a code typed at the turn of a step would be,
        so the doctor's first signature need not wait for the next step. Call with ``lock(username)`` held."""
        while True:
            t = time.time()
            now = int(t // TOTP_STEP_S)
            last = self.last.get(username, -1)
            # the previous step's code is accepted until the current step ends: only with time to spare (a
            # sign-in hashes the password first, a second or so on a busy server)
            previous_ok = allow_previous and last < now - 1 and (now + 1) * TOTP_STEP_S - t > PREVIOUS_STEP_MARGIN_S
            step = now - 1 if previous_ok else now
            if step > last:
                self.last[username] = step
                return pyotp.TOTP(secret, interval=TOTP_STEP_S).at(step * TOTP_STEP_S)
            gevent.sleep((now + 1) * TOTP_STEP_S - time.time() + 0.05)

    def save(self, sessions: dict[str, Session]) -> None:
        if self.state_path:
            kept = {name: {"access_token": s.access_token, "refresh_token": s.refresh_token,
                           "expires_at": s.expires_at} for name, s in sessions.items()}
            Path(self.state_path).write_text(json.dumps({"steps": self.last,
                                                         "sessions": {**self.saved_sessions, **kept}}))


TOTP = TotpClock()


@events.quitting.add_listener
def _on_quitting(environment: Any, **_: Any) -> None:
    """Keep the TOTP steps for the next run, and write the final statistics: Locust rewrites its own CSVs once a
    second while running, so they can miss the last requests (``<prefix>_final_{stats,failures,exceptions}.csv``
    are the same format, written once everything has stopped)."""
    TOTP.save(_staff_sessions)
    prefix = getattr(environment.parsed_options, "csv_prefix", None)
    if prefix:
        writer = StatsCSV(environment, PERCENTILES_TO_REPORT)
        for what, write in (("stats", writer.requests_csv), ("failures", writer.failures_csv),
                            ("exceptions", writer.exceptions_csv)):
            with open(f"{prefix}_final_{what}.csv", "w", newline="") as f:
                write(csv.writer(f))


# ------------------------------------------------------------------------------------------------- sessions


@dataclass
class Session:
    access_token: str
    refresh_token: str
    expires_at: float
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def of(cls, body: dict[str, Any], **extra: Any) -> Session:
        return cls(body["access_token"], body.get("refresh_token", ""),
                   time.time() + float(body.get("expires_in", 900)), dict(extra))

    @property
    def headers(self) -> dict[str, str]:
        return bearer(self.access_token)


def _refresh_if_due(client: Any, session: Session) -> None:
    if time.time() < session.expires_at - 60 or not session.refresh_token:
        return
    with client.post("/auth/refresh", json={"refresh_token": session.refresh_token}, name="POST /auth/refresh",
                     catch_response=True) as r:
        if check(r, (200,)) == "ok":
            body = r.json()
            session.access_token, session.refresh_token = body["access_token"], body["refresh_token"]
            session.expires_at = time.time() + float(body.get("expires_in", 900))


def _latest_sms_code(phone: str, timeout_s: float = 10.0) -> str | None:
    """The newest 6-digit code in the SMS sandbox inbox for ``phone`` (not a request to the platform under test)."""
    base = os.environ.get("LIENTHONG_LOAD_SMS_URL", "http://127.0.0.1:8025").rstrip("/")
    url = f"{base}/inbox?{urllib.parse.urlencode({'phone': phone, 'limit': 1})}"
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with urllib.request.urlopen(url, timeout=5) as answer:  # noqa: S310 - the loopback sandbox, http by design
            messages = json.loads(answer.read())["messages"]
        if messages and (match := OTP_CODE.search(messages[0]["content"])):
            return match.group(1)
        gevent.sleep(0.05)
    return None


_phone_locks: dict[str, BoundedSemaphore] = {}


def sign_in_patient(client: Any, phone: str) -> Session | None:
    """SMS OTP: request a code, read it from the sandbox inbox, exchange it for a session. Two users of one phone
    take turns, or the second code would replace the first one between its request and its use."""
    with _phone_locks.setdefault(phone, BoundedSemaphore()):
        return _sign_in_patient(client, phone)


def _sign_in_patient(client: Any, phone: str) -> Session | None:
    with client.post("/auth/otp/request", json={"phone": phone}, name="POST /auth/otp/request",
                     catch_response=True) as r:
        if check(r, (202,)) != "ok":
            return None
    code = _latest_sms_code(phone)
    if code is None:
        events.request.fire(request_type="SMS", name="OTP in sandbox inbox", response_time=0, response_length=0,
                            exception=RuntimeError(f"no OTP reached {phone}"), context={})
        return None
    with client.post("/auth/otp/verify", json={"phone": phone, "code": code}, name="POST /auth/otp/verify",
                     catch_response=True) as r:
        if check(r, (200,)) != "ok":
            return None
        return Session.of(r.json(), phone=phone)


_staff_sessions: dict[str, Session] = {}


def staff_session(client: Any, account: dict[str, Any]) -> Session | None:
    """The process-wide session of a staff account (password + TOTP), signed in once and shared by every user that
    plays the account: each sign-in would spend a TOTP step."""
    username = account["username"]
    # Without the account's lock when a session is known: a doctor's prescribing user holds it while waiting for the
    # next TOTP step to sign, which must not stall the same doctor's call (gevent: no switch between these lines).
    session = _known_session(username)
    if session is None:
        with TOTP.lock(username):
            session = _known_session(username) or _sign_in_staff(client, account)
            if session is None:
                return None
    _refresh_if_due(client, session)
    return session


def _known_session(username: str) -> Session | None:
    session = _staff_sessions.get(username)
    if session is None and (saved := TOTP.saved_sessions.get(username)):
        session = _staff_sessions[username] = Session(saved["access_token"], saved["refresh_token"],
                                                      float(saved["expires_at"]), {"username": username})
    return session


def _sign_in_staff(client: Any, account: dict[str, Any]) -> Session | None:
    """Password + TOTP sign-in; call with ``TOTP.lock(username)`` held."""
    username = account["username"]
    code = TOTP.code(username, account["totp_secret"], allow_previous=True)
    with client.post("/auth/login", json={"username": username, "password": account["password"], "totp_code": code},
                     name="POST /auth/login", catch_response=True) as r:
        if check(r, (200,)) != "ok":
            r.failure(f"{r.status_code} {problem_slug(r)} for {username} (TOTP step {TOTP.last[username]}, "
                      f"now {int(time.time() // TOTP_STEP_S)})")
            return None
        body = r.json()
        if "access_token" not in body:
            r.failure("TOTP enrolment required: the manifest's staff must have a confirmed TOTP secret")
            return None
        session = _staff_sessions[username] = Session.of(body, username=username)
    return session


def keep_fresh(client: Any, session: Session) -> None:
    _refresh_if_due(client, session)


# ------------------------------------------------------------------------------------------------- handoffs


class CodePool:
    """Prescription codes known to this process: every code can be verified; each is dispensed by one user."""

    def __init__(self) -> None:
        self.all: list[str] = []
        self.lines: dict[str, list[dict[str, int]]] = {}
        self.to_dispense: deque[str] = deque()
        self.loaded = False

    def load(self) -> None:
        if not self.loaded:
            self.loaded = True
            for rx in manifest().open_prescriptions:
                self.add(rx["code"], rx.get("lines") or [])

    def add(self, code: str, lines: list[dict[str, int]]) -> None:
        self.all.append(code)
        self.lines[code] = lines
        self.to_dispense.append(code)

    def withdraw(self, code: str) -> bool:
        """Take a code back before any user dispenses it (its doctor amends it); False once one has claimed it."""
        self.load()
        if code not in self.lines:
            return True
        try:
            self.to_dispense.remove(code)
        except ValueError:
            return False
        return True

    def any(self, rng: random.Random) -> str | None:
        self.load()
        return rng.choice(self.all) if self.all else None

    def claim(self) -> str | None:
        self.load()
        with contextlib.suppress(IndexError):
            return self.to_dispense.popleft()
        return None


CODES = CodePool()
