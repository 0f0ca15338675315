"""The FCM sandbox's protocol as a client without firebase-admin sees it: the OAuth2 JWT-bearer grant, messages:send
checks and error bodies, and the inbox."""

from __future__ import annotations

import json
import stat
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest

from api.settings import Settings
from notifications.fcm_sandbox import (
    GOOGLE_TOKEN_AUDIENCE,
    JWT_BEARER_GRANT,
    FcmSandbox,
    demo_service_account,
)

PROJECT = "lienthong-test"
SCOPE = "https://www.googleapis.com/auth/firebase.messaging"


@pytest.fixture(scope="module")
def account(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    return demo_service_account(Settings(data_dir=tmp_path_factory.mktemp("fcm-sa"), fcm_project_id=PROJECT))


@pytest.fixture
def sandbox(account: dict[str, str]) -> Iterator[FcmSandbox]:
    with FcmSandbox(project_id=PROJECT, retry_after_s=9) as running:
        running.trust_service_account(account)
        yield running


def assertion(account: dict[str, str], **changes: Any) -> str:
    now = int(time.time())
    claims: dict[str, Any] = {"iss": account["client_email"], "aud": GOOGLE_TOKEN_AUDIENCE, "iat": now,
                              "exp": now + 3600, "scope": SCOPE}
    claims.update(changes)
    return jwt.encode(claims, account["private_key"], algorithm="RS256", headers={"kid": account["private_key_id"]})


def grant(sandbox: FcmSandbox, jwt_assertion: str, grant_type: str = JWT_BEARER_GRANT) -> httpx.Response:
    return httpx.post(sandbox.base_url + "/token", data={"grant_type": grant_type, "assertion": jwt_assertion})


def access_token(sandbox: FcmSandbox, account: dict[str, str]) -> str:
    response = grant(sandbox, assertion(account))
    assert response.status_code == 200, response.text
    token: str = response.json()["access_token"]
    return token


def send(sandbox: FcmSandbox, token: str, message: dict[str, Any], project: str = PROJECT,
         **body: Any) -> httpx.Response:
    return httpx.post(f"{sandbox.base_url}/v1/projects/{project}/messages:send",
                      headers={"Authorization": f"Bearer {token}"}, json={"message": message, **body})


def fcm_error(response: httpx.Response) -> tuple[int, str, str | None]:
    error = response.json()["error"]
    codes = [d["errorCode"] for d in error.get("details", []) if d["@type"].endswith("FcmError")]
    return response.status_code, error["status"], codes[0] if codes else None


def test_demo_service_account_is_generated_once_private_and_follows_the_port(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, fcm_project_id=PROJECT, fcm_sandbox_port=18027)
    first = demo_service_account(settings)
    path = tmp_path / "fcm-sandbox-service-account.json"

    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert first["type"] == "service_account" and first["token_uri"] == "http://127.0.0.1:18027/token"
    moved = demo_service_account(Settings(data_dir=tmp_path, fcm_project_id=PROJECT, fcm_sandbox_port=18028))
    assert moved["private_key"] == first["private_key"]  # the key is kept; only the endpoint follows the settings
    assert json.loads(path.read_text())["token_uri"] == "http://127.0.0.1:18028/token"


def test_signed_assertion_gets_a_bearer_token(sandbox: FcmSandbox, account: dict[str, str]) -> None:
    response = grant(sandbox, assertion(account))

    assert response.status_code == 200
    body = response.json()
    assert body["token_type"] == "Bearer" and body["expires_in"] > 3000 and body["access_token"]


@pytest.mark.parametrize(("changes", "error"), [
    ({"aud": "https://example.com/token"}, "invalid_grant"),
    ({"iat": int(time.time()) - 7200, "exp": int(time.time()) - 3600}, "invalid_grant"),
    ({"exp": int(time.time()) + 7200}, "invalid_grant"),  # longer than an hour
    ({"iss": "someone@else.iam.gserviceaccount.com"}, "invalid_grant"),
    ({"scope": "https://www.googleapis.com/auth/userinfo.email"}, "invalid_scope"),
], ids=["audience", "expired", "too-long", "unknown-account", "scope"])
def test_bad_assertion_is_an_oauth_error(sandbox: FcmSandbox, account: dict[str, str], changes: dict[str, Any],
                                        error: str) -> None:
    response = grant(sandbox, assertion(account, **changes))

    assert response.status_code == 400
    assert response.json()["error"] == error


def test_assertion_signed_by_another_key_is_refused(sandbox: FcmSandbox, account: dict[str, str],
                                                    tmp_path: Path) -> None:
    stranger = demo_service_account(Settings(data_dir=tmp_path, fcm_project_id=PROJECT))
    forged = jwt.encode(jwt.decode(assertion(account), options={"verify_signature": False}),
                        stranger["private_key"], algorithm="RS256", headers={"kid": account["private_key_id"]})

    response = grant(sandbox, forged)

    assert response.json() == {"error": "invalid_grant", "error_description": "Invalid JWT Signature."}


def test_other_grant_types_are_unsupported(sandbox: FcmSandbox, account: dict[str, str]) -> None:
    response = grant(sandbox, assertion(account), grant_type="client_credentials")

    assert (response.status_code, response.json()["error"]) == (400, "unsupported_grant_type")


def test_send_needs_a_token_the_sandbox_issued_for_the_project(sandbox: FcmSandbox, account: dict[str, str]) -> None:
    message = {"fid": "fid-0000000001", "data": {"a": "b"}}

    assert fcm_error(send(sandbox, "ya29.made-up", message)) == (401, "UNAUTHENTICATED", None)
    token = access_token(sandbox, account)
    assert fcm_error(send(sandbox, token, message, project="someone-else")) == (403, "PERMISSION_DENIED", None)
    sent = send(sandbox, token, message)
    assert sent.status_code == 200 and sent.json()["name"].startswith(f"projects/{PROJECT}/messages/")


@pytest.mark.parametrize("message", [
    {"fid": "fid-0000000001", "token": "tok-000000001"},
    {"notification": {"title": "no target"}},
    {"topic": "news"},
    {"fid": "fid-0000000001", "data": {"n": 1}},
    {"fid": "fid-0000000001", "data": {"google.x": "1"}},
    {"fid": "fid-0000000001", "data": {"big": "x" * 4100}},
    {"fid": "fid-0000000001", "android": {"ttl": "3600"}},
    {"fid": "fid-0000000001", "android": {"ttl": "2419201s"}},
    {"fid": "fid-0000000001", "android": {"priority": "urgent"}},
    {"fid": "fid-0000000001", "data": {"a": "b"}, "apns": {"headers": {"apns-priority": "10"}}},
    {"fid": "fid-0000000001", "apns": {"headers": {"apns-collapse-id": "c" * 65}}},
    {"fid": "fid-0000000001", "webpush": {"headers": {"Urgency": "now"}}},
], ids=["two-targets", "no-target", "topic", "non-string-data", "reserved-key", "too-big", "ttl-format", "ttl-max",
        "android-priority", "apns-data-only-priority-10", "apns-collapse-id", "webpush-urgency"])
def test_invalid_message_is_invalid_argument(sandbox: FcmSandbox, account: dict[str, str],
                                             message: dict[str, Any]) -> None:
    response = send(sandbox, access_token(sandbox, account), message)

    assert fcm_error(response) == (400, "INVALID_ARGUMENT", "INVALID_ARGUMENT")
    assert sandbox.messages() == []


@pytest.mark.parametrize(("arrange", "expected"), [
    (lambda s: s.unregister("fid-0000000001"), (404, "NOT_FOUND", "UNREGISTERED")),
    (lambda s: s.set_target_error("fid-0000000001", "INVALID_ARGUMENT"), (400, "INVALID_ARGUMENT", "INVALID_ARGUMENT")),
    (lambda s: s.set_target_error("fid-0000000001", "SENDER_ID_MISMATCH"),
     (403, "PERMISSION_DENIED", "SENDER_ID_MISMATCH")),
    (lambda s: s.set_target_error("fid-0000000001", "THIRD_PARTY_AUTH_ERROR"),
     (401, "UNAUTHENTICATED", "THIRD_PARTY_AUTH_ERROR")),
    (lambda s: s.fail_next(1, "quota"), (429, "RESOURCE_EXHAUSTED", "QUOTA_EXCEEDED")),
    (lambda s: s.fail_next(1, "unavailable"), (503, "UNAVAILABLE", "UNAVAILABLE")),
    (lambda s: s.fail_next(1, "internal"), (500, "INTERNAL", "INTERNAL")),
], ids=["unregistered", "invalid-token", "sender-id-mismatch", "third-party-auth", "quota", "unavailable",
        "internal"])
def test_faults_answer_google_error_bodies(sandbox: FcmSandbox, account: dict[str, str], arrange: Any,
                                          expected: tuple[int, str, str]) -> None:
    token = access_token(sandbox, account)
    arrange(sandbox)

    response = send(sandbox, token, {"fid": "fid-0000000001", "notification": {"title": "t"}})

    assert fcm_error(response) == expected
    assert response.headers.get("Retry-After") == ("9" if expected[0] in (429, 503) else None)
    if expected[0] == 400:
        [violation] = [d for d in response.json()["error"]["details"] if d["@type"].endswith("BadRequest")]
        assert violation["fieldViolations"][0]["field"] == "message.fid"


def test_fail_next_counts_down_and_stall_still_delivers(sandbox: FcmSandbox, account: dict[str, str]) -> None:
    token = access_token(sandbox, account)
    sandbox.fail_next(1, "internal")
    sandbox.fail_next(1, "stall", delay_s=0.2)
    message = {"fid": "fid-0000000001", "notification": {"title": "t"}}

    assert send(sandbox, token, message).status_code == 500
    started = time.monotonic()
    assert send(sandbox, token, message).status_code == 200
    assert time.monotonic() - started >= 0.2
    assert send(sandbox, token, message).status_code == 200
    assert len(sandbox.messages("fid-0000000001")) == 2


def test_validate_only_is_answered_but_not_delivered(sandbox: FcmSandbox, account: dict[str, str]) -> None:
    response = send(sandbox, access_token(sandbox, account), {"fid": "fid-0000000001", "data": {"a": "b"}},
                    validate_only=True)

    assert response.status_code == 200
    assert sandbox.messages() == []


def test_inbox_shows_newest_first_and_the_device_view_collapses(sandbox: FcmSandbox, account: dict[str, str]) -> None:
    token = access_token(sandbox, account)
    for title, tag in (("first", "vx-1"), ("other", "vx-2"), ("resend", "vx-1")):
        message = {"token": "tok-phone-00001", "notification": {"title": title},
                   "android": {"collapse_key": tag, "notification": {"tag": tag}}}
        assert send(sandbox, token, message).status_code == 200
    send(sandbox, token, {"fid": "fid-elsewhere-01", "notification": {"title": "x"}})

    assert [p.title for p in sandbox.messages("tok-phone-00001")] == ["resend", "other", "first"]
    assert [p.title for p in sandbox.device_view("tok-phone-00001")] == ["resend", "other"]
    inbox = httpx.get(sandbox.base_url + "/inbox", params={"target": "tok-phone-00001", "limit": 2}).json()
    assert [m["title"] for m in inbox["messages"]] == ["resend", "other"]
    assert inbox["messages"][0]["target_kind"] == "token"
    device = httpx.get(sandbox.base_url + "/inbox", params={"target": "tok-phone-00001", "view": "device"}).json()
    assert [m["title"] for m in device["messages"]] == ["resend", "other"]
    assert httpx.get(sandbox.base_url + "/inbox", params={"limit": "0"}).status_code == 400

    assert httpx.delete(sandbox.base_url + "/inbox").json() == {"deleted": 4}
    assert sandbox.messages() == []


def test_unknown_paths_are_404(sandbox: FcmSandbox) -> None:
    assert httpx.post(sandbox.base_url + "/v1/projects/p/messages:batchSend", json={}).status_code == 404
    assert httpx.get(sandbox.base_url + "/nothing").status_code == 404
