"""Decree 13/2023 data subject requests: a patient's export of everything held about them (and a guardian's for a
child), and erasure that removes the sign-in identity while the medical record stays (api/patients/data_rights.py)."""

from __future__ import annotations

import secrets
from datetime import timedelta
from typing import Any
from uuid import UUID

import asyncpg
import pytest

from api.settings import Settings
from notifications.sms_sandbox import SmsSandbox
from tests.consultations.factories import make_consultation
from tests.eprescription.prescribing import patient_headers, staff_headers
from tests.helpers import Client, bearer, sign_in_patient
from tests.pharmacy_link.dispensing_helpers import key, sale, signed_prescription

pytestmark = pytest.mark.usefixtures("demo")

MAI, HUNG = "+84912345678", "+84987654321"
CITIZEN_ID = "079192001234"
CONFIRM = {"confirm": "erase my account"}


async def _patient_id(pool: asyncpg.Pool, phone: str) -> UUID:
    found: UUID = await pool.fetchval(
        "SELECT p.id FROM patients p JOIN accounts a ON a.id = p.account_id WHERE a.phone = $1", phone)
    return found


async def _child_id(pool: asyncpg.Pool, guardian_phone: str = MAI) -> UUID:
    found: UUID = await pool.fetchval(
        """SELECT g.dependent_id FROM guardianships g JOIN patients p ON p.id = g.guardian_id
           JOIN accounts a ON a.id = p.account_id WHERE a.phone = $1""", guardian_phone)
    return found


async def _mai_with_a_history(client: Client, pool: asyncpg.Pool, settings: Settings,
                              mai: dict[str, str]) -> dict[str, Any]:
    """Through the API: Mai's profile, a consent, a device, preferences; a consultation with a record, a signed
    prescription dispensed at the demo pharmacy and its counter payment; she and her doctor read her record."""
    profile = await client.patch("/me/profile", headers=mai, json={
        "citizen_id": CITIZEN_ID, "health_insurance_number": "GD4797912345678", "address": "12 Lý Tự Trọng, Quận 1",
        "allergies": [{"substance": "penicillin", "severity": "severe"}]})
    assert profile.status_code == 200, profile.text
    consent = await client.post("/me/consents", headers=mai, json={
        "kind": "data_processing", "version": "2026-01", "granted": True})
    assert consent.status_code == 201, consent.text
    device = await client.post("/notifications/devices", headers=mai, json={
        "target_kind": "token", "target": "fcm-mai-" + "x" * 100, "platform": "android", "app_version": "1.4.2"})
    assert device.status_code == 201, device.text
    preferences = await client.put("/notifications/preferences", headers=mai, json={
        "preferences": [{"category": "appointment", "channel": "sms", "enabled": False}]})
    assert preferences.status_code == 200, preferences.text

    rx = await signed_prescription(client, pool, settings)
    doctor = await staff_headers(pool, settings, "bs.lan")
    record = await client.put(f"/consultations/{rx['consultation_id']}/record", headers=doctor, json={
        "subjective": "Sốt nhẹ hai ngày", "advice": "Uống nhiều nước", "follow_up_days": 7,
        "diagnoses": [{"code": "J00", "is_principal": True}]})
    assert record.status_code == 200, record.text
    hoa = await staff_headers(pool, settings, "ds.hoa")
    sold = await client.post(f"/dispensing/prescriptions/{rx['code']}/dispenses", headers={**hoa, **key()},
                             json=sale((1, 10), (2, 5)))
    assert sold.status_code == 201, sold.text
    payment = await client.post(f"/payments/dispenses/{sold.json()['id']}", headers=hoa)
    assert payment.status_code in (200, 201), payment.text
    mai_id = await _patient_id(pool, MAI)
    assert (await client.get(f"/patients/{mai_id}", headers=mai)).status_code == 200
    return {"rx": rx, "dispense_id": sold.json()["id"], "payment": payment.json(), "patient_id": mai_id}


def _is_vietnam_time(value: str) -> bool:
    return value.endswith("+07:00")


async def test_a_patient_exports_everything_held_about_them(client: Client, pool: asyncpg.Pool,
                                                            settings: Settings) -> None:
    mai = await patient_headers(pool, settings, MAI)
    made = await _mai_with_a_history(client, pool, settings, mai)

    response = await client.get("/me/data-export", headers=mai)

    assert response.status_code == 200, response.text
    export = response.json()
    assert export["patient_id"] == str(made["patient_id"]) and _is_vietnam_time(export["exported_at"])
    account = export["account"]
    assert account["phone"] == MAI and account["status"] == "active"
    assert [(d["platform"], d["app_version"]) for d in account["devices"]] == [("android", "1.4.2")]
    assert "x" * 20 not in account["devices"][0]["target"]  # the push address itself is not handed out
    assert {"category": "appointment", "channel": "sms", "enabled": False} in [
        {k: p[k] for k in ("category", "channel", "enabled")} for p in account["notification_preferences"]]
    profile = export["profile"]
    assert (profile["citizen_id"], profile["health_insurance_number"], profile["address"]) == (
        CITIZEN_ID, "GD4797912345678", "12 Lý Tự Trọng, Quận 1")
    assert profile["allergies"] == [{"substance": "penicillin", "reaction": None, "severity": "severe"}]
    assert [d["full_name"] for d in profile["dependents"]] == ["Trần Gia Bảo"]
    assert any(c["kind"] == "data_processing" and c["granted"] and c["recorded_by_self"] for c in export["consents"])

    [consultation] = export["consultations"]
    assert consultation["id"] == made["rx"]["consultation_id"] and consultation["status"] == "in_call"
    assert consultation["doctor"] == "Nguyễn Thị Lan" and consultation["advice"] == "Uống nhiều nước"
    assert [(d["code"], d["is_principal"]) for d in consultation["diagnoses"]] == [("J00", True)]
    assert "Sốt nhẹ" not in response.text  # working notes stay with the facility's record
    assert _is_vietnam_time(consultation["starts_at"])
    [rx] = export["prescriptions"]
    assert rx["code"] == made["rx"]["code"] and rx["status"] == "dispensed"
    assert [(li["drug_name"], li["dispensed_quantity"]) for li in rx["lines"]] == [
        (line["drug_name"], line["quantity"]) for line in made["rx"]["lines"]]
    [dispense] = rx["dispenses"]
    assert dispense["id"] == made["dispense_id"] and dispense["recipient_name"] == "Nguyễn Thị Mai"
    assert [li["quantity"] for li in dispense["lines"]] == [10, 5]
    [payment] = export["payments"]
    assert payment["id"] == made["payment"]["id"] and payment["amount_vnd"] == dispense["total_vnd"]
    actions = [(e["action"], e["actor_role"], e["by_self"]) for e in export["access_log"]]
    assert ("patient.viewed", "patient", True) in actions
    assert any(role == "doctor" for _, role, _ in actions)
    assert "bs.lan" not in str(export["access_log"])  # roles, never the other people behind them

    audited = await pool.fetch("SELECT actor_role FROM audit_log WHERE action = 'patient.data_exported' "
                               "AND subject_patient_id = $1", made["patient_id"])
    assert [r["actor_role"] for r in audited] == ["patient"]


async def test_a_guardian_exports_their_childs_data(client: Client, pool: asyncpg.Pool, settings: Settings) -> None:
    mai = await patient_headers(pool, settings, MAI)
    child_id = await _child_id(pool)
    dose = await client.post(f"/patients/{child_id}/vaccinations", headers=mai, json={
        "vaccine": "HEPB_BD", "dose_number": 0, "given_on": "2024-05-10"})
    assert dose.status_code == 201, dose.text
    consultation_id = await make_consultation(pool, for_child=True, status="booked", starts_in=timedelta(days=2))

    response = await client.get(f"/patients/{child_id}/data-export", headers=mai)

    assert response.status_code == 200, response.text
    export = response.json()
    assert export["account"] is None  # a child without an account of their own
    assert export["profile"]["full_name"] == "Trần Gia Bảo"
    assert [g["full_name"] for g in export["profile"]["guardians"]] == ["Nguyễn Thị Mai"]
    assert [(d["vaccine"], d["dose_number"]) for d in export["vaccination"]["doses"]] == [("HEPB_BD", 0)]
    assert export["vaccination"]["plan"]
    assert [c["id"] for c in export["consultations"]] == [str(consultation_id)]
    assert await pool.fetchval("SELECT count(*) FROM audit_log WHERE action = 'patient.data_exported' "
                               "AND subject_patient_id = $1", child_id) == 1


async def test_nobody_else_gets_a_patients_export(client: Client, pool: asyncpg.Pool, settings: Settings) -> None:
    mai_id, child_id = await _patient_id(pool, MAI), await _child_id(pool)
    hung = await patient_headers(pool, settings, HUNG)
    for patient_id in (mai_id, child_id):
        refused = await client.get(f"/patients/{patient_id}/data-export", headers=hung)
        assert refused.status_code == 404 and refused.json()["type"] == "/problems/not-found"
    for staff in ("bs.lan", "ds.hoa", "admin"):
        headers = await staff_headers(pool, settings, staff)
        for url in ("/me/data-export", f"/patients/{mai_id}/data-export"):
            refused = await client.get(url, headers=headers)
            assert refused.status_code == 403 and refused.json()["type"] == "/problems/forbidden", (staff, url)
    assert await pool.fetchval("SELECT count(*) FROM audit_log WHERE action = 'patient.data_exported'") == 0


async def test_erasure_is_refused_while_a_consultation_is_open(client: Client, pool: asyncpg.Pool,
                                                               settings: Settings) -> None:
    hung = await patient_headers(pool, settings, HUNG)
    booked = await make_consultation(pool, patient_phone=HUNG, status="booked", starts_in=timedelta(days=1))

    refused = await client.post("/me/erasure", headers=hung, json=CONFIRM)

    assert refused.status_code == 409, refused.text
    problem = refused.json()
    assert problem["type"] == "/problems/erasure-blocked" and "consultation" in problem["detail"]
    assert await pool.fetchval("SELECT phone FROM accounts a JOIN patients p ON p.account_id = a.id "
                               "WHERE p.id = $1", await _patient_id(pool, HUNG)) == HUNG
    assert await pool.fetchval("SELECT count(*) FROM audit_log WHERE action = 'patient.erasure_refused'") == 1

    cancelled = await client.post(f"/consultations/{booked}/cancel", headers=hung, json={"reason": "Đổi ý"})
    assert cancelled.status_code == 200, cancelled.text
    assert (await client.post("/me/erasure", headers=hung, json=CONFIRM)).status_code == 200


async def test_erasure_needs_the_confirmation_words(client: Client, pool: asyncpg.Pool, settings: Settings) -> None:
    hung = await patient_headers(pool, settings, HUNG)
    for body in ({}, {"confirm": True}, {"confirm": "yes"}):
        refused = await client.post("/me/erasure", headers=hung, json=body)
        assert refused.status_code in (400, 422) and refused.json()["type"] == "/problems/validation-error"
    assert await pool.fetchval("SELECT status FROM accounts WHERE phone = $1", HUNG) == "active"


async def test_erasure_ends_the_sign_in_identity_and_keeps_the_medical_record(
        client: Client, pool: asyncpg.Pool, settings: Settings, sms: SmsSandbox) -> None:
    session = await sign_in_patient(client, sms, MAI)
    mai = bearer(session)
    made = await _mai_with_a_history(client, pool, settings, mai)
    doctor = await staff_headers(pool, settings, "bs.lan")
    assert (await client.post(f"/consultations/{made['rx']['consultation_id']}/complete",
                              headers=doctor)).status_code == 200
    hung_before = await pool.fetchrow(
        "SELECT a.*, p.citizen_id, p.full_name AS patient_name FROM accounts a JOIN patients p ON p.account_id = a.id "
        "WHERE a.phone = $1", HUNG)
    record_before = await pool.fetchrow("SELECT * FROM prescriptions WHERE id = $1", UUID(made["rx"]["id"]))

    erased = await client.post("/me/erasure", headers=mai, json=CONFIRM)

    assert erased.status_code == 200, erased.text
    outcome = erased.json()
    assert outcome["patient_id"] == str(made["patient_id"]) and outcome["profile_anonymised"] is False
    assert any("medical record" in item for item in outcome["retained"])
    # signed out everywhere: the refresh token is dead, and signing in again with it is impossible
    refreshed = await client.post("/auth/refresh", json={"refresh_token": session["refresh_token"]})
    assert refreshed.status_code == 401
    account = await pool.fetchrow("SELECT * FROM accounts WHERE id = $1", UUID(session["account_id"]))
    assert account["phone"] is None and account["status"] == "disabled" and account["erased_at"] is not None
    assert await pool.fetchval("SELECT count(*) FROM push_devices WHERE account_id = $1", account["id"]) == 0
    assert await pool.fetchval("SELECT count(*) FROM notification_preferences WHERE account_id = $1",
                               account["id"]) == 0
    assert await pool.fetchval("SELECT count(*) FROM notification_outbox WHERE account_id = $1 "
                               "AND status IN ('pending', 'retry')", account["id"]) == 0
    latest_consent = await pool.fetchval(
        "SELECT granted FROM consents WHERE patient_id = $1 AND kind = 'data_processing' "
        "ORDER BY recorded_at DESC LIMIT 1", made["patient_id"])
    assert latest_consent is False
    audited = await pool.fetchrow("SELECT * FROM audit_log WHERE action = 'patient.erased'")
    assert audited["subject_patient_id"] == made["patient_id"] and audited["details"]["devices_deleted"] == 1

    # the medical record stays as it was, and the pharmacy still verifies the signed prescription
    assert await pool.fetchval("SELECT citizen_id FROM patients WHERE id = $1", made["patient_id"]) == CITIZEN_ID
    assert dict(await pool.fetchrow("SELECT * FROM prescriptions WHERE id = $1", UUID(made["rx"]["id"]))) == dict(
        record_before)
    hoa = await staff_headers(pool, settings, "ds.hoa")
    verified = await client.post("/dispensing/verify", headers=hoa, json={"code": made["rx"]["code"]})
    assert verified.status_code == 200 and verified.json()["signature_valid"] is True
    assert verified.json()["patient"]["full_name"] == "Nguyễn Thị Mai"

    # the number signs up again as a new patient, with nothing of the old account
    again = await sign_in_patient(client, sms, MAI)
    assert again["account_id"] != session["account_id"] and again["patient_id"] != session["patient_id"]
    fresh = (await client.get("/me/data-export", headers=bearer(again))).json()
    assert fresh["consultations"] == [] and fresh["prescriptions"] == [] and fresh["profile"]["dependents"] == []

    # nobody else was touched
    hung_after = await pool.fetchrow(
        "SELECT a.*, p.citizen_id, p.full_name AS patient_name FROM accounts a JOIN patients p ON p.account_id = a.id "
        "WHERE a.phone = $1", HUNG)
    assert dict(hung_after) == dict(hung_before)
    assert await pool.fetchval("SELECT count(*) FROM guardianships WHERE guardian_id = $1", made["patient_id"]) == 1


async def test_a_profile_without_a_medical_record_is_anonymised(client: Client, pool: asyncpg.Pool,
                                                               sms: SmsSandbox) -> None:
    phone = f"+8498{secrets.randbelow(10**7):07d}"
    session = await sign_in_patient(client, sms, phone)
    headers = bearer(session)
    patched = await client.patch("/me/profile", headers=headers, json={
        "full_name": "Phạm Văn Tư", "citizen_id": CITIZEN_ID, "date_of_birth": "1990-02-03"})
    assert patched.status_code == 200, patched.text

    erased = await client.post("/me/erasure", headers=headers, json=CONFIRM)

    assert erased.status_code == 200 and erased.json()["profile_anonymised"] is True
    row = await pool.fetchrow("SELECT * FROM patients WHERE id = $1", UUID(session["patient_id"]))
    assert (row["full_name"], row["citizen_id"], row["date_of_birth"]) == ("Người dùng đã xoá", None, None)
    assert row["anonymised_at"] is not None
    again = await client.post("/me/erasure", headers=headers, json=CONFIRM)  # the old access token, still unexpired
    assert again.status_code == 409 and again.json()["type"] == "/problems/account-erased"
    # the same person signs up again and may claim their citizen ID
    renewed = bearer(await sign_in_patient(client, sms, phone))
    claimed = await client.patch("/me/profile", headers=renewed, json={"citizen_id": CITIZEN_ID})
    assert claimed.status_code == 200, claimed.text
