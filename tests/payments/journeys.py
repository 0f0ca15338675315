"""Steps of the payment journeys: a patient with a paid booking, starting a payment, the customer's browser on
VNPay's page."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import asyncpg
import httpx

from api.settings import Settings
from tests.helpers import make_patients

TMN, SECRET = Settings.vnpay_tmn_code, Settings.vnpay_hash_secret


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def book_paid(http: httpx.AsyncClient, pool: asyncpg.Pool, settings: Settings, *,
                    skip: int = 0) -> tuple[dict[str, str], dict[str, Any]]:
    """A new patient (with consent) books bs.lan (150,000 đ) at her ``skip``-th free slot: awaiting payment."""
    taken = await pool.fetchval("SELECT count(*) FROM accounts WHERE phone LIKE '+8497%'")
    [patient] = await make_patients(pool, settings, 1, first=taken)
    doctor_id = (await http.get("/doctors", params={"q": "nhi khoa"})).json()["items"][0]["id"]
    slot = (await http.get(f"/doctors/{doctor_id}/slots", params={"days": 3})).json()[skip]
    booked = await http.post("/consultations", headers=auth(patient["access_token"]), json={
        "doctor_id": doctor_id, "starts_at": slot["starts_at"], "reason": "Bé ho, sốt nhẹ",
        "telemedicine_icd10": "J00"})
    assert booked.status_code == 201, booked.text
    consultation: dict[str, Any] = booked.json()
    assert consultation["status"] == "awaiting_payment"
    return patient, consultation


async def start_payment(http: httpx.AsyncClient, patient: dict[str, str], consultation_id: str) -> dict[str, Any]:
    started = await http.post(f"/payments/consultations/{consultation_id}", headers=auth(patient["access_token"]))
    assert started.status_code in (200, 201), started.text
    payment: dict[str, Any] = started.json()
    return payment


async def open_pay_page(pay_url: str) -> str:
    """The customer's browser opens VNPay's page (the sandbox accepts and records the attempt); returns TxnRef."""
    async with httpx.AsyncClient() as browser:
        page = await browser.get(pay_url)
    assert page.status_code == 200, page.text
    query = dict(httpx.URL(pay_url).params)
    return query["vnp_TxnRef"]


async def opened_payment(http: httpx.AsyncClient, pool: asyncpg.Pool, settings: Settings, *,
                         skip: int = 0) -> tuple[dict[str, str], dict[str, Any], dict[str, Any], str]:
    """A paid booking whose patient has started paying and opened VNPay's page: (patient, consultation, payment,
    TxnRef)."""
    patient, consultation = await book_paid(http, pool, settings, skip=skip)
    payment = await start_payment(http, patient, consultation["id"])
    return patient, consultation, payment, await open_pay_page(payment["pay_url"])


async def wait_for(condition: Any, timeout_s: float = 10.0, what: str = "the condition") -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if await condition():
            return
        await asyncio.sleep(0.05)
    raise TimeoutError(f"waited {timeout_s} s for {what}")
