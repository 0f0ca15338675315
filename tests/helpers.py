"""Journeys that many tests start with: signing in as each role through the real HTTP API."""

from __future__ import annotations

import re
from typing import Any

import pyotp
from litestar import Litestar
from litestar.testing import AsyncTestClient

from api.demo import STAFF
from notifications.sms_sandbox import SmsSandbox

Client = AsyncTestClient[Litestar]
_CODE = re.compile(r"\b(\d{6})\b")


def latest_otp(sms: SmsSandbox, phone: str) -> str:
    messages = sms.messages(phone)
    assert messages, f"no SMS reached {phone}"
    match = _CODE.search(messages[0].content)
    assert match, "the SMS carries no 6-digit code"
    return match.group(1)


async def sign_in_patient(client: Client, sms: SmsSandbox, phone: str) -> dict[str, Any]:
    sent = await client.post("/auth/otp/request", json={"phone": phone})
    assert sent.status_code == 202, sent.text
    verified = await client.post("/auth/otp/verify", json={"phone": phone, "code": latest_otp(sms, phone)})
    assert verified.status_code == 200, verified.text
    session: dict[str, Any] = verified.json()
    return session


def demo_totp_secret(username: str) -> str:
    return next(secret for account, secret, _ in STAFF if account.username == username)


def demo_password(username: str) -> str:
    return next(account.password for account, _, _ in STAFF if account.username == username)


async def sign_in_staff(client: Client, username: str) -> dict[str, Any]:
    response = await client.post("/auth/login", json={
        "username": username, "password": demo_password(username),
        "totp_code": pyotp.TOTP(demo_totp_secret(username)).now()})
    assert response.status_code == 200, response.text
    session: dict[str, Any] = response.json()
    return session


def bearer(session: dict[str, Any]) -> dict[str, str]:
    return {"Authorization": f"Bearer {session['access_token']}"}
