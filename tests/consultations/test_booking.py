"""Finding a doctor, seeing free slots and booking one; the database settles races for a slot."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any

import asyncpg
import httpx
import pytest

from api.settings import Settings
from notifications.sms_sandbox import SmsSandbox
from tests.helpers import Client, bearer, make_patients, sign_in_patient

pytestmark = pytest.mark.usefixtures("demo")
GUARDIAN = "+84912345678"
OTHER = "+84987654321"


async def _doctor_id(client: Client, username_query: str) -> str:
    found = (await client.get("/doctors", params={"q": username_query})).json()
    assert found["items"], f"no doctor found for {username_query!r}"
    doctor_id: str = found["items"][0]["id"]
    return doctor_id


async def _first_free_slot(client: Client, doctor_id: str, skip: int = 0) -> dict[str, Any]:
    slots = (await client.get(f"/doctors/{doctor_id}/slots", params={"days": 3})).json()
    assert len(slots) > skip
    slot: dict[str, Any] = slots[skip]
    return slot


@pytest.mark.parametrize("query", ["nhi khoa", "Nhi Khoa", "NHI", "nhi kh", "Nguyễn Thị Lan", "nguyen thi lan",
                                   "nguyen thi lna", "paediatrics"])
async def test_search_finds_the_paediatrician_with_or_without_diacritics(client: Client, query: str) -> None:
    found = (await client.get("/doctors", params={"q": query})).json()
    assert found["items"][0]["full_name"] == "Nguyễn Thị Lan"
    assert found["items"][0]["specialty_name"] == "Nhi khoa"


async def test_specialty_filter_and_unmatched_query(client: Client) -> None:
    internal = (await client.get("/doctors", params={"specialty": "noi_tong_quat"})).json()
    assert [d["full_name"] for d in internal["items"]] == ["Trần Quang Minh"]
    assert (await client.get("/doctors", params={"q": "da liễu xyz"})).json() == {"items": [], "total": 0}


async def test_slots_are_in_vietnam_time_aligned_and_in_the_future(client: Client) -> None:
    doctor_id = await _doctor_id(client, "nhi khoa")
    slots = (await client.get(f"/doctors/{doctor_id}/slots", params={"days": 2})).json()
    assert slots
    for slot in slots:
        starts, ends = datetime.fromisoformat(slot["starts_at"]), datetime.fromisoformat(slot["ends_at"])
        assert slot["starts_at"].endswith("+07:00")
        assert (ends - starts).total_seconds() == 20 * 60
        assert starts.minute % 20 == 0
        assert starts > datetime.now(starts.tzinfo)


async def test_patient_books_a_free_slot_which_then_disappears(client: Client, sms: SmsSandbox,
                                                               pool: asyncpg.Pool) -> None:
    session = await sign_in_patient(client, sms, GUARDIAN)
    doctor_id = await _doctor_id(client, "nhi khoa")
    slot = await _first_free_slot(client, doctor_id)
    response = await client.post("/consultations", headers=bearer(session), json={
        "doctor_id": doctor_id, "starts_at": slot["starts_at"], "reason": "Bé sốt 2 ngày, ho",
        "telemedicine_icd10": "J00"})
    assert response.status_code == 201, response.text
    booked = response.json()
    # a paid booking holds the slot while the patient pays (tests/payments: paying confirms it)
    assert booked["status"] == "awaiting_payment"
    assert booked["payment_due_at"].endswith("+07:00")
    assert booked["fee_vnd"] == 150_000
    assert booked["starts_at"] == slot["starts_at"]
    remaining = (await client.get(f"/doctors/{doctor_id}/slots", params={"days": 3})).json()
    assert slot["starts_at"] not in [s["starts_at"] for s in remaining]
    mine = (await client.get("/consultations", headers=bearer(session))).json()
    assert [c["id"] for c in mine] == [booked["id"]]
    kinds = [r["kind"] for r in await pool.fetch("SELECT kind FROM consultation_events")]
    assert kinds == ["booked"]


async def test_guardian_books_for_own_child_but_not_for_anothers(client: Client, sms: SmsSandbox) -> None:
    guardian = await sign_in_patient(client, sms, GUARDIAN)
    child_id = (await client.get("/me/dependents", headers=bearer(guardian))).json()[0]["id"]
    doctor_id = await _doctor_id(client, "nhi khoa")
    slot = await _first_free_slot(client, doctor_id)
    body = {"doctor_id": doctor_id, "starts_at": slot["starts_at"], "reason": "Khám định kỳ", "patient_id": child_id}
    other = await sign_in_patient(client, sms, OTHER)
    assert (await client.post("/consultations", headers=bearer(other), json=body)).status_code == 404
    response = await client.post("/consultations", headers=bearer(guardian), json=body)
    assert response.status_code == 201
    assert response.json()["patient_name"] == "Trần Gia Bảo"


async def test_booking_needs_current_telemedicine_consent(client: Client, sms: SmsSandbox) -> None:
    newcomer = await sign_in_patient(client, sms, "+84905555555")
    doctor_id = await _doctor_id(client, "nhi khoa")
    slot = await _first_free_slot(client, doctor_id)
    body = {"doctor_id": doctor_id, "starts_at": slot["starts_at"], "reason": "Tư vấn"}
    refused = await client.post("/consultations", headers=bearer(newcomer), json=body)
    assert refused.status_code == 403
    assert refused.json()["type"] == "/problems/consent-required"
    await client.post("/me/consents", headers=bearer(newcomer),
                      json={"kind": "telemedicine_terms", "version": "2026-01", "granted": True})
    assert (await client.post("/consultations", headers=bearer(newcomer), json=body)).status_code == 201


@pytest.mark.parametrize("case", ["misaligned", "outside hours", "unknown doctor", "not telemedicine condition",
                                  "naive time"])
async def test_unbookable_requests_are_refused_with_the_reason(client: Client, sms: SmsSandbox, case: str) -> None:
    session = await sign_in_patient(client, sms, GUARDIAN)
    doctor_id = await _doctor_id(client, "nhi khoa")
    slot = await _first_free_slot(client, doctor_id)
    starts = datetime.fromisoformat(slot["starts_at"])
    body: dict[str, Any] = {"doctor_id": doctor_id, "starts_at": slot["starts_at"], "reason": "Ho"}
    expected = (422, "/problems/slot-unavailable")
    if case == "misaligned":
        body["starts_at"] = starts.replace(minute=starts.minute + 5).isoformat()
    elif case == "outside hours":
        body["starts_at"] = starts.replace(hour=3, minute=0).isoformat()
    elif case == "unknown doctor":
        body["doctor_id"] = "00000000-0000-4000-8000-000000000000"
        expected = (404, "/problems/doctor-not-found")
    elif case == "not telemedicine condition":
        body["telemedicine_icd10"] = "J18.9"
        expected = (422, "/problems/validation-error")
    else:
        body["starts_at"] = starts.replace(tzinfo=None).isoformat()
        expected = (422, "/problems/validation-error")
    response = await client.post("/consultations", headers=bearer(session), json=body)
    assert (response.status_code, response.json()["type"]) == expected


async def test_patient_cannot_hold_two_overlapping_bookings(client: Client, sms: SmsSandbox) -> None:
    session = await sign_in_patient(client, sms, OTHER)
    lan = await _doctor_id(client, "nhi khoa")
    minh = await _doctor_id(client, "noi tong quat")
    # a time on both doctors' grids (20- and 15-minute slots both start on the hour)
    lan_slots = (await client.get(f"/doctors/{lan}/slots", params={"days": 3})).json()
    slot = next(s for s in lan_slots if datetime.fromisoformat(s["starts_at"]).minute == 0)
    first = await client.post("/consultations", headers=bearer(session),
                              json={"doctor_id": lan, "starts_at": slot["starts_at"], "reason": "Ho"})
    assert first.status_code == 201
    overlapping = await client.post("/consultations", headers=bearer(session),
                                    json={"doctor_id": minh, "starts_at": slot["starts_at"], "reason": "Đau đầu"})
    assert overlapping.status_code == 409
    assert overlapping.json()["type"] == "/problems/patient-double-booked"


async def test_fifty_concurrent_bookings_of_one_slot_yield_exactly_one(live_server: str, pool: asyncpg.Pool,
                                                                      settings: Settings) -> None:
    patients = await make_patients(pool, settings, 50)
    async with httpx.AsyncClient(base_url=live_server, timeout=30) as http:
        doctor_id = (await http.get("/doctors", params={"q": "nhi khoa"})).json()["items"][0]["id"]
        slot = (await http.get(f"/doctors/{doctor_id}/slots", params={"days": 3})).json()[0]
        responses = await asyncio.gather(*(
            http.post("/consultations", headers=bearer(p),
                      json={"doctor_id": doctor_id, "starts_at": slot["starts_at"], "reason": "Sốt"})
            for p in patients))
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [201] + [409] * 49
    assert {r.json()["type"] for r in responses if r.status_code == 409} == {"/problems/slot-taken"}
    assert await pool.fetchval("SELECT count(*) FROM consultations") == 1
