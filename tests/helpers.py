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


async def make_patients(pool: Any, settings: Any, count: int, *, consent: bool = True,
                        first: int = 0) -> list[dict[str, str]]:
    """``count`` patient accounts with telemedicine consent, each with a real access token from our issuer
    (for tests that need many distinct patients at once, where SMS sign-in would hit the per-IP limits)."""
    from api.auth.principal import Principal, issue_access_token

    patients = []
    for i in range(first, first + count):
        phone = f"+8497{i:07d}"
        account_id = await pool.fetchval(
            "INSERT INTO accounts (role, phone, full_name) VALUES ('patient', $1, $2) RETURNING id", phone, f"BN {i}")
        patient_id = await pool.fetchval(
            "INSERT INTO patients (account_id, full_name) VALUES ($1, $2) RETURNING id", account_id, f"BN {i}")
        if consent:
            await pool.execute(
                """INSERT INTO consents (patient_id, kind, version, granted, recorded_by)
                   SELECT $1, kind, version, true, $2 FROM consent_documents""", patient_id, account_id)
        token = issue_access_token(Principal(account_id=account_id, role="patient", patient_id=patient_id), settings)
        patients.append({"access_token": token, "account_id": str(account_id), "patient_id": str(patient_id)})
    return patients
