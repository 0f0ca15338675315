"""The vaccination record through the HTTP app: who may read and write a child's doses, and what they get back."""

from __future__ import annotations

import asyncio
from typing import Any
from uuid import UUID

import asyncpg
import pytest

from notifications.sms_sandbox import SmsSandbox
from tests.consultations.factories import make_consultation
from tests.helpers import Client, bearer, sign_in_patient, sign_in_staff

pytestmark = pytest.mark.usefixtures("demo")
GUARDIAN = "+84912345678"  # Nguyễn Thị Mai, guardian of Trần Gia Bảo (born 2024-05-10)
OTHER_PATIENT = "+84987654321"
DTP1 = {"vaccine": "DTP_HEPB_HIB", "dose_number": 1, "given_on": "2024-07-10", "place": "Trạm Y tế phường Bến Nghé",
        "lot": "QV-2406"}


async def child_id(pool: asyncpg.Pool) -> UUID:
    found: UUID = await pool.fetchval("SELECT id FROM patients WHERE full_name = 'Trần Gia Bảo'")
    return found


async def guardian_session(client: Client, sms: SmsSandbox) -> dict[str, Any]:
    return await sign_in_patient(client, sms, GUARDIAN)


def series(record: dict[str, Any], code: str) -> dict[str, Any]:
    found: dict[str, Any] = next(p for p in record["plan"] if p["series"] == code)
    return found


async def test_vaccine_catalogue_shows_basis_source_and_confidence(client: Client) -> None:
    doctor = await sign_in_staff(client, "bs.minh")
    response = await client.get("/vaccines", headers=bearer(doctor))
    assert response.status_code == 200, response.text
    body = response.json()
    rota = [d for d in body["doses"] if d["series"] == "ROTA"]
    assert rota and all(d["hard_cutoff"] and d["program_scope"] == "pilot_provinces" for d in rota)
    assert all(d["legal_basis"] and d["source"] and d["confidence"] for d in body["doses"])
    assert {"code": "MR", "live": True, "route": "injection"}.items() <= next(
        v for v in body["vaccines"] if v["code"] == "MR").items()
    assert (await client.get("/vaccines")).status_code == 401


async def test_guardian_records_a_dose_and_reads_the_plan(client: Client, sms: SmsSandbox,
                                                         pool: asyncpg.Pool) -> None:
    child = await child_id(pool)
    guardian = await guardian_session(client, sms)
    created = await client.post(f"/patients/{child}/vaccinations", headers=bearer(guardian), json=DTP1)
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["dose"] | {"id": None, "recorded_at": None, "recorded_by": None} == {
        "id": None, "vaccine": "DTP_HEPB_HIB", "vaccine_name": body["dose"]["vaccine_name"], "series": "DTP",
        "dose_number": 1, "given_on": "2024-07-10", "place": DTP1["place"], "lot": "QV-2406", "source": "guardian",
        "recorded_by": None, "recorded_at": None, "entered_in_error_at": None, "entered_in_error_reason": None}
    assert body["warnings"] == []
    # the child is 2+ years old now: the rest of the primary series is past the programme's age
    dtp = series(body["record"], "DTP")
    assert dtp["doses_given"] == 1 and dtp["status"] == "ask_clinician"
    assert dtp["next"]["dose_number"] == 2 and dtp["next"]["due_date"] == "2024-08-10"

    read = await client.get(f"/patients/{child}/vaccinations", headers=bearer(guardian))
    assert read.status_code == 200, read.text
    record = read.json()
    assert record["date_of_birth"] == "2024-05-10"
    assert [d["vaccine"] for d in record["doses"]] == ["DTP_HEPB_HIB"]
    assert {p["series"] for p in record["plan"]} >= {"DTP", "MEASLES", "JE"}
    actions = await pool.fetch(
        "SELECT action FROM audit_log WHERE subject_patient_id = $1 AND action LIKE 'vaccination.%' ORDER BY id",
        child)
    assert [a["action"] for a in actions] == ["vaccination.record", "vaccination.view"]


async def test_early_dose_is_recorded_with_a_warning(client: Client, sms: SmsSandbox, pool: asyncpg.Pool) -> None:
    child = await child_id(pool)
    guardian = await guardian_session(client, sms)
    early = DTP1 | {"given_on": "2024-06-20"}  # before "đủ 2 tháng" (10/07/2024)
    response = await client.post(f"/patients/{child}/vaccinations", headers=bearer(guardian), json=early)
    assert response.status_code == 201, response.text
    assert [w["code"] for w in response.json()["warnings"]] == ["before_earliest_valid"]


async def test_another_patient_gets_404(client: Client, sms: SmsSandbox, pool: asyncpg.Pool) -> None:
    child = await child_id(pool)
    other = await sign_in_patient(client, sms, OTHER_PATIENT)
    read = await client.get(f"/patients/{child}/vaccinations", headers=bearer(other))
    assert read.status_code == 404
    assert read.headers["content-type"].startswith("application/problem+json")
    write = await client.post(f"/patients/{child}/vaccinations", headers=bearer(other), json=DTP1)
    assert write.status_code == 404
    assert await pool.fetchval("SELECT count(*) FROM vaccination_doses") == 0


async def test_pharmacist_is_refused_by_role(client: Client, pool: asyncpg.Pool) -> None:
    child = await child_id(pool)
    pharmacist = await sign_in_staff(client, "ds.hoa")
    assert (await client.get(f"/patients/{child}/vaccinations", headers=bearer(pharmacist))).status_code == 403


async def test_doctor_needs_a_consultation_with_the_child(client: Client, pool: asyncpg.Pool) -> None:
    child = await child_id(pool)
    await make_consultation(pool, doctor_username="bs.lan", for_child=True)
    treating = await sign_in_staff(client, "bs.lan")
    stranger = await sign_in_staff(client, "bs.minh")
    assert (await client.get(f"/patients/{child}/vaccinations", headers=bearer(stranger))).status_code == 404
    assert (await client.post(f"/patients/{child}/vaccinations", headers=bearer(stranger),
                              json=DTP1)).status_code == 404

    created = await client.post(f"/patients/{child}/vaccinations", headers=bearer(treating), json=DTP1)
    assert created.status_code == 201, created.text
    assert created.json()["dose"]["source"] == "clinician"
    read = await client.get(f"/patients/{child}/vaccinations", headers=bearer(treating))
    assert read.status_code == 200
    assert await pool.fetchval(
        "SELECT count(*) FROM audit_log WHERE action = 'vaccination.view' AND actor_role = 'doctor'") == 1


async def test_duplicate_dose_number_is_409(client: Client, sms: SmsSandbox, pool: asyncpg.Pool) -> None:
    child = await child_id(pool)
    guardian = await guardian_session(client, sms)
    assert (await client.post(f"/patients/{child}/vaccinations", headers=bearer(guardian),
                              json=DTP1)).status_code == 201
    again = await client.post(f"/patients/{child}/vaccinations", headers=bearer(guardian),
                              json=DTP1 | {"given_on": "2024-07-11"})
    assert again.status_code == 409, again.text
    assert again.json()["type"] == "/problems/vaccination-dose-exists"


@pytest.mark.parametrize(("change", "path"), [
    ({"dose_number": -1}, "body.dose_number"),
    ({"vaccine": "dtp"}, "body.vaccine"),
    ({"given_on": "10/07/2024"}, "body.given_on"),
    ({"extra": 1}, "body.extra"),
    ({"vaccine": "NO_SUCH"}, "body.vaccine"),
    ({"dose_number": 7}, "body.dose_number"),
    ({"given_on": "2024-05-09"}, "body.given_on"),  # before birth
    ({"given_on": "2099-01-01"}, "body.given_on"),  # not given yet
])
async def test_bad_input_is_422_with_the_field(client: Client, sms: SmsSandbox, pool: asyncpg.Pool,
                                               change: dict[str, object], path: str) -> None:
    child = await child_id(pool)
    guardian = await guardian_session(client, sms)
    response = await client.post(f"/patients/{child}/vaccinations", headers=bearer(guardian), json=DTP1 | change)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["errors"][0]["path"] == path


async def test_entered_in_error_withdraws_the_dose_and_frees_its_number(client: Client, sms: SmsSandbox,
                                                                         pool: asyncpg.Pool) -> None:
    child = await child_id(pool)
    guardian = await guardian_session(client, sms)
    created = (await client.post(f"/patients/{child}/vaccinations", headers=bearer(guardian), json=DTP1)).json()
    dose_id = created["dose"]["id"]
    url = f"/patients/{child}/vaccinations/{dose_id}/entered-in-error"

    other = await sign_in_patient(client, sms, OTHER_PATIENT)
    assert (await client.post(url, headers=bearer(other), json={"reason": "không phải con tôi"})).status_code == 404
    assert (await client.post(url, headers=bearer(guardian), json={"reason": ""})).status_code == 422

    marked = await client.post(url, headers=bearer(guardian), json={"reason": "Nhập nhầm mũi"})
    assert marked.status_code == 200, marked.text
    record = marked.json()
    assert record["doses"][0]["entered_in_error_reason"] == "Nhập nhầm mũi"
    assert series(record, "DTP")["doses_given"] == 0
    again = await client.post(url, headers=bearer(guardian), json={"reason": "Nhập nhầm mũi"})
    assert again.status_code == 409
    # the row stays; the same dose number can be recorded again with the right date
    redo = await client.post(f"/patients/{child}/vaccinations", headers=bearer(guardian),
                             json=DTP1 | {"given_on": "2024-07-12"})
    assert redo.status_code == 201, redo.text
    assert await pool.fetchval("SELECT count(*) FROM vaccination_doses WHERE patient_id = $1", child) == 2
    with pytest.raises(asyncpg.PostgresError):
        await pool.execute("DELETE FROM vaccination_doses WHERE id = $1", UUID(dose_id))


async def test_only_the_recorder_or_a_treating_doctor_may_withdraw(client: Client, sms: SmsSandbox,
                                                                  pool: asyncpg.Pool) -> None:
    child = await child_id(pool)
    await make_consultation(pool, doctor_username="bs.lan", for_child=True)
    doctor = await sign_in_staff(client, "bs.lan")
    guardian = await guardian_session(client, sms)
    by_doctor = (await client.post(f"/patients/{child}/vaccinations", headers=bearer(doctor), json=DTP1)).json()
    by_guardian = (await client.post(f"/patients/{child}/vaccinations", headers=bearer(guardian),
                                     json=DTP1 | {"vaccine": "BCG", "given_on": "2024-05-11"})).json()

    refused = await client.post(f"/patients/{child}/vaccinations/{by_doctor['dose']['id']}/entered-in-error",
                                headers=bearer(guardian), json={"reason": "Sai ngày"})
    assert refused.status_code == 403
    allowed = await client.post(f"/patients/{child}/vaccinations/{by_guardian['dose']['id']}/entered-in-error",
                                headers=bearer(doctor), json={"reason": "Sổ tiêm ghi khác"})
    assert allowed.status_code == 200, allowed.text
    assert await pool.fetchval(
        "SELECT count(*) FROM audit_log WHERE action = 'vaccination.entered_in_error' AND actor_role = 'doctor'") == 1


async def test_concurrent_duplicates_one_wins(client: Client, sms: SmsSandbox, pool: asyncpg.Pool) -> None:
    child = await child_id(pool)
    guardian = await guardian_session(client, sms)
    responses = await asyncio.gather(*(
        client.post(f"/patients/{child}/vaccinations", headers=bearer(guardian), json=DTP1) for _ in range(2)))
    assert sorted(r.status_code for r in responses) == [201, 409]
    assert await pool.fetchval("SELECT count(*) FROM vaccination_doses WHERE patient_id = $1", child) == 1


async def test_the_routes_are_in_the_api_description(client: Client) -> None:
    schema = (await client.get("/schema/openapi.json")).json()
    assert {"/vaccines", "/patients/{patient_id}/vaccinations",
            "/patients/{patient_id}/vaccinations/{dose_id}/entered-in-error"} <= set(schema["paths"])
