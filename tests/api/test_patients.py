"""Patients keep their own profile, add their children, and grant or withdraw consents (append-only)."""

from __future__ import annotations

import asyncpg
import pytest

from notifications.sms_sandbox import SmsSandbox
from tests.helpers import Client, bearer, sign_in_patient

PHONE = "+84933333333"


async def test_profile_update_round_trips_vietnamese_text_and_validates_fields(client: Client,
                                                                              sms: SmsSandbox) -> None:
    session = await sign_in_patient(client, sms, PHONE)
    update = await client.patch("/me/profile", headers=bearer(session), json={
        "full_name": "Đặng Thị Ngọc Ánh", "date_of_birth": "1990-07-21", "sex": "female",
        "citizen_id": "079190012345", "address": "Số 5, đường Lê Lợi, phường Bến Thành, TP. Hồ Chí Minh",
        "allergies": [{"substance": "penicillin", "severity": "severe"}], "weight_kg": 52.5})
    assert update.status_code == 200, update.text
    me = (await client.get("/me", headers=bearer(session))).json()
    assert me["full_name"] == "Đặng Thị Ngọc Ánh"
    assert me["patient"]["citizen_id"] == "079190012345"
    assert me["patient"]["allergies"] == [{"substance": "penicillin", "reaction": None, "severity": "severe"}]
    assert me["patient"]["weight_kg"] == 52.5

    cleared = await client.patch("/me/profile", headers=bearer(session), json={"citizen_id": None})
    assert cleared.json()["citizen_id"] is None
    assert cleared.json()["full_name"] == "Đặng Thị Ngọc Ánh"  # absent fields are untouched


@pytest.mark.parametrize(("field", "value"), [
    ("citizen_id", "12345"), ("citizen_id", "07919001234X"), ("weight_kg", -3), ("sex", "unknown"),
    ("date_of_birth", "21/07/1990"), ("health_insurance_number", "abc"), ("allergies", [{"reaction": "x"}]),
])
async def test_bad_profile_fields_are_rejected_with_their_path(client: Client, sms: SmsSandbox, field: str,
                                                               value: object) -> None:
    session = await sign_in_patient(client, sms, PHONE)
    response = await client.patch("/me/profile", headers=bearer(session), json={field: value})
    assert response.status_code == 422
    assert response.json()["errors"][0]["path"].startswith(f"body.{field}")


async def test_citizen_id_belongs_to_one_patient(client: Client, sms: SmsSandbox, pool: asyncpg.Pool) -> None:
    first = await sign_in_patient(client, sms, PHONE)
    await client.patch("/me/profile", headers=bearer(first), json={"citizen_id": "001099012345"})
    second = await sign_in_patient(client, sms, "+84944444444")
    clash = await client.patch("/me/profile", headers=bearer(second), json={"citizen_id": "001099012345"})
    assert clash.status_code == 409
    assert clash.json()["type"] == "/problems/citizen-id-taken"


async def test_guardian_adds_a_child_who_is_listed_and_editable(client: Client, sms: SmsSandbox) -> None:
    session = await sign_in_patient(client, sms, PHONE)
    added = await client.post("/me/dependents", headers=bearer(session), json={
        "full_name": "Nguyễn Minh Khôi", "date_of_birth": "2025-02-01", "sex": "male", "weight_kg": 8.2})
    assert added.status_code == 201, added.text
    child = added.json()
    assert child["is_dependent"] is True
    listed = (await client.get("/me/dependents", headers=bearer(session))).json()
    assert [c["id"] for c in listed] == [child["id"]]
    edited = await client.patch(f"/patients/{child['id']}", headers=bearer(session), json={"weight_kg": 9.0})
    assert edited.json()["weight_kg"] == 9.0


async def test_a_dependent_must_be_younger_than_the_guardian(client: Client, sms: SmsSandbox) -> None:
    session = await sign_in_patient(client, sms, PHONE)
    await client.patch("/me/profile", headers=bearer(session), json={"date_of_birth": "1995-01-01"})
    response = await client.post("/me/dependents", headers=bearer(session), json={
        "full_name": "Ông nội", "date_of_birth": "1950-01-01"})
    assert response.status_code == 422
    assert response.json()["errors"][0]["path"] == "body.date_of_birth"


async def test_consent_is_granted_withdrawn_and_kept_as_history(client: Client, sms: SmsSandbox,
                                                                pool: asyncpg.Pool) -> None:
    session = await sign_in_patient(client, sms, PHONE)
    documents = (await client.get("/consent-documents")).json()
    assert {d["kind"] for d in documents} == {"telemedicine_terms", "data_processing"}
    version = next(d["version"] for d in documents if d["kind"] == "telemedicine_terms")

    granted = await client.post("/me/consents", headers=bearer(session),
                                json={"kind": "telemedicine_terms", "version": version, "granted": True})
    assert granted.status_code == 201
    assert granted.json()["current"] is True
    withdrawn = await client.post("/me/consents", headers=bearer(session),
                                  json={"kind": "telemedicine_terms", "version": version, "granted": False})
    assert withdrawn.json()["current"] is False
    state = (await client.get("/me/consents", headers=bearer(session))).json()
    assert [(c["kind"], c["current"]) for c in state] == [("telemedicine_terms", False)]
    assert await pool.fetchval("SELECT count(*) FROM consents") == 2


async def test_consent_to_an_unknown_version_is_refused(client: Client, sms: SmsSandbox) -> None:
    session = await sign_in_patient(client, sms, PHONE)
    response = await client.post("/me/consents", headers=bearer(session),
                                 json={"kind": "data_processing", "version": "2019-01", "granted": True})
    assert response.status_code == 422
    assert response.json()["errors"][0]["path"] == "body.version"


async def test_a_newer_consent_text_makes_the_old_consent_not_current(client: Client, sms: SmsSandbox,
                                                                      database: object) -> None:
    session = await sign_in_patient(client, sms, PHONE)
    await client.post("/me/consents", headers=bearer(session),
                      json={"kind": "data_processing", "version": "2026-01", "granted": True})
    admin = await asyncpg.connect(database.admin_dsn)  # type: ignore[attr-defined]
    try:
        await admin.execute("""INSERT INTO consent_documents (kind, version, title, body, effective_at)
                               VALUES ('data_processing', '2026-11', 't', 'b', now())""")
    finally:
        await admin.close()
    state = (await client.get("/me/consents", headers=bearer(session))).json()
    assert [(c["version"], c["current"]) for c in state] == [("2026-01", False)]
