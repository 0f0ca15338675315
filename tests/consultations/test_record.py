"""The treating doctor writes SOAP notes with ICD-10 diagnoses; the patient reads a summary."""

from __future__ import annotations

from datetime import timedelta

import asyncpg
import pytest

from notifications.sms_sandbox import SmsSandbox
from tests.consultations.factories import make_consultation
from tests.helpers import Client, bearer, sign_in_patient, sign_in_staff

pytestmark = pytest.mark.usefixtures("demo")
RECORD = {
    "subjective": "Sốt 38,5°C hai ngày, ho khan, sổ mũi.", "objective": "Họng đỏ nhẹ, không khó thở.",
    "assessment": "Viêm mũi họng cấp.", "plan": "Hạ sốt, uống nhiều nước.",
    "advice": "Cho bé uống nhiều nước; tái khám nếu sốt quá 3 ngày.", "follow_up_days": 3,
    "diagnoses": [{"code": "J00", "is_principal": True}, {"code": "R05"}],
}


async def test_doctor_writes_and_patient_reads_the_summary_only(client: Client, sms: SmsSandbox,
                                                                pool: asyncpg.Pool) -> None:
    consultation_id = await make_consultation(pool, status="in_call", for_child=True)
    await pool.execute("""INSERT INTO call_quality_samples (consultation_id, role, rtt_ms, loss_pct, jitter_ms, in_kbps)
                          VALUES ($1, 'patient', 80, 1.5, 12, 600), ($1, 'doctor', 120, 0.5, 8, 700)""",
                       consultation_id)
    doctor = await sign_in_staff(client, "bs.lan")
    written = await client.put(f"/consultations/{consultation_id}/record", headers=bearer(doctor), json=RECORD)
    assert written.status_code == 200, written.text
    record = written.json()
    assert record["diagnoses"] == [
        {"code": "J00", "name": "Viêm mũi họng cấp (cảm lạnh thông thường)", "is_principal": True},
        {"code": "R05", "name": "Ho", "is_principal": False}]
    assert record["call_quality"] == {"samples": 2, "avg_rtt_ms": 100.0, "max_loss_pct": 1.5, "avg_jitter_ms": 10.0,
                                      "avg_in_kbps": 650.0}
    assert record["call_duration_s"] >= 0

    guardian = await sign_in_patient(client, sms, "+84912345678")
    assert (await client.get(f"/consultations/{consultation_id}/record", headers=bearer(guardian))).status_code == 403
    summary = (await client.get(f"/consultations/{consultation_id}/summary", headers=bearer(guardian))).json()
    assert summary["advice"] == RECORD["advice"]
    assert [d["code"] for d in summary["diagnoses"]] == ["J00", "R05"]
    assert "subjective" not in summary


@pytest.mark.parametrize(("change", "path"), [
    ({"diagnoses": [{"code": "J00"}, {"code": "R05"}]}, "body.diagnoses"),
    ({"diagnoses": [{"code": "J00", "is_principal": True}, {"code": "J00"}]}, "body.diagnoses"),
    ({"diagnoses": [{"code": "X99.9", "is_principal": True}]}, "body.diagnoses[0].code"),
    ({"diagnoses": [{"code": "j00", "is_principal": True}]}, "body.diagnoses[0].code"),
    ({"diagnoses": [{"code": "U07.1", "is_principal": True}]}, "body.diagnoses[0].code"),
    ({"follow_up_days": 0}, "body.follow_up_days"),
])
async def test_bad_diagnoses_are_refused_with_the_field(client: Client, pool: asyncpg.Pool, change: dict[str, object],
                                                        path: str) -> None:
    consultation_id = await make_consultation(pool, status="in_call")
    doctor = await sign_in_staff(client, "bs.lan")
    response = await client.put(f"/consultations/{consultation_id}/record", headers=bearer(doctor),
                                json={**RECORD, **change})
    assert response.status_code == 422
    assert response.json()["errors"][0]["path"] == path


async def test_only_the_treating_doctor_writes_and_only_during_or_after_the_call(client: Client,
                                                                                pool: asyncpg.Pool) -> None:
    booked = await make_consultation(pool, status="booked")
    in_call = await make_consultation(pool, status="in_call", patient_phone="+84987654321",
                                      starts_in=timedelta(hours=-1))
    lan = await sign_in_staff(client, "bs.lan")
    minh = await sign_in_staff(client, "bs.minh")
    assert (await client.put(f"/consultations/{in_call}/record", headers=bearer(minh), json=RECORD)).status_code == 404
    too_early = await client.put(f"/consultations/{booked}/record", headers=bearer(lan), json=RECORD)
    assert too_early.status_code == 409


@pytest.mark.parametrize(("query", "first"), [("tang huyet ap", "I10"), ("tăng huyết áp", "I10"), ("I10", "I10"),
                                              ("viem mui hong", "J00"), ("tay chan mieng", "B08.4")])
async def test_icd10_search_by_words_or_code(client: Client, sms: SmsSandbox, query: str, first: str) -> None:
    session = await sign_in_staff(client, "bs.lan")
    found = (await client.get("/icd10", params={"q": query}, headers=bearer(session))).json()
    assert found[0]["code"] == first


async def test_icd10_telemedicine_filter(client: Client) -> None:
    session = await sign_in_staff(client, "bs.lan")
    found = (await client.get("/icd10", params={"q": "viem", "telemedicine_only": "true"},
                              headers=bearer(session))).json()
    assert found
    assert all(item["telemedicine_tt30"] for item in found)
