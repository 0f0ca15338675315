"""A local stand-in for Google's OAuth2 token endpoint and FCM HTTP v1, for tests and the demo server; it never
reaches a phone.

It listens on 127.0.0.1 (standard library plus PyJWT/cryptography) and speaks the protocol firebase-admin 7.7 speaks
(spec notifications.md §3), so ``notifications.fcm`` runs unchanged against it:

* ``POST /token``: the OAuth2 JWT-bearer grant google-auth sends for a service account (form
  ``grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer&assertion=<JWT>``). The assertion must be RS256-signed
  by a service account the sandbox was told about (``trust_service_account``), with ``aud`` = Google's token
  endpoint (what google-auth sends) or this one, a lifetime of at most an hour and an FCM-capable scope. Answers
  ``{"access_token", "expires_in", "token_type": "Bearer"}`` or an OAuth error (``{"error": "invalid_grant",
  "error_description": ...}``, HTTP 400).
* ``POST /v1/projects/{project}/messages:send``: needs a Bearer token issued above for this project, then checks
  the message: exactly one target, string data values and no reserved data keys, data + notification at most
  ``MAX_PAYLOAD_BYTES``, Android ttl/priority, APNs headers (a data-only push with apns-priority 10 is refused, as
  Apple does), Webpush headers. Answers ``{"name": "projects/p/messages/id"}`` or Google's error body
  ``{"error": {"code", "message", "status", "details": [{"@type": ...FcmError, "errorCode": ...}]}}``.
  ``validate_only`` requests are checked and answered but not delivered.

Received pushes are kept in memory: ``messages()`` (newest first), ``device_view()`` (what the phone shows: one
notification per tag/collapse key, the later replacing the earlier), over HTTP ``GET /inbox?target=<t>&limit=<n>``
(``&view=device`` for the phone's view) and ``DELETE /inbox``. Anyone who can reach the port reads every push, so
it must never be exposed beyond the local machine.

Faults for tests: ``unregister`` (404 UNREGISTERED from then on), ``set_target_error`` (INVALID_ARGUMENT "not a
valid registration token", SENDER_ID_MISMATCH, THIRD_PARTY_AUTH_ERROR), ``fail_next`` (quota 429 with Retry-After,
unavailable 503 with Retry-After, internal 500, or stall: answer normally after a delay, like a send whose answer
was lost).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import threading
import time
import uuid
from collections import deque
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any, Literal
from urllib.parse import parse_qs, urlsplit

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from api.sandbox_server import LoopbackSandbox, SandboxServer, read_body
from api.settings import Settings

FaultMode = Literal["quota", "unavailable", "internal", "stall"]
TargetError = Literal["INVALID_ARGUMENT", "SENDER_ID_MISMATCH", "THIRD_PARTY_AUTH_ERROR"]

TOKEN_PATH = "/token"  # noqa: S105 - a path, not a secret
INBOX_PATH = "/inbox"
DEMO_SERVICE_ACCOUNT_FILE = "fcm-sandbox-service-account.json"
JWT_BEARER_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
# google-auth puts Google's token endpoint in ``aud`` whatever the service account's token_uri says, and Google
# checks for exactly that; the sandbox also accepts its own endpoint.
GOOGLE_TOKEN_AUDIENCE = "https://oauth2.googleapis.com/token"  # noqa: S105 - a URL
# FCM's limit on a message's data + notification payload (2048 for topics, which the sandbox does not model).
MAX_PAYLOAD_BYTES = 4096
MAX_TTL_S = 2_419_200
DEFAULT_RETRY_AFTER_S = 30
# Longer than the FCM_TIMEOUT tests use (1 s), so a stall outlasts the client.
DEFAULT_STALL_S = 2.0
DEFAULT_INBOX_LIMIT = 50
ACCESS_TOKEN_TTL_S = 3600
# Google accepts assertions with a lifetime of at most one hour; allow a little clock skew on top.
_MAX_ASSERTION_LIFETIME_S = 3600
_CLOCK_SKEW_S = 30
_SCOPES_FOR_FCM = frozenset({"https://www.googleapis.com/auth/cloud-platform",
                             "https://www.googleapis.com/auth/firebase.messaging"})
_MAX_BODY_BYTES = 64 * 1024
_SEND = re.compile(r"^/v1/projects/(?P<project>[^/]+)/messages:send$")
_DURATION = re.compile(r"^(?P<s>\d+)(\.\d{1,9})?s$")
_RESERVED_DATA_KEYS = frozenset({"from", "notification", "message_type"})
_FCM_ERROR_TYPE = "type.googleapis.com/google.firebase.fcm.v1.FcmError"
_BAD_REQUEST_TYPE = "type.googleapis.com/google.rpc.BadRequest"
INVALID_TOKEN_MESSAGE = "The registration token is not a valid FCM registration token"  # noqa: S105
_WEBPUSH_URGENCIES = frozenset({"very-low", "low", "normal", "high"})


@dataclass(frozen=True, slots=True)
class SandboxPush:
    name: str  # projects/{project}/messages/{id}
    target_kind: str  # "token" or "fid"
    target: str
    title: str | None
    body: str | None
    data: dict[str, str]
    android: dict[str, Any]
    apns: dict[str, Any]
    webpush: dict[str, Any]
    received_at: str  # UTC, ISO 8601

    @property
    def collapse_id(self) -> str | None:
        """What a device collapses on: the Android notification tag, else the collapse key, else apns-collapse-id."""
        tag = self.android.get("notification", {}).get("tag")
        collapse_key = self.android.get("collapse_key")
        apns_id = self.apns.get("headers", {}).get("apns-collapse-id")
        web_tag = self.webpush.get("notification", {}).get("tag")
        for candidate in (tag, collapse_key, apns_id, web_tag):
            if isinstance(candidate, str) and candidate:
                return candidate
        return None


@dataclass(frozen=True, slots=True)
class _Grant:
    client_email: str
    project_id: str
    expires_at: float  # time.monotonic()


@dataclass(slots=True)
class _Reply:
    status: int
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)


def _google_error(status: int, rpc_status: str, message: str, fcm_code: str | None = None,
                  field_violation: str | None = None, headers: dict[str, str] | None = None) -> _Reply:
    details: list[dict[str, Any]] = []
    if fcm_code is not None:
        details.append({"@type": _FCM_ERROR_TYPE, "errorCode": fcm_code})
    if field_violation is not None:
        details.append({"@type": _BAD_REQUEST_TYPE,
                        "fieldViolations": [{"field": field_violation, "description": message}]})
    error: dict[str, Any] = {"code": status, "message": message, "status": rpc_status}
    if details:
        error["details"] = details
    return _Reply(status, {"error": error}, headers or {})


def _invalid(message: str, field_path: str | None = None) -> _Reply:
    return _google_error(400, "INVALID_ARGUMENT", message, "INVALID_ARGUMENT", field_path)


def _oauth_error(error: str, description: str) -> _Reply:
    return _Reply(400, {"error": error, "error_description": description})


_TARGET_ERRORS: dict[str, tuple[int, str, str]] = {  # code -> (HTTP status, google.rpc status, message)
    "UNREGISTERED": (404, "NOT_FOUND", "Requested entity was not found."),
    "INVALID_ARGUMENT": (400, "INVALID_ARGUMENT", INVALID_TOKEN_MESSAGE),
    "SENDER_ID_MISMATCH": (403, "PERMISSION_DENIED", "SenderId mismatch"),
    "THIRD_PARTY_AUTH_ERROR": (401, "UNAUTHENTICATED", "Auth error from APNS or Web Push Service"),
}


class FcmSandbox(LoopbackSandbox):
    """In-memory FCM look-alike served from a thread; start/stop it or use it as a context manager."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, project_id: str = "lienthong-demo",
                 retry_after_s: int = DEFAULT_RETRY_AFTER_S) -> None:
        super().__init__(host, port, _Handler, "FCM sandbox")
        self.project_id = project_id
        self.retry_after_s = retry_after_s
        self._lock = threading.Lock()
        self._trusted: dict[str, tuple[str, rsa.RSAPublicKey, str]] = {}  # client_email -> (key id, key, project)
        self._grants: dict[str, _Grant] = {}
        self._pushes: list[SandboxPush] = []  # oldest first
        self._target_errors: dict[str, str] = {}
        self._faults: deque[tuple[FaultMode, float]] = deque()
        self.token_grants = 0  # access tokens issued, so tests can see the OAuth flow ran
        self.send_requests = 0  # messages:send requests received, faults and refusals included

    @property
    def port(self) -> int:
        return int(self.base_url.rsplit(":", 1)[1])

    @property
    def token_uri(self) -> str:
        return self.base_url + TOKEN_PATH

    def trust_service_account(self, info: Mapping[str, str]) -> None:
        """Accept JWT assertions signed by this service account (a parsed service-account JSON file). Only the
        public half of its key is kept, as Google keeps only the public half of a key it issued."""
        private_key = serialization.load_pem_private_key(info["private_key"].encode(), password=None)
        if not isinstance(private_key, rsa.RSAPrivateKey):
            raise ValueError("a service account key must be RSA")
        with self._lock:
            self._trusted[info["client_email"]] = (info["private_key_id"], private_key.public_key(),
                                                   info.get("project_id") or self.project_id)

    # ----------------------------------------------------------------------------------------------- inbox

    def messages(self, target: str | None = None) -> list[SandboxPush]:
        """Delivered pushes, newest first, optionally only those to ``target``."""
        with self._lock:
            newest_first = self._pushes[::-1]
        return [push for push in newest_first if target is None or push.target == target]

    def device_view(self, target: str) -> list[SandboxPush]:
        """What the installation shows, newest first: a push with the tag/collapse key of an earlier one replaces
        it (collapse_key, Android notification tag, apns-collapse-id), so a resend never stacks."""
        shown: list[SandboxPush] = []
        seen: set[str] = set()
        for push in self.messages(target):
            key = push.collapse_id
            if key is not None:
                if key in seen:
                    continue
                seen.add(key)
            shown.append(push)
        return shown

    def clear(self) -> int:
        """Empty the inbox and forget faults and target errors; return how many pushes were dropped."""
        with self._lock:
            dropped = len(self._pushes)
            self._pushes.clear()
            self._target_errors.clear()
            self._faults.clear()
        return dropped

    # ----------------------------------------------------------------------------------------------- faults

    def unregister(self, target: str) -> None:
        """The app was uninstalled: sends to ``target`` get 404 UNREGISTERED from now on."""
        with self._lock:
            self._target_errors[target] = "UNREGISTERED"

    def set_target_error(self, target: str, code: TargetError) -> None:
        """Sends to ``target`` fail with ``code``: INVALID_ARGUMENT (not a valid registration token, 400),
        SENDER_ID_MISMATCH (another Firebase project's token, 403) or THIRD_PARTY_AUTH_ERROR (APNs/Web Push
        credentials broken, 401)."""
        with self._lock:
            self._target_errors[target] = code

    def fail_next(self, n: int, mode: FaultMode, *, delay_s: float = DEFAULT_STALL_S) -> None:
        """Make the next ``n`` send requests fail (token requests are not affected).

        ``quota`` answers 429 QUOTA_EXCEEDED and ``unavailable`` 503 UNAVAILABLE, both with ``Retry-After:
        retry_after_s``; ``internal`` answers 500 INTERNAL. ``stall`` waits ``delay_s`` and then handles the request
        normally: the push is delivered although the client may have given up, as when FCM's answer is lost.
        """
        with self._lock:
            self._faults.extend([(mode, delay_s)] * n)

    def _next_fault(self) -> tuple[FaultMode, float] | None:
        with self._lock:
            return self._faults.popleft() if self._faults else None

    # ----------------------------------------------------------------------------------------------- protocol

    def _token(self, form: Mapping[str, list[str]]) -> _Reply:
        grant_type = form.get("grant_type", [""])[-1]
        if grant_type != JWT_BEARER_GRANT:
            return _oauth_error("unsupported_grant_type", f"Invalid grant_type: {grant_type}")
        assertion = form.get("assertion", [""])[-1]
        try:
            header = jwt.get_unverified_header(assertion)
            unverified = jwt.decode(assertion, options={"verify_signature": False})
        except jwt.PyJWTError:
            return _oauth_error("invalid_grant", "Invalid JWT: could not parse the assertion.")
        issuer = unverified.get("iss")
        if not isinstance(issuer, str):
            return _oauth_error("invalid_grant", "Invalid JWT: no issuer.")
        with self._lock:
            trusted = self._trusted.get(issuer)
        if trusted is None or header.get("kid") != trusted[0]:
            return _oauth_error("invalid_grant", "Invalid JWT Signature.")
        _, public_key, project_id = trusted
        try:
            claims = jwt.decode(assertion, public_key, algorithms=["RS256"], issuer=issuer, leeway=_CLOCK_SKEW_S,
                                audience=[GOOGLE_TOKEN_AUDIENCE, self.token_uri],
                                options={"require": ["iss", "aud", "iat", "exp"]})
        except jwt.InvalidSignatureError:
            return _oauth_error("invalid_grant", "Invalid JWT Signature.")
        except jwt.InvalidAudienceError:
            return _oauth_error("invalid_grant", f"Invalid JWT: audience must be {GOOGLE_TOKEN_AUDIENCE}.")
        except jwt.PyJWTError as exc:
            return _oauth_error("invalid_grant", "Invalid JWT: Token must be a short-lived token (60 minutes) and in "
                                                 f"a reasonable timeframe. Check your iat and exp values ({exc}).")
        if int(claims["exp"]) - int(claims["iat"]) > _MAX_ASSERTION_LIFETIME_S:
            return _oauth_error("invalid_grant", "Invalid JWT: Token must be a short-lived token (60 minutes).")
        scopes = set(str(claims.get("scope", "")).split())
        if not scopes & _SCOPES_FOR_FCM:
            return _oauth_error("invalid_scope", "The requested scopes do not allow sending FCM messages.")
        access_token = "ya29.sandbox-" + secrets.token_urlsafe(32)
        with self._lock:
            now = time.monotonic()
            self._grants = {t: g for t, g in self._grants.items() if g.expires_at > now}
            self._grants[access_token] = _Grant(issuer, project_id, now + ACCESS_TOKEN_TTL_S)
            self.token_grants += 1
        return _Reply(200, {"access_token": access_token, "expires_in": ACCESS_TOKEN_TTL_S - 1,
                            "token_type": "Bearer"})

    def _send(self, project: str, authorization: str, body: object) -> _Reply:
        scheme, _, access_token = authorization.partition(" ")
        with self._lock:
            grant = self._grants.get(access_token) if scheme.lower() == "bearer" else None
        if grant is None or grant.expires_at <= time.monotonic():
            return _google_error(401, "UNAUTHENTICATED", "Request had invalid authentication credentials. Expected "
                                 "OAuth 2 access token, login cookie or other valid authentication credential.")
        if project != self.project_id or grant.project_id != project:
            return _google_error(403, "PERMISSION_DENIED", f"Permission 'cloudmessaging.messages.create' denied on "
                                 f"resource '//cloudresourcemanager.googleapis.com/projects/{project}' (or it may "
                                 "not exist).")
        if not isinstance(body, dict) or not isinstance(body.get("message"), dict):
            return _invalid("Request contains an invalid argument: a message is required.", "message")
        message: dict[str, Any] = body["message"]
        problem = _check_message(message)
        if problem is not None:
            return problem
        kind = next(k for k in ("token", "fid") if k in message)
        target: str = message[kind]
        with self._lock:
            code = self._target_errors.get(target)
        if code is not None:
            status, rpc_status, text = _TARGET_ERRORS[code]
            return _google_error(status, rpc_status, text, code,
                                 f"message.{kind}" if code == "INVALID_ARGUMENT" else None)
        name = f"projects/{project}/messages/0:{time.time_ns() // 1000}%{uuid.uuid4().hex[:16]}"
        if body.get("validate_only") is True:
            return _Reply(200, {"name": name})
        notification = message.get("notification") or {}
        push = SandboxPush(
            name=name, target_kind=kind, target=target, title=notification.get("title"),
            body=notification.get("body"), data=dict(message.get("data") or {}),
            android=message.get("android") or {}, apns=message.get("apns") or {},
            webpush=message.get("webpush") or {}, received_at=datetime.now(UTC).isoformat(timespec="milliseconds"),
        )
        with self._lock:
            self._pushes.append(push)
        return _Reply(200, {"name": name})


def _check_message(message: dict[str, Any]) -> _Reply | None:
    targets = [k for k in ("token", "fid", "topic", "condition") if k in message]
    if len(targets) != 1:
        return _invalid("Exactly one of token, fid, topic or condition must be set.", "message")
    kind = targets[0]
    if kind not in ("token", "fid"):
        return _invalid(f"The sandbox delivers to tokens and FIDs only, not to a {kind}.", f"message.{kind}")
    target = message[kind]
    if not isinstance(target, str) or not target or len(target) > 4096 or any(c.isspace() for c in target):
        return _google_error(400, "INVALID_ARGUMENT", INVALID_TOKEN_MESSAGE, "INVALID_ARGUMENT", f"message.{kind}")

    data = message.get("data") or {}
    if not isinstance(data, dict):
        return _invalid("Invalid value at 'message.data': a map of strings is required.", "message.data")
    for key, value in data.items():
        if not isinstance(value, str):
            return _invalid(f"Invalid value at 'message.data[{key}].value' (TYPE_STRING)", f"message.data[{key}]")
        if key in _RESERVED_DATA_KEYS or key.startswith(("google.", "gcm.")):
            return _invalid(f"Invalid data payload key: {key}", f"message.data[{key}]")
    notification = message.get("notification") or {}
    payload = json.dumps({"data": data, "notification": notification}, ensure_ascii=False, separators=(",", ":"))
    if len(payload.encode()) > MAX_PAYLOAD_BYTES:
        return _invalid(f"Message is too big: data and notification exceed {MAX_PAYLOAD_BYTES} bytes.", "message")

    android = message.get("android") or {}
    ttl = android.get("ttl")
    if ttl is not None:
        match = _DURATION.match(ttl) if isinstance(ttl, str) else None
        if match is None or int(match.group("s")) > MAX_TTL_S:
            return _invalid(f"Invalid value at 'message.android.ttl' ({ttl!r}): a duration like \"3600s\" of at "
                            f"most {MAX_TTL_S} seconds is required.", "message.android.ttl")
    priority = android.get("priority")
    if priority is not None and str(priority).lower() not in ("high", "normal"):
        return _invalid(f"Invalid value at 'message.android.priority' ({priority!r})", "message.android.priority")

    apns = message.get("apns") or {}
    apns_headers = apns.get("headers") or {}
    apns_priority = apns_headers.get("apns-priority")
    if apns_priority is not None and apns_priority not in ("5", "10"):
        return _invalid("apns-priority must be 5 or 10", "message.apns.headers")
    expiration = apns_headers.get("apns-expiration")
    if expiration is not None and not str(expiration).isdigit():
        return _invalid("apns-expiration must be a UNIX time in seconds", "message.apns.headers")
    if len(str(apns_headers.get("apns-collapse-id", "")).encode()) > 64:
        return _invalid("apns-collapse-id must be at most 64 bytes", "message.apns.headers")
    aps = (apns.get("payload") or {}).get("aps") or {}
    if apns_priority == "10" and not notification and not aps.get("alert"):
        # Apple refuses immediate delivery of a push that shows nothing (spec §3.1)
        return _invalid("A data-only message to an Apple device must use apns-priority 5.", "message.apns.headers")

    webpush_headers = (message.get("webpush") or {}).get("headers") or {}
    if "TTL" in webpush_headers and not str(webpush_headers["TTL"]).isdigit():
        return _invalid("Webpush TTL must be a number of seconds", "message.webpush.headers")
    if "Urgency" in webpush_headers and webpush_headers["Urgency"] not in _WEBPUSH_URGENCIES:
        return _invalid("Webpush Urgency must be very-low, low, normal or high", "message.webpush.headers")
    return None


class _Handler(BaseHTTPRequestHandler):
    server: SandboxServer[FcmSandbox]
    server_version = "FcmSandbox"
    protocol_version = "HTTP/1.1"  # keep-alive, as httpx and requests expect
    # Headers and body leave in two writes; with Nagle's algorithm the body waits for the client's delayed ACK
    # (~40 ms on Linux) on every kept-alive request.
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:
        """Silent: access lines would carry registration tokens, and the app logs each send itself."""

    def _body(self) -> bytes | None:
        body = read_body(self, _MAX_BODY_BYTES)
        if body is None:
            self.close_connection = True
            self._reply(_invalid(f"Request body must be 0 to {_MAX_BODY_BYTES} bytes."))
        return body

    def do_POST(self) -> None:
        sandbox = self.server.sandbox
        path = urlsplit(self.path).path
        raw = self._body()
        if raw is None:
            return
        if path == TOKEN_PATH:
            form = parse_qs(raw.decode("utf-8", "replace"))
            self._reply(sandbox._token(form))
            return
        match = _SEND.match(path)
        if match is None:
            self._reply(_google_error(404, "NOT_FOUND", f"The requested URL {path} was not found on this server."))
            return
        with sandbox._lock:
            sandbox.send_requests += 1
        fault = sandbox._next_fault()
        if fault is not None:
            mode, delay_s = fault
            retry_after = {"Retry-After": str(sandbox.retry_after_s)}
            if mode == "quota":
                self._reply(_google_error(429, "RESOURCE_EXHAUSTED", "Quota exceeded for sending messages.",
                                          "QUOTA_EXCEEDED", headers=retry_after))
                return
            if mode == "unavailable":
                self._reply(_google_error(503, "UNAVAILABLE", "The service is currently unavailable.",
                                          "UNAVAILABLE", headers=retry_after))
                return
            if mode == "internal":
                self._reply(_google_error(500, "INTERNAL", "Internal error encountered.", "INTERNAL"))
                return
            time.sleep(delay_s)
        try:
            body: object = json.loads(raw or b"null")
        except ValueError:  # includes undecodable bytes
            self._reply(_invalid("Invalid JSON payload received."))
            return
        self._reply(sandbox._send(match.group("project"), self.headers.get("Authorization") or "", body))

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        if url.path != INBOX_PATH:
            self._reply(_Reply(404, {"error": "not found"}))
            return
        query = parse_qs(url.query)
        target = query.get("target", [""])[-1] or None
        device_view = query.get("view", [""])[-1] == "device"
        try:
            limit = int(query.get("limit", [str(DEFAULT_INBOX_LIMIT)])[-1])
        except ValueError:
            limit = 0
        if limit < 1:
            self._reply(_Reply(400, {"error": "limit must be a positive integer"}))
            return
        if device_view and target is None:
            self._reply(_Reply(400, {"error": "view=device needs a target"}))
            return
        sandbox = self.server.sandbox
        found = sandbox.device_view(target) if device_view and target else sandbox.messages(target)
        self._reply(_Reply(200, {"messages": [asdict(push) for push in found[:limit]]}))

    def do_DELETE(self) -> None:
        if urlsplit(self.path).path != INBOX_PATH:
            self._reply(_Reply(404, {"error": "not found"}))
            return
        self._reply(_Reply(200, {"deleted": self.server.sandbox.clear()}))

    def _reply(self, reply: _Reply) -> None:
        body = json.dumps(reply.body, ensure_ascii=False).encode()
        # A client that gave up (e.g. during a stall) has closed its end; nobody is listening.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            self.send_response(reply.status)
            self.send_header("Content-Type", "application/json; charset=UTF-8")
            self.send_header("Content-Length", str(len(body)))
            for name, value in reply.headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(body)


# ------------------------------------------------------------------------------------------- demo service account

def sandbox_token_uri(settings: Settings) -> str:
    return f"http://127.0.0.1:{settings.fcm_sandbox_port}{TOKEN_PATH}"


def demo_service_account(settings: Settings) -> dict[str, str]:
    """The sandbox's service account, in Google's service-account JSON format: its RSA key is generated once into
    ``data_dir/fcm-sandbox-service-account.json`` (mode 0600) and kept; ``token_uri`` and ``project_id`` follow the
    settings, so the real google-auth flow (signed JWT assertion -> access token) runs against the sandbox."""
    path = settings.data_dir / DEMO_SERVICE_ACCOUNT_FILE
    token_uri = sandbox_token_uri(settings)
    info = _read_account(path)
    if info is None:
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode()
        info = {"private_key_id": secrets.token_hex(20), "private_key": pem}
    wanted = {
        "type": "service_account",
        "project_id": settings.fcm_project_id,
        "private_key_id": info["private_key_id"],
        "private_key": info["private_key"],
        "client_email": f"firebase-adminsdk-sandbox@{settings.fcm_project_id}.iam.gserviceaccount.com",
        "client_id": "100000000000000000000",
        "auth_uri": "https://accounts.google.com/o/oauth2/auth",
        "token_uri": token_uri,
        "universe_domain": "googleapis.com",
    }
    if info != wanted:
        _write_private(path, json.dumps(wanted, indent=2))
    return wanted


def _read_account(path: Path) -> dict[str, str] | None:
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(info, dict) or not all(isinstance(info.get(k), str) for k in ("private_key_id", "private_key")):
        return None
    return {str(k): str(v) for k, v in info.items()}


def _write_private(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(4)}")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as file:
        file.write(text)
    os.replace(temporary, path)  # readers never see half a key
