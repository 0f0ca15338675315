"""booked → waiting → in_call → completed, the exits, the doctor's queue and who may do each step."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import asyncpg
import pytest

from api.settings import Settings
from consultations.service import settle_no_shows
from notifications.sms_sandbox import SmsSandbox
from tests.consultations.factories import make_consultation
from tests.helpers import Client, bearer, sign_in_patient, sign_in_staff

pytestmark = pytest.mark.usefixtures("demo")
GUARDIAN = "+84912345678"
OTHER = "+84987654321"


async def _status(pool: asyncpg.Pool, consultation_id: object) -> str:
    status: str = await pool.fetchval("SELECT status FROM consultations WHERE id = $1", consultation_id)
    return status


async def test_full_journey_check_in_start_complete(client: Client, sms: SmsSandbox, pool: asyncpg.Pool) -> None:
    consultation_id = await make_consultation(pool, starts_in=timedelta(minutes=5))
    patient = await sign_in_patient(client, sms, GUARDIAN)
    doctor = await sign_in_staff(client, "bs.lan")

    checked_in = await client.post(f"/consultations/{consultation_id}/check-in", headers=bearer(patient))
    assert checked_in.status_code == 200
    assert checked_in.json()["status"] == "waiting"
    # the queue of the consultation's Vietnam day (it may be tomorrow's when this runs just before midnight)
    day = checked_in.json()["starts_at"][:10]
    queue = (await client.get("/doctors/me/queue", headers=bearer(doctor), params={"date": day})).json()
    assert [(q["consultation_id"], q["status"]) for q in queue] == [(str(consultation_id), "waiting")]
    assert queue[0]["waiting_since"].endswith("+07:00")

    started = await client.post(f"/consultations/{consultation_id}/start", headers=bearer(doctor))
    assert started.json()["status"] == "in_call"
    completed = await client.post(f"/consultations/{consultation_id}/complete", headers=bearer(doctor))
    assert completed.json()["status"] == "completed"
    assert completed.json()["call_ended_at"] is not None
    events = [r["kind"] for r in await pool.fetch(
        "SELECT kind FROM consultation_events WHERE consultation_id = $1 ORDER BY id", consultation_id)]
    assert events == ["checked_in", "call_started", "completed"]


async def test_check_in_opens_fifteen_minutes_before(client: Client, sms: SmsSandbox, pool: asyncpg.Pool) -> None:
    consultation_id = await make_consultation(pool, starts_in=timedelta(hours=2))
    patient = await sign_in_patient(client, sms, GUARDIAN)
    early = await client.post(f"/consultations/{consultation_id}/check-in", headers=bearer(patient))
    assert early.status_code == 409
    assert early.json()["type"] == "/problems/outside-time-window"


@pytest.mark.parametrize(("status", "action", "who"), [
    ("completed", "check-in", "patient"), ("completed", "start", "doctor"), ("booked", "complete", "doctor"),
    ("cancelled_by_patient", "start", "doctor"), ("no_show", "cancel", "patient"), ("in_call", "cancel", "doctor"),
])
async def test_illegal_transitions_are_409(client: Client, sms: SmsSandbox, pool: asyncpg.Pool, status: str,
                                           action: str, who: str) -> None:
    consultation_id = await make_consultation(pool, status=status)
    session = await (sign_in_patient(client, sms, GUARDIAN) if who == "patient" else sign_in_staff(client, "bs.lan"))
    body = {"reason": "Bận việc"} if action == "cancel" else None
    response = await client.post(f"/consultations/{consultation_id}/{action}", headers=bearer(session), json=body)
    assert response.status_code == 409
    assert response.json()["type"] == "/problems/illegal-transition"
    assert response.json()["status"] == 409
    assert await _status(pool, consultation_id) == status


async def test_patient_cancellation_is_free_until_two_hours_before(client: Client, sms: SmsSandbox,
                                                                   pool: asyncpg.Pool) -> None:
    early = await make_consultation(pool, starts_in=timedelta(hours=5))
    late = await make_consultation(pool, starts_in=timedelta(hours=1))
    patient = await sign_in_patient(client, sms, GUARDIAN)
    for consultation_id, expect_late in ((early, False), (late, True)):
        response = await client.post(f"/consultations/{consultation_id}/cancel", headers=bearer(patient),
                                     json={"reason": "Con đã khỏi"})
        assert response.json()["status"] == "cancelled_by_patient"
        assert response.json()["late_cancellation"] is expect_late
        assert response.json()["refund_due"] is False


async def test_doctor_cancellation_of_a_paid_booking_is_refundable_and_frees_the_slot(
        client: Client, sms: SmsSandbox, pool: asyncpg.Pool) -> None:
    consultation_id = await make_consultation(pool, starts_in=timedelta(hours=3), fee_vnd=150_000)
    doctor = await sign_in_staff(client, "bs.lan")
    response = await client.post(f"/consultations/{consultation_id}/cancel", headers=bearer(doctor),
                                 json={"reason": "Bác sĩ có ca cấp cứu"})
    assert response.json()["status"] == "cancelled_by_doctor"
    assert response.json()["refund_due"] is True
    event = await pool.fetchrow("SELECT details FROM consultation_events WHERE kind = 'cancelled_by_doctor'")
    assert event["details"]["refund_due"] is True
    # the same time can be booked again by someone else
    await make_consultation(pool, patient_phone=OTHER, starts_in=timedelta(hours=3))


async def test_no_show_only_after_the_grace_minutes(client: Client, pool: asyncpg.Pool) -> None:
    soon = await make_consultation(pool, starts_in=timedelta(minutes=-5))
    overdue = await make_consultation(pool, doctor_username="bs.minh", patient_phone=OTHER,
                                      starts_in=timedelta(minutes=-11))
    lan, minh = await sign_in_staff(client, "bs.lan"), await sign_in_staff(client, "bs.minh")
    too_soon = await client.post(f"/consultations/{soon}/no-show", headers=bearer(lan))
    assert too_soon.status_code == 409
    assert (await client.post(f"/consultations/{overdue}/no-show", headers=bearer(minh))).json()["status"] == "no_show"


async def test_worker_settles_patient_and_doctor_no_shows(pool: asyncpg.Pool, settings: Settings) -> None:
    absent_patient = await make_consultation(pool, starts_in=timedelta(minutes=-15))
    left_waiting = await make_consultation(pool, doctor_username="bs.minh", patient_phone=OTHER,
                                           starts_in=timedelta(minutes=-30), status="waiting")
    upcoming = await make_consultation(pool, starts_in=timedelta(hours=1))
    assert await settle_no_shows(pool, settings) == 2
    assert await _status(pool, absent_patient) == "no_show"
    assert await _status(pool, left_waiting) == "cancelled_by_doctor"
    assert await pool.fetchval("SELECT refund_due FROM consultations WHERE id = $1", left_waiting) is True
    assert await _status(pool, upcoming) == "booked"
    assert await settle_no_shows(pool, settings) == 0


async def test_strangers_cannot_see_or_act_on_a_consultation(client: Client, sms: SmsSandbox,
                                                             pool: asyncpg.Pool) -> None:
    consultation_id = await make_consultation(pool)
    other_patient = await sign_in_patient(client, sms, OTHER)
    other_doctor = await sign_in_staff(client, "bs.minh")
    for session in (other_patient, other_doctor):
        assert (await client.get(f"/consultations/{consultation_id}", headers=bearer(session))).status_code == 404
        cancel = await client.post(f"/consultations/{consultation_id}/cancel", headers=bearer(session),
                                   json={"reason": "x"})
        assert cancel.status_code == 404
    stranger_start = await client.post(f"/consultations/{consultation_id}/start", headers=bearer(other_doctor))
    assert stranger_start.status_code == 404
    assert await _status(pool, consultation_id) == "booked"
    owner = await sign_in_patient(client, sms, GUARDIAN)
    assert (await client.get(f"/consultations/{consultation_id}", headers=bearer(owner))).status_code == 200
    patient_start = await client.post(f"/consultations/{consultation_id}/start", headers=bearer(owner))
    assert patient_start.status_code == 403


async def test_concurrent_check_in_and_cancel_leave_one_consistent_state(client: Client, sms: SmsSandbox,
                                                                         pool: asyncpg.Pool) -> None:
    consultation_id = await make_consultation(pool, starts_in=timedelta(minutes=5))
    patient = await sign_in_patient(client, sms, GUARDIAN)
    doctor = await sign_in_staff(client, "bs.lan")
    check_in, cancel = await asyncio.gather(
        client.post(f"/consultations/{consultation_id}/check-in", headers=bearer(patient)),
        client.post(f"/consultations/{consultation_id}/cancel", headers=bearer(doctor), json={"reason": "Ốm"}))
    final = await _status(pool, consultation_id)
    assert final == "cancelled_by_doctor"
    assert cancel.status_code == 200
    assert check_in.status_code in (200, 409)
