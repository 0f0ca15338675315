"""Structured JSON logs carrying the request id, and the middleware that assigns that id.

Personal data (Decree 13/2023/NĐ-CP) and secrets never reach a log line in clear: the formatter redacts the message,
every ``extra`` value (nested ones too) and tracebacks. Values under secret keys (password, token, otp...) are
replaced; values under identity keys (phone, citizen_id, id_number...) are masked; free text has Vietnamese mobile
numbers masked like ``mask_phone`` (``+8491*****78``), 12-digit citizen IDs and other long digit runs cut to their
last digits, and bearer/JWT/refresh tokens and ``otp=``/``password=``-style pairs redacted. This is the last line of
defence, not a permission: call sites still log ids and masked values only.
"""

from __future__ import annotations

import logging
import re
import secrets
import sys
import time
from contextvars import ContextVar
from datetime import date, datetime
from typing import Any
from uuid import UUID

import msgspec
from litestar.datastructures import MutableScopeHeaders
from litestar.types import ASGIApp, Message, Receive, Scope, Send

request_id_var: ContextVar[str | None] = ContextVar("request_id", default=None)

_VALID_INCOMING_ID = re.compile(r"^[A-Za-z0-9._-]{8,64}$")
_STD_ATTRS = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime"}

REDACTED = "[redacted]"
# Keys whose values are secrets: never shown, whatever they look like.
_SECRET_KEYS = frozenset({
    "password", "passwd", "secret", "token", "access_token", "refresh_token", "enrolment_token", "id_token",
    "otp", "otp_code", "totp_code", "recovery_code", "api_key", "authorization", "cookie", "hash_secret",
})
# Keys whose values identify a person: masked, keeping enough to tell two apart.
_IDENTITY_KEYS = frozenset({
    "phone", "phone_number", "msisdn", "citizen_id", "cccd", "id_number", "recipient_id_number",
    "health_insurance_number", "insurance_number",
})
# A Vietnamese mobile number as written: +84 / 84 / 0, then 9 digits starting 3, 5, 7, 8 or 9, single spaces, dots
# or hyphens allowed between digits ("0912 345 678"). Not inside a longer run of digits or letters.
_VN_MOBILE = re.compile(r"(?<![\w+*])(?:\+84|84|0)[\s.-]?[35789](?:[\s.-]?\d){8}(?![\w*])")
# What is left of long digit runs after that (12-digit citizen IDs, 9-digit old ID cards, 10-digit social insurance
# numbers, numbers in other formats): keep the last 3 digits of a 12-digit run, the last 2 of others.
_DIGIT_RUN = re.compile(r"(?<!\d)\d{9,}(?!\d)")
_CREDENTIALS = re.compile(
    r"(?i)\bbearer\s+[\w.~+/=-]+"  # Authorization header values
    r"|\beyJ[\w-]{8,}\.[\w-]{8,}\.[\w-]*"  # JWTs
    r"|\brt_[\w-]{16,}"  # our refresh tokens
    r"|\bltpk_[A-Za-z0-9]+_[\w-]{16,}")  # pharmacy API keys (the public prefix stays readable in lists, not here)
_SECRET_PAIR = re.compile(
    r"(?i)\b(password|passwd|secret|token|access_token|refresh_token|otp|otp_code|totp_code|recovery_code|api_key)"
    r"(\"?\s*[=:]\s*)(\"[^\"]*\"|[^\s\",;&]+)")
# "code=482913": a code of 4-8 digits next to the word code is OTP-like (gateway result codes have 2-3 digits,
# prescription codes have letters, and both stay readable).
_NUMERIC_CODE = re.compile(r"(?i)\b(code\s*[=:]\s*\"?)(\d{4,8})\b")


def _masked_mobile(match: re.Match[str]) -> str:
    subscriber = re.sub(r"\D", "", match.group(0))[-9:]
    return f"+84{subscriber[:2]}{'*' * 5}{subscriber[-2:]}"


def _masked_run(match: re.Match[str]) -> str:
    run = match.group(0)
    keep = 3 if len(run) == 12 else 2
    return "*" * (len(run) - keep) + run[-keep:]


def _mask(text: str) -> str:
    """Mask personal data and secrets in free text."""
    text = _CREDENTIALS.sub(REDACTED, text)
    text = _SECRET_PAIR.sub(
        lambda m: m.group(1) + m.group(2) + (f'"{REDACTED}"' if m.group(3).startswith('"') else REDACTED), text)
    text = _NUMERIC_CODE.sub(lambda m: m.group(1) + REDACTED, text)
    text = _VN_MOBILE.sub(_masked_mobile, text)
    return _DIGIT_RUN.sub(_masked_run, text)


def _mask_identifier(value: object) -> str:
    """An identity value under a known key: masked as free text, and if nothing in it was masked that way (an ID
    number in an unexpected format), all but its last 3 characters hidden."""
    text = _mask(str(value))
    if "*" in text or len(text) <= 4:
        return text
    return "*" * (len(text) - 3) + text[-3:]


def redact(value: Any, key: str = "") -> Any:
    """``value`` (an ``extra`` of a log record, or anything inside one) with secrets and personal data hidden."""
    name = key.lower()
    if value is None or isinstance(value, bool | UUID | datetime | date):
        return value
    if name in _SECRET_KEYS or (name == "code" and isinstance(value, (str, int)) and str(value).isdigit()
                                 and 4 <= len(str(value)) <= 8):
        return REDACTED
    if name in _IDENTITY_KEYS:
        return _mask_identifier(value)
    if isinstance(value, str):
        return _mask(value)
    if isinstance(value, int | float):
        masked = _mask(str(value))
        return value if masked == str(value) else masked
    if isinstance(value, dict):
        return {k: redact(v, str(k)) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [redact(v, key) for v in value]
    return _mask(str(value))


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": _mask(record.getMessage()),
        }
        request_id = request_id_var.get()
        if request_id:
            entry["request_id"] = request_id
        for key, value in record.__dict__.items():
            if key not in _STD_ATTRS and not key.startswith("_"):
                entry[key] = redact(value, key)
        if record.exc_info:
            entry["exc"] = _mask(self.formatException(record.exc_info))
        if record.stack_info:
            entry["stack"] = _mask(record.stack_info)
        return msgspec.json.encode(entry, enc_hook=str).decode()


def configure_logging(level: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("uvicorn.access",):
        logging.getLogger(noisy).setLevel(logging.WARNING)


class RequestIdMiddleware:
    """Give every HTTP/WebSocket exchange an id (the caller's ``X-Request-ID`` if sane), echoed in the response."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        incoming = next((v.decode("latin-1") for k, v in scope["headers"] if k == b"x-request-id"), "")
        request_id = incoming if _VALID_INCOMING_ID.match(incoming) else secrets.token_hex(8)
        scope.setdefault("state", {})["request_id"] = request_id
        token = request_id_var.set(request_id)

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                MutableScopeHeaders.from_message(message)["x-request-id"] = request_id
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            request_id_var.reset(token)
