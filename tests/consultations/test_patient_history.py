"""The treating doctor reads the patient's allergies, earlier consultations and prescriptions in one call; nobody
else does, and every read is in the audit log."""

from __future__ import annotations

from datetime import timedelta

import asyncpg
import pytest

from api.settings import Settings
from tests.consultations.factories import make_consultation
from tests.eprescription.prescribing import draft, line, patient_headers, sign, staff_headers
from tests.helpers import Client

pytestmark = pytest.mark.usefixtures("demo")
HUNG = "+84987654321"


async def test_treating_doctor_sees_allergies_past_visits_and_signed_prescriptions(
        client: Client, pool: asyncpg.Pool, settings: Settings) -> None:
    await pool.execute("""UPDATE patients SET allergies = '[{"substance": "penicillin", "severity": "severe"}]'
                          WHERE account_id = (SELECT id FROM accounts WHERE phone = $1)""", HUNG)
    earlier = await make_consultation(pool, doctor_username="bs.lan", patient_phone=HUNG, status="in_call",
                                      starts_in=timedelta(days=-3))
    lan = await staff_headers(pool, settings, "bs.lan")
    written = await client.put(f"/consultations/{earlier}/record", headers=lan, json={
        "advice": "Uống nhiều nước.", "diagnoses": [{"code": "J00", "is_principal": True}]})
    assert written.status_code == 200, written.text
    signed = await sign(client, lan, (await draft(client, lan, earlier,
                                                  [await line(pool, "Paracetamol", "500 mg", times=3, days=3)]))["id"])
    assert signed.status_code == 200, signed.text
    unsigned = await draft(client, lan, earlier, [await line(pool, "Omeprazol")])
    await client.post(f"/consultations/{earlier}/complete", headers=lan)

    today = await make_consultation(pool, doctor_username="bs.minh", patient_phone=HUNG, status="waiting")
    minh = await staff_headers(pool, settings, "bs.minh")
    response = await client.get(f"/consultations/{today}/patient-history", headers=minh)
    assert response.status_code == 200, response.text
    history = response.json()
    assert history["patient"]["full_name"] == "Lê Văn Hùng"
    assert history["patient"]["allergies"] == [{"substance": "penicillin", "reaction": None, "severity": "severe"}]
    assert [(c["id"], c["status"], c["doctor_name"], c["advice"], [d["code"] for d in c["diagnoses"]])
            for c in history["consultations"]] == [
        (str(earlier), "completed", "Nguyễn Thị Lan", "Uống nhiều nước.", ["J00"])]
    assert history["consultations"][0]["starts_at"].endswith("+07:00")
    [rx] = history["prescriptions"]  # the other doctor's draft is not shown
    assert rx["id"] == signed.json()["id"] != unsigned["id"]
    assert (rx["code"], rx["status"], rx["diagnoses"]) == (signed.json()["code"], "issued", ["J00"])
    assert [(x["drug_name"], x["quantity"], x["quantity_unit"]) for x in rx["lines"]] == [
        (signed.json()["lines"][0]["drug_name"], 9, "viên")]

    audit = await pool.fetch(
        """SELECT a.actor_role, a.subject_patient_id, p.full_name FROM audit_log a
           JOIN patients p ON p.id = a.subject_patient_id
           WHERE a.action = 'consultation.patient_history_viewed' AND a.target_id = $1""", str(today))
    assert [(r["actor_role"], r["full_name"]) for r in audit] == [("doctor", "Lê Văn Hùng")]


async def test_another_doctor_and_the_patient_are_refused_and_nothing_is_audited(
        client: Client, pool: asyncpg.Pool, settings: Settings) -> None:
    consultation_id = await make_consultation(pool, doctor_username="bs.lan", patient_phone=HUNG, status="waiting")
    other_doctor = await client.get(f"/consultations/{consultation_id}/patient-history",
                                    headers=await staff_headers(pool, settings, "bs.minh"))
    assert other_doctor.status_code == 404, other_doctor.text
    assert other_doctor.json()["type"] == "/problems/consultation-not-found"
    patient = await client.get(f"/consultations/{consultation_id}/patient-history",
                               headers=await patient_headers(pool, settings, HUNG))
    assert patient.status_code == 403
    pharmacist = await client.get(f"/consultations/{consultation_id}/patient-history",
                                  headers=await staff_headers(pool, settings, "ds.hoa"))
    assert pharmacist.status_code == 403
    assert await pool.fetchval(
        "SELECT count(*) FROM audit_log WHERE action = 'consultation.patient_history_viewed'") == 0
