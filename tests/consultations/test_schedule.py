"""Doctors edit their profile, weekly hours and leave; patients' slot lists follow."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from consultations.slots import VN
from notifications.sms_sandbox import SmsSandbox
from tests.helpers import Client, bearer, sign_in_patient, sign_in_staff

pytestmark = pytest.mark.usefixtures("demo")


async def test_weekly_hours_replace_the_old_ones_and_shape_the_slots(client: Client) -> None:
    doctor = await sign_in_staff(client, "bs.minh")
    me = (await client.get("/me", headers=bearer(doctor))).json()
    tomorrow = (datetime.now(VN) + timedelta(days=1)).date()
    rules = [{"weekday": tomorrow.isoweekday(), "start_time": "14:00:00", "end_time": "15:00:00"}]
    replaced = await client.put("/doctors/me/schedule/weekly", headers=bearer(doctor), json={"rules": rules})
    assert replaced.status_code == 200
    assert replaced.json()["rules"] == [{**rules[0], "valid_from": "2000-01-01", "valid_until": None}]
    slots = (await client.get(f"/doctors/{me['account_id']}/slots",
                              params={"from": tomorrow.isoformat(), "days": 1})).json()
    assert [s["starts_at"][11:16] for s in slots] == ["14:00", "14:15", "14:30", "14:45"]


async def test_leave_removes_slots_and_deleting_it_restores_them(client: Client) -> None:
    doctor = await sign_in_staff(client, "bs.minh")
    doctor_id = (await client.get("/me", headers=bearer(doctor))).json()["account_id"]
    tomorrow = (datetime.now(VN) + timedelta(days=1)).date()
    params = {"from": tomorrow.isoformat(), "days": 1}
    before = (await client.get(f"/doctors/{doctor_id}/slots", params=params)).json()
    leave = await client.post("/doctors/me/schedule/exceptions", headers=bearer(doctor), json={
        "kind": "leave", "starts_at": f"{tomorrow}T00:00:00+07:00", "ends_at": f"{tomorrow}T12:00:00+07:00",
        "reason": "Hội thảo"})
    assert leave.status_code == 201
    during = (await client.get(f"/doctors/{doctor_id}/slots", params=params)).json()
    assert during and all(s["starts_at"][11:13] >= "12" for s in during)
    assert len(during) < len(before)
    await client.delete(f"/doctors/me/schedule/exceptions/{leave.json()['id']}", headers=bearer(doctor))
    assert (await client.get(f"/doctors/{doctor_id}/slots", params=params)).json() == before


@pytest.mark.parametrize(("body", "path"), [
    ({"rules": [{"weekday": 8, "start_time": "08:00:00", "end_time": "09:00:00"}]}, "body.rules[0].weekday"),
    ({"rules": [{"weekday": 1, "start_time": "10:00:00", "end_time": "09:00:00"}]}, "body.rules[0].end_time"),
    ({"rules": [{"weekday": 1, "start_time": "25:00:00", "end_time": "26:00:00"}]}, "body.rules[0].start_time"),
])
async def test_bad_weekly_hours_are_refused(client: Client, body: dict[str, object], path: str) -> None:
    doctor = await sign_in_staff(client, "bs.minh")
    response = await client.put("/doctors/me/schedule/weekly", headers=bearer(doctor), json=body)
    assert response.status_code == 422
    assert response.json()["errors"][0]["path"] == path


async def test_profile_changes_show_in_search(client: Client) -> None:
    doctor = await sign_in_staff(client, "bs.minh")
    updated = await client.patch("/doctors/me/profile", headers=bearer(doctor),
                                 json={"specialty_code": "tim_mach", "fee_vnd": 250_000})
    assert updated.json()["specialty_name"] == "Tim mạch"
    found = (await client.get("/doctors", params={"q": "tim mach"})).json()
    assert [d["full_name"] for d in found["items"]] == ["Trần Quang Minh"]
    assert found["items"][0]["fee_vnd"] == 250_000
    bad = await client.patch("/doctors/me/profile", headers=bearer(doctor), json={"specialty_code": "phep_thuat"})
    assert bad.status_code == 422


async def test_patients_cannot_edit_schedules(client: Client, sms: SmsSandbox) -> None:
    patient = await sign_in_patient(client, sms, "+84912345678")
    response = await client.put("/doctors/me/schedule/weekly", headers=bearer(patient), json={"rules": []})
    assert response.status_code == 403
