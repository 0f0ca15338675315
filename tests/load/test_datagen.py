"""The load-test data generator at tiny scale: the counts it promises, and that what it writes works through the
real app: doctors and pharmacists sign in with the manifest's password and TOTP, an open prescription verifies and is
dispensed at the counter, a patient books a free doctor."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import msgspec
import pyotp

from api import db
from api.settings import Settings
from load_tests.datagen import SCALES, Manifest, generate
from notifications.sms_sandbox import SmsSandbox
from tests.helpers import Client, bearer, sign_in_patient
from tests.pharmacy_link.dispensing_helpers import sale

TINY = SCALES["tiny"]


async def _generated(database: db.DatabaseTarget, settings: Settings, tmp_path: Path) -> Manifest:
    path = tmp_path / "manifest.json"
    manifest = await generate(database, settings, TINY, path, progress=False)
    assert msgspec.json.decode(path.read_bytes(), type=Manifest) == manifest
    return manifest


async def _staff_session(client: Client, username: str, password: str, secret: str) -> dict[str, str]:
    response = await client.post("/auth/login", json={"username": username, "password": password,
                                                      "totp_code": pyotp.TOTP(secret).now()})
    assert response.status_code == 200, response.text
    session: dict[str, str] = response.json()
    return session


async def test_tiny_scale_writes_the_promised_counts(database: db.DatabaseTarget, settings: Settings,
                                                     pool: asyncpg.Pool, tmp_path: Path) -> None:
    manifest = await _generated(database, settings, tmp_path)
    count = pool.fetchval
    assert await count("SELECT count(*) FROM doctors") == TINY.doctors
    assert await count("SELECT count(*) FROM doctor_profiles WHERE search_doc <> ''") == TINY.doctors
    assert await count("SELECT count(DISTINCT doctor_id) FROM doctor_signing_keys") == TINY.doctors
    assert await count("SELECT count(*) FROM patients WHERE citizen_id IS NOT NULL") == TINY.patients
    assert await count("SELECT count(*) FROM consents WHERE granted") == 2 * TINY.patients
    assert await count("SELECT count(*) FROM pharmacies") == TINY.pharmacies
    assert await count("SELECT count(*) FROM pharmacists") == TINY.pharmacies
    assert await count("SELECT count(*) FROM pharmacy_stock") == TINY.pharmacies * TINY.stock_per_pharmacy
    assert await count("SELECT count(*) FROM prescriptions WHERE status <> 'draft'") == TINY.prescriptions
    assert await count("SELECT count(*) FROM consultations WHERE status = 'completed'") == TINY.prescriptions
    assert await count("SELECT count(*) FROM consultations WHERE status = 'in_call'") == TINY.in_call
    lines = await count("SELECT count(*) FROM prescription_lines")
    assert TINY.prescriptions <= lines <= 5 * TINY.prescriptions
    # every dispensed prescription has its sale, and no prescription is dispensed beyond what was prescribed
    assert await count("""SELECT count(*) FROM prescriptions p WHERE status = 'dispensed'
                          AND NOT EXISTS (SELECT 1 FROM dispenses d WHERE d.prescription_id = p.id)""") == 0
    assert await count("SELECT count(*) FROM prescriptions WHERE status IN ('issued', 'partially_dispensed')") == \
        len(manifest.open_prescriptions) > 0
    assert await count("SELECT count(*) FROM prescriptions WHERE valid_until > now() AND status = 'expired'") == 0
    assert (len(manifest.doctors), len(manifest.patients), len(manifest.pharmacists), len(manifest.in_call)) == (
        TINY.doctors, TINY.patients, TINY.pharmacies, TINY.in_call)
    assert manifest.drug_ids and manifest.pharmacy_points


async def test_a_generated_open_prescription_verifies_and_is_dispensed(
        database: db.DatabaseTarget, settings: Settings, client: Client, tmp_path: Path) -> None:
    manifest = await _generated(database, settings, tmp_path)
    pharmacist = manifest.pharmacists[0]
    session = await _staff_session(client, pharmacist.username, pharmacist.password, pharmacist.totp_secret)
    rx = manifest.open_prescriptions[0]
    verified = await client.post("/dispensing/verify", headers=bearer(session), json={"code": rx.code})
    assert verified.status_code == 200, verified.text
    assert verified.json()["signature_valid"] is True
    assert verified.json()["dispensable"] is True, verified.json()["reasons"]
    sold = await client.post(f"/dispensing/prescriptions/{rx.code}/dispenses",
                             headers={**bearer(session), "Idempotency-Key": secrets.token_hex(12)},
                             json=sale(*((li.position, li.quantity) for li in rx.lines)))
    assert sold.status_code == 201, sold.text
    again = await client.post("/dispensing/verify", headers=bearer(session), json={"code": rx.code})
    assert again.json()["status"] == "dispensed"


async def test_a_generated_doctor_signs_in_with_the_manifest_password_and_totp(
        database: db.DatabaseTarget, settings: Settings, client: Client, tmp_path: Path) -> None:
    manifest = await _generated(database, settings, tmp_path)
    doctor = manifest.doctors[-1]
    session = await _staff_session(client, doctor.username, doctor.password, doctor.totp_secret)
    assert session["access_token"]


async def test_a_generated_patient_books_a_free_doctor_confirmed_at_once(
        database: db.DatabaseTarget, settings: Settings, client: Client, sms: SmsSandbox, tmp_path: Path) -> None:
    manifest = await _generated(database, settings, tmp_path)
    doctor = next(d for d in manifest.doctors if d.fee_vnd == 0)
    patient = manifest.patients[0]
    session = await sign_in_patient(client, sms, patient.phone)
    slots = (await client.get(f"/doctors/{doctor.account_id}/slots", params={"days": 7})).json()
    assert slots
    slot = next(s for s in slots if datetime.fromisoformat(s["starts_at"]) > datetime.now(UTC))
    booked = await client.post("/consultations", headers=bearer(session), json={
        "doctor_id": str(doctor.account_id), "starts_at": slot["starts_at"], "reason": "Tái khám tăng huyết áp",
        "telemedicine_icd10": "I10"})
    assert booked.status_code == 201, booked.text
    assert booked.json()["status"] == "booked"
    assert booked.json()["fee_vnd"] == 0
