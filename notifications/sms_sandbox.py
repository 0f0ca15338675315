"""A local stand-in for the eSMS send API, for tests and the demo server; it never sends a real SMS.

It listens on 127.0.0.1 (standard library only) and speaks the protocol of ``notifications.sms``:
``POST /MainService.svc/json/SendMultipleMessage_V4_post_json/`` with the JSON body eSMS documents.
Accepted messages are kept in memory and can be read back, which is how a demo user gets their OTP:

* ``GET /inbox?phone=<any accepted format>&limit=<n>`` -> ``{"messages": [...]}``, newest first
  (default limit 50); ``DELETE /inbox`` empties it. Anyone who can reach this port reads every OTP,
  so it must never be exposed beyond the local machine.

Answers (``CodeResult``). The spec lists the full eSMS code table as unconfirmed (§6 item 7); these
follow eSMS's published table where it has a matching entry, and the sandbox's own choice otherwise:

* ``100`` accepted, with a new ``SMSID``.
* ``101`` wrong ApiKey/SecretKey.
* ``300`` SmsType other than ``"2"`` (the only type modelled; eSMS uses 300 for a missing type).
* ``104`` Brandname not registered with the sandbox.
* ``108`` Phone not in domestic form (``0`` + 9 digits).
* ``146`` content empty, longer than ``MAX_SEGMENTS`` parts, or accented with ``IsUnicode`` "0" (eSMS
  has no content-length code; 146 is its "wrong customer-care template", the nearest content error).
* ``124`` RequestId already accepted: like eSMS ("to prevent the request from duplicated"), the repeat
  is answered ``124`` without an SMSID and is not delivered a second time.
* ``503`` busy, only under fault injection. Not an eSMS code: the client treats codes outside eSMS's
  documented permanent errors as transient.

Checks run in that order. ``Sandbox: "1"`` is validated and answered ``100`` but not stored, as eSMS
does. A body that is not a JSON object gets HTTP 400. Tests inject faults with ``fail_next``.
"""

import contextlib
import json
import re
import threading
import time
import uuid
from collections import deque
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler
from typing import Any, Literal
from urllib.parse import parse_qs, urlsplit

from api.sandbox_server import LoopbackSandbox, SandboxServer, read_body
from notifications.phone import InvalidPhoneNumber, normalize_vn_phone
from notifications.sms import SEND_PATH
from notifications.text import sms_segments

FaultMode = Literal["http500", "timeout", "busy"]

INBOX_PATH = "/inbox"
MAX_SEGMENTS = 3  # the sandbox's cap on one concatenated message; eSMS's own limit is unconfirmed
DEFAULT_INBOX_LIMIT = 50
# Longer than SmsGatewayConfig's default 5 s read timeout, so a "timeout" fault outlasts the client.
DEFAULT_STALL_S = 6.0
_MAX_BODY_BYTES = 64 * 1024
_DOMESTIC_PHONE = re.compile(r"0[0-9]{9}")


@dataclass(frozen=True, slots=True)
class SandboxSms:
    sms_id: str
    phone: str  # as the gateway received it: domestic 0xxxxxxxxx
    phone_e164: str
    content: str
    brandname: str
    request_id: str
    received_at: str  # UTC, ISO 8601


def _result(code: str, error_message: str) -> dict[str, object]:
    return {"CodeResult": code, "CountRegenerate": 0, "ErrorMessage": error_message}


class SmsSandbox(LoopbackSandbox):
    """In-memory eSMS look-alike served from a daemon thread; start/stop it or use it as a context manager."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        api_key: str = "sandbox-key",
        secret_key: str = "sandbox-secret",  # noqa: S107 - the sandbox's published demo credential
        brandnames: Iterable[str] = ("LIENTHONG",),
    ) -> None:
        super().__init__(host, port, _Handler, "SMS sandbox")
        self._credentials = (api_key, secret_key)
        self._brandnames = frozenset(brandnames)
        self._lock = threading.Lock()
        self._messages: list[SandboxSms] = []  # oldest first
        self._accepted_request_ids: set[str] = set()
        self._faults: deque[tuple[FaultMode, float]] = deque()
        self._received = 0

    @property
    def received(self) -> int:
        """Send requests that reached the sandbox, whatever their answer (a stalled one counts on arrival)."""
        with self._lock:
            return self._received

    def messages(self, phone: str | None = None) -> list[SandboxSms]:
        """Accepted messages, newest first, optionally only those to ``phone`` (any accepted format)."""
        wanted = normalize_vn_phone(phone) if phone is not None else None
        with self._lock:
            newest_first = self._messages[::-1]
        return [sms for sms in newest_first if wanted is None or sms.phone_e164 == wanted]

    def clear(self) -> int:
        """Empty the inbox, forget its RequestIds and zero ``received``; return how many messages were dropped."""
        with self._lock:
            self._received = 0
            dropped = len(self._messages)
            self._messages.clear()
            self._accepted_request_ids.clear()
        return dropped

    def fail_next(self, n: int, mode: FaultMode, *, delay_s: float = DEFAULT_STALL_S) -> None:
        """Make the next ``n`` send requests fail.

        ``http500`` answers HTTP 500 and ``busy`` answers code 503, both without accepting the message.
        ``timeout`` waits ``delay_s`` and then handles the request normally, like a gateway that accepted
        a message after the client gave up: the client's retry with the same RequestId must not be
        delivered twice.
        """
        with self._lock:
            self._faults.extend([(mode, delay_s)] * n)

    def _next_fault(self) -> tuple[FaultMode, float] | None:
        with self._lock:
            self._received += 1
            return self._faults.popleft() if self._faults else None

    def _send(self, body: dict[str, Any]) -> dict[str, object]:
        def field(name: str) -> str:
            value = body.get(name)
            return value if isinstance(value, str) else ""

        if (field("ApiKey"), field("SecretKey")) != self._credentials:
            return _result("101", "Authorize Failed")
        if field("SmsType") != "2":
            return _result("300", "SmsType must be 2 (customer care)")
        brandname = field("Brandname")
        if brandname not in self._brandnames:
            return _result("104", "Brand name code is not exist")
        phone = field("Phone")
        if not _DOMESTIC_PHONE.fullmatch(phone):
            return _result("108", "Phone number is not in correct format")
        content = field("Content")
        encoding, segments = sms_segments(content)
        if not content or segments > MAX_SEGMENTS:
            return _result("146", f"Content must be 1 to {MAX_SEGMENTS} SMS parts long")
        if encoding == "UCS-2" and field("IsUnicode") != "1":
            return _result("146", "Accented content needs IsUnicode 1")

        sms_id = uuid.uuid4().hex
        request_id = field("RequestId")
        if field("Sandbox") == "1":
            return {"CodeResult": "100", "CountRegenerate": 0, "SMSID": sms_id, "IsSandbox": True}
        sms = SandboxSms(
            sms_id=sms_id,
            phone=phone,
            phone_e164=f"+84{phone[1:]}",
            content=content,
            brandname=brandname,
            request_id=request_id,
            received_at=datetime.now(UTC).isoformat(timespec="milliseconds"),
        )
        with self._lock:
            # Checked and recorded under one lock, so concurrent sends with one RequestId deliver once.
            if request_id in self._accepted_request_ids:
                return {**_result("124", "Request exist"), "SendStatus": "5"}
            if request_id:
                self._accepted_request_ids.add(request_id)
            self._messages.append(sms)
        return {"CodeResult": "100", "CountRegenerate": 0, "SMSID": sms_id}


class _Handler(BaseHTTPRequestHandler):
    server: SandboxServer[SmsSandbox]
    server_version = "SmsSandbox"

    def log_message(self, format: str, *args: Any) -> None:
        """Silent: access lines would carry phone numbers, and the app logs each send itself."""

    def do_POST(self) -> None:
        if self.path.rstrip("/") != SEND_PATH.rstrip("/"):
            self._reply(404, {"error": "not found"})
            return
        fault = self.server.sandbox._next_fault()
        if fault is not None:
            mode, delay_s = fault
            if mode == "http500":
                self._reply(500, {"error": "sandbox fault: internal error"})
                return
            if mode == "busy":
                self._reply(200, _result("503", "Gateway busy, try again later"))
                return
            time.sleep(delay_s)
        raw = read_body(self, _MAX_BODY_BYTES)
        if raw is None:
            self._reply(400, {"error": f"Content-Length must be 0 to {_MAX_BODY_BYTES}"})
            return
        try:
            body = json.loads(raw)
        except ValueError:  # includes undecodable bytes
            body = None
        if not isinstance(body, dict):
            self._reply(400, {"error": "body must be a JSON object"})
            return
        self._reply(200, self.server.sandbox._send(body))

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        if url.path != INBOX_PATH:
            self._reply(404, {"error": "not found"})
            return
        query = parse_qs(url.query)
        phone = query.get("phone", [None])[-1]
        try:
            limit = int(query.get("limit", [str(DEFAULT_INBOX_LIMIT)])[-1])
            if limit < 1:
                raise ValueError
            found = self.server.sandbox.messages(phone or None)
        except InvalidPhoneNumber as exc:
            self._reply(400, {"error": str(exc)})
            return
        except ValueError:
            self._reply(400, {"error": "limit must be a positive integer"})
            return
        self._reply(200, {"messages": [asdict(sms) for sms in found[:limit]]})

    def do_DELETE(self) -> None:
        if urlsplit(self.path).path != INBOX_PATH:
            self._reply(404, {"error": "not found"})
            return
        self._reply(200, {"deleted": self.server.sandbox.clear()})

    def _reply(self, status: int, payload: dict[str, object]) -> None:
        body = json.dumps(payload, ensure_ascii=False).encode()
        # A client that gave up (e.g. during a "timeout" fault) has closed its end; nobody is listening.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            self.send_response(status)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
