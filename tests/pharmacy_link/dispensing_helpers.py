"""A signed prescription ready for the counter, and pharmacists of other pharmacies, for the dispensing tests."""

from __future__ import annotations

import secrets
from datetime import date, timedelta
from typing import Any
from uuid import UUID

import asyncpg

from api.auth.principal import Principal, issue_access_token
from api.settings import Settings
from tests.consultations.factories import make_consultation
from tests.eprescription.prescribing import draft, line, sign, staff_headers
from tests.helpers import Client


async def signed_prescription(client: Client, pool: asyncpg.Pool, settings: Settings, *, lines: int = 2,
                              starts_in: timedelta = timedelta(minutes=-10), steps_ahead: int = 0) -> dict[str, Any]:
    """A signed prescription of bs.lan for Nguyễn Thị Mai: paracetamol 500 mg × 10 and (with ``lines=2``)
    loratadin 10 mg × 5."""
    consultation_id = await make_consultation(pool, status="in_call", starts_in=starts_in)
    doctor = await staff_headers(pool, settings, "bs.lan")
    chosen = [await line(pool, "Paracetamol", "500 mg", dose=1, times=2, days=5)]
    if lines > 1:
        chosen.append(await line(pool, "Loratadin", dose=1, times=1, days=5))
    created = await draft(client, doctor, consultation_id, chosen)
    signed = await sign(client, doctor, created["id"], steps_ahead=steps_ahead)
    assert signed.status_code == 200, signed.text
    rx: dict[str, Any] = signed.json()
    return rx


async def other_pharmacist(pool: asyncpg.Pool, settings: Settings, *, degree: bool = True,
                           pharmacy_id: UUID | None = None) -> tuple[UUID, dict[str, str]]:
    """A pharmacist of another pharmacy (a new one unless ``pharmacy_id``), with a real access token."""
    if pharmacy_id is None:
        pharmacy_id = await pool.fetchval(
            "INSERT INTO pharmacies (name, kind, address) VALUES ($1, 'nha_thuoc', 'Quận 3') RETURNING id",
            f"Nhà thuốc {secrets.token_hex(3)}")
    account_id = await pool.fetchval(
        """INSERT INTO accounts (role, username, password_hash, full_name)
           VALUES ('pharmacist', $1, 'no-password-login-in-tests', 'Dược sĩ khác') RETURNING id""",
        f"ds.{secrets.token_hex(4)}")
    await pool.execute("INSERT INTO pharmacists (account_id, pharmacy_id, has_pharmacist_degree) VALUES ($1, $2, $3)",
                       account_id, pharmacy_id, degree)
    token = issue_access_token(Principal(account_id=account_id, role="pharmacist", pharmacy_id=pharmacy_id),
                               settings)
    return pharmacy_id, {"Authorization": f"Bearer {token}"}


def sale(*items: tuple[int, int], recipient_id: str | None = None, **line_fields: Any) -> dict[str, Any]:
    """A dispense body: (position, quantity) pairs, a lot that expires next year, 2,000 đ a unit."""
    return {
        "invoice_number": f"HD{secrets.token_hex(4)}",
        "recipient": {"full_name": "Nguyễn Thị Mai", **({"id_number": recipient_id} if recipient_id else {})},
        "lines": [{"position": p, "quantity": q, "lot_number": "L2401",
                   "expiry_date": str(date.today() + timedelta(days=365)), "unit_price_vnd": 2000,
                   "origin": "Việt Nam", **line_fields} for p, q in items],
    }


def key() -> dict[str, str]:
    return {"Idempotency-Key": secrets.token_hex(12)}
