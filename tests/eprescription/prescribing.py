"""The doctor's side of prescribing, as the console drives it: tokens, draft bodies, the signing code."""

from __future__ import annotations

import time
from typing import Any
from uuid import UUID

import asyncpg
import pyotp

from api.auth.principal import Principal, issue_access_token
from api.settings import Settings
from tests.eprescription.factories import drug_id
from tests.helpers import Client, demo_totp_secret


async def staff_headers(pool: asyncpg.Pool, settings: Settings, username: str) -> dict[str, str]:
    """A real access token from our issuer for a demo staff account (the sign-in journey is tested in tests/api;
    skipping it here leaves the current TOTP step unused for the signing ceremony)."""
    row = await pool.fetchrow(
        """SELECT a.id, a.role, d.facility_id, ph.pharmacy_id FROM accounts a
           LEFT JOIN doctors d ON d.account_id = a.id LEFT JOIN pharmacists ph ON ph.account_id = a.id
           WHERE a.username = $1""", username)
    principal = Principal(account_id=row["id"], role=row["role"], facility_id=row["facility_id"],
                          pharmacy_id=row["pharmacy_id"])
    return {"Authorization": f"Bearer {issue_access_token(principal, settings)}"}


async def patient_headers(pool: asyncpg.Pool, settings: Settings, phone: str) -> dict[str, str]:
    row = await pool.fetchrow(
        "SELECT a.id, p.id AS patient_id FROM accounts a JOIN patients p ON p.account_id = a.id WHERE a.phone = $1",
        phone)
    principal = Principal(account_id=row["id"], role="patient", patient_id=row["patient_id"])
    return {"Authorization": f"Bearer {issue_access_token(principal, settings)}"}


def signing_code(username: str = "bs.lan", steps_ahead: int = 0) -> str:
    """The doctor's authenticator code; ``steps_ahead=1`` is the next one (a code is accepted once, ±1 step)."""
    return pyotp.TOTP(demo_totp_secret(username)).at(time.time() + 30 * steps_ahead)


async def line(pool: asyncpg.Pool, inn: str, strength: str | None = None, *, dose: float = 1, times: int = 2,
               days: int = 5, unit: str = "viên", quantity: int | None = None, quantity_unit: str | None = None,
               usage: str = "Uống sau ăn") -> dict[str, Any]:
    return {"drug_id": str(await drug_id(pool, inn, strength)), "dose_per_time": dose, "dose_unit": unit,
            "times_per_day": times, "days": days,
            "quantity": quantity if quantity is not None else int(-(-dose * times * days // 1)),
            "quantity_unit": quantity_unit or unit, "usage": usage}


async def draft(client: Client, headers: dict[str, str], consultation_id: UUID, lines: list[dict[str, Any]],
                **fields: Any) -> dict[str, Any]:
    body = {"consultation_id": str(consultation_id), "lines": lines,
            "diagnoses": fields.pop("diagnoses", [{"code": "J00", "conclusion": "Cảm lạnh"}]), **fields}
    response = await client.post("/prescriptions", headers=headers, json=body)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


async def sign(client: Client, headers: dict[str, str], rx_id: str, *, username: str = "bs.lan",
               steps_ahead: int = 0, overrides: list[dict[str, str]] | None = None) -> Any:
    return await client.post(f"/prescriptions/{rx_id}/sign", headers=headers, json={
        "totp_code": signing_code(username, steps_ahead), "overrides": overrides or []})
