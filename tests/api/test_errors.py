"""Every client mistake gets the right 4xx as an RFC 9457 problem+json document, tied to its request id."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import jwt
import pytest

from api.auth.principal import AUDIENCE, ISSUER
from api.settings import Settings
from notifications.sms_sandbox import SmsSandbox
from tests.helpers import Client, bearer, sign_in_patient

PATIENT_PHONE = "+84901234567"
MAX_BODY_BYTES = 1_048_576  # Settings.max_body_bytes in the test settings

Session = dict[str, Any]
RequestArgs = dict[str, Any]


def _claims(session: Session, **changes: Any) -> dict[str, Any]:
    """The claims the app puts in a patient's access token, with ``changes`` applied."""
    now = datetime.now(UTC)
    claims: dict[str, Any] = {
        "iss": ISSUER, "aud": AUDIENCE, "sub": session["account_id"], "iat": now, "exp": now + timedelta(minutes=15),
        "jti": "0123456789abcdef", "role": "patient", "scp": "full", "pid": session["patient_id"],
    }
    claims.update(changes)
    return claims


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _expired(settings: Settings, session: Session) -> RequestArgs:
    past = datetime.now(UTC) - timedelta(hours=1)
    token = jwt.encode(_claims(session, iat=past - timedelta(minutes=15), exp=past), settings.jwt_secret,
                       algorithm="HS256")
    return {"headers": _auth(token)}


def _other_secret(settings: Settings, session: Session) -> RequestArgs:
    token = jwt.encode(_claims(session), "another-secret-that-is-long-enough-to-pass", algorithm="HS256")
    return {"headers": _auth(token)}


def _alg_none(settings: Settings, session: Session) -> RequestArgs:
    header = _b64url(json.dumps({"alg": "none", "typ": "JWT"}).encode())
    payload = _b64url(json.dumps(_claims(session), default=lambda d: int(d.timestamp())).encode())
    return {"headers": _auth(f"{header}.{payload}.")}


def _tampered_role(settings: Settings, session: Session) -> RequestArgs:
    """The patient's own, validly signed token with the role claim edited to admin (signature kept)."""
    header, payload, signature = session["access_token"].split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["role"] = "admin"
    forged = f"{header}.{_b64url(json.dumps(claims).encode())}.{signature}"
    body = {"role": "admin", "username": "intruder", "password": "long-enough-pw", "full_name": "Intruder"}
    return {"headers": _auth(forged), "json": body}


def _unknown_role(settings: Settings, session: Session) -> RequestArgs:
    token = jwt.encode(_claims(session, role="superuser"), settings.jwt_secret, algorithm="HS256")
    return {"headers": _auth(token)}


def _wrong_audience(settings: Settings, session: Session) -> RequestArgs:
    token = jwt.encode(_claims(session, aud="someone-else"), settings.jwt_secret, algorithm="HS256")
    return {"headers": _auth(token)}


def _enrolment_scope(settings: Settings, session: Session) -> RequestArgs:
    token = jwt.encode(_claims(session, scp="totp_enrol"), settings.jwt_secret, algorithm="HS256")
    return {"headers": _auth(token)}


def _json_bytes(raw: bytes) -> RequestArgs:
    return {"content": raw, "headers": {"content-type": "application/json"}}


def _fixed(args: RequestArgs) -> Callable[[Settings, Session], RequestArgs]:
    return lambda settings, session: args


def _as_patient(extra: RequestArgs | None = None) -> Callable[[Settings, Session], RequestArgs]:
    return lambda settings, session: {"headers": bearer(session), **(extra or {})}


@dataclass(frozen=True)
class Case:
    id: str
    method: str
    path: str
    args: Callable[[Settings, Session], RequestArgs]
    status: int
    type: str
    error_path: str | None = None  # the field named in errors[] (validation problems)
    headers: dict[str, str] = field(default_factory=dict)  # header name -> expected prefix


UNAUTHENTICATED = {"www-authenticate": "Bearer"}
OVERSIZED = b'{"phone": "' + b"9" * MAX_BODY_BYTES + b'"}'

CASES = [
    Case("malformed-json", "POST", "/auth/otp/request", _fixed(_json_bytes(b'{"phone": ')), 400,
         "/problems/bad-request"),
    Case("number-where-string-expected", "POST", "/auth/otp/request", _fixed({"json": {"phone": 912345678}}), 422,
         "/problems/validation-error", "body.phone"),
    Case("unknown-field", "POST", "/auth/otp/request",
         _fixed({"json": {"phone": "0912345678", "nickname": "Mai"}}), 422, "/problems/validation-error",
         "body.nickname"),
    Case("missing-required-field", "POST", "/auth/otp/verify", _fixed({"json": {"phone": "0912345678"}}), 422,
         "/problems/validation-error", "body.code"),
    Case("array-instead-of-object", "POST", "/auth/otp/request", _fixed({"json": ["0912345678"]}), 422,
         "/problems/validation-error", "body"),
    Case("body-over-max", "POST", "/auth/otp/request", _fixed(_json_bytes(OVERSIZED)), 413,
         "/problems/payload-too-large"),
    Case("bad-uuid-in-path", "GET", "/patients/not-a-uuid", _as_patient(), 404, "/problems/not-found"),
    Case("bad-phone-number", "POST", "/auth/otp/request", _fixed({"json": {"phone": "12345678"}}), 422,
         "/problems/invalid-phone", "body.phone"),
    Case("otp-code-wrong-shape", "POST", "/auth/otp/verify", _fixed({"json": {"phone": "0912345678", "code": "12ab"}}),
         422, "/problems/validation-error", "body.code"),
    Case("patch-field-wrong-shape", "PATCH", "/me/profile", _as_patient({"json": {"citizen_id": "12345"}}), 422,
         "/problems/validation-error", "body.citizen_id"),
    Case("unknown-route", "GET", "/no-such-thing", _fixed({}), 404, "/problems/not-found"),
    Case("wrong-method", "DELETE", "/auth/otp/request", _fixed({}), 405, "/problems/method-not-allowed",
         headers={"allow": ""}),
    Case("missing-authorization", "GET", "/me", _fixed({}), 401, "/problems/unauthenticated",
         headers=UNAUTHENTICATED),
    Case("expired-jwt", "GET", "/me", _expired, 401, "/problems/unauthenticated", headers=UNAUTHENTICATED),
    Case("jwt-signed-with-another-secret", "GET", "/me", _other_secret, 401, "/problems/unauthenticated",
         headers=UNAUTHENTICATED),
    Case("jwt-alg-none", "GET", "/me", _alg_none, 401, "/problems/unauthenticated", headers=UNAUTHENTICATED),
    Case("jwt-role-claim-tampered", "POST", "/admin/accounts", _tampered_role, 401, "/problems/unauthenticated",
         headers=UNAUTHENTICATED),
    Case("jwt-unknown-role", "GET", "/me", _unknown_role, 401, "/problems/unauthenticated", headers=UNAUTHENTICATED),
    Case("jwt-wrong-audience", "GET", "/me", _wrong_audience, 401, "/problems/unauthenticated",
         headers=UNAUTHENTICATED),
    Case("enrolment-token-outside-enrolment", "GET", "/me", _enrolment_scope, 401, "/problems/unauthenticated",
         headers=UNAUTHENTICATED),
    Case("wrong-role", "POST", "/admin/accounts",
         _as_patient({"json": {"role": "admin", "username": "intruder", "password": "long-enough-pw",
                               "full_name": "Intruder"}}), 403, "/problems/forbidden"),
]


async def _send(client: Client, sms: SmsSandbox, settings: Settings, case: Case) -> httpx.Response:
    session = await sign_in_patient(client, sms, PATIENT_PHONE)
    return await client.request(case.method, case.path, **case.args(settings, session))


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
async def test_client_mistake_is_a_4xx_problem_document(client: Client, sms: SmsSandbox, settings: Settings,
                                                        case: Case) -> None:
    response = await _send(client, sms, settings, case)

    assert response.status_code < 500, response.text
    assert response.status_code == case.status, response.text
    assert response.headers["content-type"].split(";")[0] == "application/problem+json"
    body = response.json()
    assert body["type"] == case.type
    assert body["type"].startswith("/problems/")
    assert body["status"] == response.status_code
    assert isinstance(body["title"], str) and body["title"]
    assert isinstance(body["detail"], str) and body["detail"]
    for name, prefix in case.headers.items():
        assert response.headers.get(name, None) is not None, f"missing {name} header"
        assert response.headers[name].startswith(prefix)
    if case.error_path is not None:
        assert body["errors"], body
        assert all(isinstance(e["message"], str) and e["message"] for e in body["errors"])
        assert case.error_path in [e["path"] for e in body["errors"]], body["errors"]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
async def test_problem_carries_the_request_id_of_its_response(client: Client, sms: SmsSandbox, settings: Settings,
                                                              case: Case) -> None:
    response = await _send(client, sms, settings, case)

    request_id = response.headers.get("x-request-id")
    assert request_id, f"{response.status_code} response has no x-request-id header"
    assert response.json().get("request_id") == request_id


async def test_caller_supplied_request_id_is_echoed_in_header_and_problem(client: Client) -> None:
    response = await client.post("/auth/otp/request", json={"phone": 912345678},
                                 headers={"X-Request-ID": "support-ticket-4711"})
    assert response.status_code == 422
    assert response.headers["x-request-id"] == "support-ticket-4711"
    assert response.json()["request_id"] == "support-ticket-4711"
