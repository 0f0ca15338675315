"""The events of the other modules queue their notices in the same transaction (booking, cancellation, call start,
signature, cancellation of a prescription, sale), to the patient's account or a child's guardian."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest

from api.settings import Settings
from notifications.sms_sandbox import SmsSandbox
from tests.consultations.factories import make_consultation
from tests.eprescription.prescribing import draft, line, sign, staff_headers
from tests.helpers import Client, bearer, sign_in_patient
from tests.pharmacy_link.dispensing_helpers import key, sale, signed_prescription

pytestmark = pytest.mark.usefixtures("demo")
GUARDIAN = "+84912345678"


async def outbox(pool: asyncpg.Pool) -> list[dict[str, Any]]:
    rows = await pool.fetch(
        """SELECT o.kind, o.category, o.channel, o.status, o.params, o.available_at, o.expires_at, a.phone
           FROM notification_outbox o JOIN accounts a ON a.id = o.account_id ORDER BY o.created_at, o.kind""")
    return [dict(r) for r in rows]


async def test_free_booking_queues_confirmation_day_before_reminder_and_call_to_the_waiting_room(
        client: Client, sms: SmsSandbox, pool: asyncpg.Pool) -> None:
    # bs.minh charges nothing, so the booking is confirmed at once (a paid one is announced when paid:
    # tests/payments)
    session = await sign_in_patient(client, sms, GUARDIAN)
    doctor_id = (await client.get("/doctors", params={"q": "noi tong quat"})).json()["items"][0]["id"]
    slots = (await client.get(f"/doctors/{doctor_id}/slots", params={"days": 5})).json()
    # far enough ahead for a day-before reminder (one is queued only when that moment is over an hour away)
    day_ahead = datetime.now(UTC) + timedelta(hours=26)
    later = next(s for s in slots if datetime.fromisoformat(s["starts_at"]) > day_ahead)
    booked = await client.post("/consultations", headers=bearer(session), json={
        "doctor_id": doctor_id, "starts_at": later["starts_at"], "reason": "Khám lại", "telemedicine_icd10": "J00"})
    assert booked.status_code == 201, booked.text
    consultation = booked.json()
    rows = {r["kind"]: r for r in await outbox(pool)}
    assert set(rows) == {"appointment_booked", "appointment_reminder_24h", "appointment_starting_soon"}
    assert all(r["phone"] == GUARDIAN and r["channel"] == "push" for r in rows.values())
    assert rows["appointment_booked"]["params"]["doctor_name"] == consultation["doctor_name"]
    starts = rows["appointment_starting_soon"]["expires_at"] - timedelta(minutes=15)  # ends_at - slot length
    assert rows["appointment_starting_soon"]["category"] == "call"  # exempt from quiet hours
    assert rows["appointment_starting_soon"]["available_at"] == starts - timedelta(minutes=15)
    assert rows["appointment_starting_soon"]["params"]["starts_at"] == \
        f"{later['starts_at'][11:16]} {later['starts_at'][8:10]}/{later['starts_at'][5:7]}/{later['starts_at'][:4]}"

    cancelled = await client.post(f"/consultations/{consultation['id']}/cancel", headers=bearer(session),
                                  json={"reason": "Bé đã khỏe"})
    assert cancelled.status_code == 200, cancelled.text
    assert {r["kind"]: r["status"] for r in await outbox(pool)} == {
        "appointment_booked": "cancelled", "appointment_reminder_24h": "cancelled",
        "appointment_starting_soon": "cancelled"}


async def test_doctor_cancelling_tells_the_guardian_of_a_child_by_push_and_sms(
        client: Client, pool: asyncpg.Pool, settings: Settings) -> None:
    consultation_id = await make_consultation(pool, for_child=True, starts_in=timedelta(hours=3))
    doctor = await staff_headers(pool, settings, "bs.lan")
    response = await client.post(f"/consultations/{consultation_id}/cancel", headers=doctor,
                                 json={"reason": "Bác sĩ bận đột xuất"})
    assert response.status_code == 200, response.text
    rows = [r for r in await outbox(pool) if r["kind"] == "appointment_cancelled_by_doctor"]
    assert sorted(r["channel"] for r in rows) == ["push", "sms"]
    assert {r["phone"] for r in rows} == {GUARDIAN}  # the child has no account: the guardian hears of it


async def test_doctor_starting_the_call_calls_the_patient(client: Client, pool: asyncpg.Pool,
                                                          settings: Settings) -> None:
    consultation_id = await make_consultation(pool, status="waiting", starts_in=timedelta(minutes=-1))
    doctor = await staff_headers(pool, settings, "bs.lan")
    for _ in range(2):  # a repeated start is harmless and does not call twice
        assert (await client.post(f"/consultations/{consultation_id}/start", headers=doctor)).status_code == 200
    rows = [r for r in await outbox(pool) if r["kind"] == "call_started"]
    assert len(rows) == 1 and rows[0]["category"] == "call"


async def test_signing_queues_prescription_issued_and_a_failed_signature_queues_nothing(
        client: Client, pool: asyncpg.Pool, settings: Settings) -> None:
    consultation_id = await make_consultation(pool, status="in_call", starts_in=timedelta(minutes=-10))
    doctor = await staff_headers(pool, settings, "bs.lan")
    created = await draft(client, doctor, consultation_id, [await line(pool, "Paracetamol", "500 mg")])
    wrong = await client.post(f"/prescriptions/{created['id']}/sign", headers=doctor, json={"totp_code": "000000"})
    assert wrong.status_code in (401, 403, 422), wrong.text
    assert await outbox(pool) == []
    signed = await sign(client, doctor, created["id"])
    assert signed.status_code == 200, signed.text
    [row] = await outbox(pool)
    assert row["kind"] == "prescription_issued" and row["phone"] == GUARDIAN
    assert row["params"]["code"] == signed.json()["code"]
    assert row["expires_at"] is not None


async def test_cancelling_a_prescription_warns_by_push_and_sms(client: Client, pool: asyncpg.Pool,
                                                               settings: Settings) -> None:
    rx = await signed_prescription(client, pool, settings, lines=1)
    doctor = await staff_headers(pool, settings, "bs.lan")
    response = await client.post(f"/prescriptions/{rx['id']}/cancel", headers=doctor,
                                 json={"reason": "prescribing_error"})
    assert response.status_code == 200, response.text
    rows = [r for r in await outbox(pool) if r["kind"] == "prescription_cancelled"]
    assert sorted(r["channel"] for r in rows) == ["push", "sms"]


async def test_partial_then_full_sale_each_notify_once(client: Client, pool: asyncpg.Pool,
                                                       settings: Settings) -> None:
    rx = await signed_prescription(client, pool, settings, lines=1)
    pharmacist = await staff_headers(pool, settings, "ds.hoa")
    idempotency, body = key(), sale((1, 4))
    for _ in range(2):  # a retried request (same Idempotency-Key) is one sale and one notice
        first = await client.post(f"/dispensing/prescriptions/{rx['code']}/dispenses",
                                  headers={**pharmacist, **idempotency}, json=body)
        assert first.status_code in (200, 201), first.text
    second = await client.post(f"/dispensing/prescriptions/{rx['code']}/dispenses", headers={**pharmacist, **key()},
                               json=sale((1, 6)))
    assert second.status_code == 201, second.text
    rows = [r for r in await outbox(pool) if r["kind"].startswith("prescription_") and "dispensed" in r["kind"]]
    assert [r["kind"] for r in rows] == ["prescription_partially_dispensed", "prescription_dispensed"]
    assert rows[0]["params"]["pharmacy_name"]
