"""RFC 9457 problem+json: the one shape every error takes, and the mapping from exceptions to it.

Domains raise ``DomainError`` subclasses; framework errors (validation, auth, 404, 413...) and database outages are
mapped here, so no handler ever builds an error body by hand. ``type`` values are stable: clients switch on them.
"""

from __future__ import annotations

import logging
import re
import secrets
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import asyncpg
import msgspec
from litestar import Request, Response
from litestar.exceptions import HTTPException, NotAuthorizedException, ValidationException

log = logging.getLogger("lienthong.errors")

PROBLEM_JSON = "application/problem+json"


class FieldError(msgspec.Struct, frozen=True):
    path: str
    message: str


class Problem(msgspec.Struct, omit_defaults=True):
    type: str
    title: str
    status: int
    detail: str
    instance: str | None = None
    request_id: str | None = None
    errors: list[FieldError] | None = None


class DomainError(Exception):
    """Base of every error a client can cause; subclasses set status, slug and title."""

    status: ClassVar[int] = 400
    slug: ClassVar[str] = "bad-request"
    title: ClassVar[str] = "Bad request"

    def __init__(self, detail: str, *, errors: Sequence[FieldError] | None = None,
                 headers: Mapping[str, str] | None = None, extra: Mapping[str, Any] | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.errors = list(errors) if errors else None
        self.headers = dict(headers or {})
        self.extra = dict(extra or {})


class InvalidInput(DomainError):
    status, slug, title = 422, "validation-error", "Invalid input"

    def __init__(self, path: str, message: str) -> None:
        super().__init__(message, errors=[FieldError(path, message)])


class NotFound(DomainError):
    status, slug, title = 404, "not-found", "Not found"


class Forbidden(DomainError):
    status, slug, title = 403, "forbidden", "Forbidden"


class Conflict(DomainError):
    status, slug, title = 409, "conflict", "Conflict"


class TooManyRequests(DomainError):
    status, slug, title = 429, "rate-limited", "Too many requests"

    def __init__(self, detail: str, retry_after_s: int) -> None:
        super().__init__(detail, headers={"Retry-After": str(max(1, retry_after_s))},
                         extra={"retry_after": max(1, retry_after_s)})


class ServiceUnavailable(DomainError):
    status, slug, title = 503, "service-unavailable", "Service unavailable"


def problem_type(slug: str) -> str:
    return f"/problems/{slug}"


def problem_response(request: Request[Any, Any, Any], status: int, slug: str, title: str, detail: str, *,
                     errors: Sequence[FieldError] | None = None, headers: Mapping[str, str] | None = None,
                     extra: Mapping[str, Any] | None = None) -> Response[bytes]:
    # Requests rejected before routing (404, 405) never pass the request-id middleware; give them one here.
    state = request.scope.setdefault("state", {})
    request_id = state.get("request_id") or state.setdefault("request_id", secrets.token_hex(8))
    body = Problem(
        type=problem_type(slug), title=title, status=status, detail=detail, instance=request.url.path,
        request_id=request_id, errors=list(errors) if errors else None,
    )
    encoded = msgspec.json.encode(body)
    if extra:
        merged = msgspec.json.decode(encoded)
        clash = set(extra) & set(Problem.__struct_fields__)
        if clash:  # an extension member must never change what type/status/detail say
            raise ValueError(f"problem extension members clash with standard ones: {sorted(clash)}")
        merged.update(extra)
        encoded = msgspec.json.encode(merged)
    return Response(encoded, status_code=status, media_type=PROBLEM_JSON,
                    headers={**(headers or {}), "x-request-id": request_id})


def _domain_error(request: Request[Any, Any, Any], exc: DomainError) -> Response[bytes]:
    return problem_response(request, exc.status, exc.slug, exc.title, exc.detail, errors=exc.errors,
                            headers=exc.headers, extra=exc.extra)


_AT_PATH = re.compile(r"^(?P<msg>.*?) - at `\$(?P<path>[^`]*)`$")
_NAMED_FIELD = re.compile(r"(?:unknown|required) field `([^`]+)`")


def _validation_error(request: Request[Any, Any, Any], exc: ValidationException) -> Response[bytes]:
    errors: list[FieldError] = []
    for item in exc.extra if isinstance(exc.extra, list) else []:
        if not isinstance(item, dict):
            continue
        message = str(item.get("message", "invalid value"))
        source = item.get("source") or "body"
        source = getattr(source, "value", source)  # Litestar's ParamType enum formats as "ParamType.QUERY"
        key = item.get("key")
        match = _AT_PATH.match(message)
        if match:  # msgspec reports the JSON path inside the body: "... - at `$.lines[0].dose`"
            message, path = match.group("msg"), f"body{match.group('path')}"
        elif key and key != "data":
            path = f"{source}.{key}"
        else:  # the body as a whole ("data" is the handler's parameter, not a field the client sent)
            field = _NAMED_FIELD.search(message)
            path = f"body.{field.group(1)}" if field else "body"
        errors.append(FieldError(path, message))
    detail = "; ".join(f"{e.path}: {e.message}" for e in errors) if errors else str(exc.detail)
    if "Request body" in str(exc.detail) and not errors:
        errors.append(FieldError("body", str(exc.detail)))
    # Well-formed JSON of the wrong shape is 422, like the domain's own InvalidInput; unparsable bodies are 400.
    status = 400 if not errors else 422
    return problem_response(request, status, "validation-error", "Invalid input", detail, errors=errors or None)


_HTTP_SLUGS = {
    400: ("bad-request", "Bad request"),
    401: ("unauthenticated", "Authentication required"),
    403: ("forbidden", "Forbidden"),
    404: ("not-found", "Not found"),
    405: ("method-not-allowed", "Method not allowed"),
    413: ("payload-too-large", "Request body too large"),
    415: ("unsupported-media-type", "Unsupported media type"),
    429: ("rate-limited", "Too many requests"),
}


def _http_error(request: Request[Any, Any, Any], exc: HTTPException) -> Response[bytes]:
    status = exc.status_code
    if status >= 500:
        return _unexpected(request, exc)
    slug, title = _HTTP_SLUGS.get(status, (f"http-{status}", "Request error"))
    headers = dict(exc.headers or {})
    detail = exc.detail
    if isinstance(exc, NotAuthorizedException):
        headers.setdefault("WWW-Authenticate", 'Bearer realm="lienthong"')
        # Litestar's JWT middleware words differ by cause; the client only needs to know to sign in again.
        detail = "A valid, unexpired access token is required (Authorization: Bearer ...)."
    elif status == 404 and detail == "Not Found":
        detail = f"No resource at {request.url.path}."
    return problem_response(request, status, slug, title, detail, headers=headers)


# A server shutting down ends sessions with FATAL 57P01/57P02 (AdminShutdown, CrashShutdown); when that message
# reaches an idle pooled connection, asyncpg leaves it in an error state until the socket's close is processed, and a
# request borrowing it in between gets InternalClientError ("another operation is in progress"). All are outages.
_DB_DOWN = (
    asyncpg.CannotConnectNowError, asyncpg.ConnectionDoesNotExistError, asyncpg.TooManyConnectionsError,
    asyncpg.AdminShutdownError, asyncpg.CrashShutdownError, asyncpg.InternalClientError,
    asyncpg.InterfaceError, ConnectionError, TimeoutError, OSError,
)


def _nul_field(request: Request[Any, Any, Any]) -> str:
    """Which parameter holds a NUL character; "body" when none does (the body is not at hand here)."""
    for name, value in request.path_params.items():
        if "\x00" in str(value):
            return f"path.{name}"
    for name, value in request.query_params.multi_items():
        if "\x00" in value:
            return f"query.{name}"
    return "body"


def _unexpected(request: Request[Any, Any, Any], exc: Exception) -> Response[bytes]:
    if isinstance(exc, (*_DB_DOWN, asyncpg.PostgresConnectionError)):
        log.warning("database unavailable: %s", type(exc).__name__)
        return problem_response(request, 503, "database-unavailable", "Service unavailable",
                                "The database is not reachable right now; retry shortly.", headers={"Retry-After": "2"})
    if isinstance(exc, (asyncpg.CharacterNotInRepertoireError, asyncpg.UntranslatableCharacterError)):
        # PostgreSQL text cannot hold U+0000 (nor jsonb a \u0000 escape): a client sent one in some text field.
        message = "text cannot contain the NUL character (U+0000)"
        path = _nul_field(request)
        return problem_response(request, 422, "validation-error", "Invalid input", f"{path}: {message}",
                                errors=[FieldError(path, message)])
    if isinstance(exc, UnicodeDecodeError):
        # msgspec raises this, not DecodeError, for a JSON body whose strings hold bytes that are not UTF-8
        detail = f"The request body is not UTF-8 text (first bad byte at offset {exc.start})."
        return problem_response(request, 400, "validation-error", "Invalid input", detail,
                                errors=[FieldError("body", detail)])
    log.exception("unhandled error", exc_info=exc)
    return problem_response(request, 500, "internal-error", "Internal error",
                            "An unexpected error occurred; it has been logged with this request id.")


EXCEPTION_HANDLERS: Mapping[Any, Any] = {
    DomainError: _domain_error,
    ValidationException: _validation_error,
    HTTPException: _http_error,
    Exception: _unexpected,
}

__all__ = [
    "EXCEPTION_HANDLERS", "PROBLEM_JSON", "Conflict", "DomainError", "FieldError", "Forbidden", "InvalidInput",
    "NotFound", "Problem", "ServiceUnavailable", "TooManyRequests", "problem_response",
]
