"""The pharmacy registry: onboarding by administrators, the public view, opening hours, and who may act for which
pharmacy."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import asyncpg
import pytest

from api.demo import PHARMACY_ID
from pharmacy_link.schemas import OpeningHours
from pharmacy_link.service import VN, minute_of_week
from tests.helpers import Client
from tests.pharmacy_link.conftest import MakePharmacy, PharmacistOf

BODY: dict[str, Any] = {
    "name": "Nhà thuốc An Khang", "kind": "nha_thuoc", "gpp_certificate_number": "GPP-79-1234",
    "national_outlet_id": "79-NT-001234", "phone": "+84 28 3855 1234",
    "address": "12 Trần Hưng Đạo, Phường Cầu Ông Lãnh, Quận 1", "province": "TP. Hồ Chí Minh",
    "latitude": 10.7681, "longitude": 106.6953,
    "opening_hours": [{"weekday": d, "opens": "07:00", "closes": "22:00"} for d in range(1, 8)],
}


async def register(client: Client, admin: dict[str, str], **changes: Any) -> dict[str, Any]:
    response = await client.post("/admin/pharmacies", headers=admin, json={**BODY, **changes})
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


async def test_admin_registers_a_pharmacy_that_anyone_can_read_without_signing_in(
        client: Client, admin: dict[str, str], pool: asyncpg.Pool) -> None:
    created = await register(client, admin)
    public = await client.get(f"/pharmacies/{created['id']}")
    assert public.status_code == 200
    body = public.json()
    assert body == created
    assert body["phone"] == "02838551234"  # API-7: digits only, domestic form
    assert body["national_outlet_id"] == "79-NT-001234"
    assert body["active"] is True
    assert isinstance(body["open_now"], bool)
    assert "stock" not in public.text
    audited = await pool.fetchval(
        "SELECT count(*) FROM audit_log WHERE action = 'pharmacy.created' AND target_id = $1", created["id"])
    assert audited == 1


async def test_demo_pharmacy_has_its_registry_facts(client: Client, demo: None) -> None:
    body = (await client.get(f"/pharmacies/{PHARMACY_ID}")).json()
    assert body["name"] == "Nhà thuốc Liên Thông (demo)"
    assert body["gpp_certificate_number"].startswith("DEMO-")
    assert 10.7 < body["latitude"] < 10.8
    assert len(body["opening_hours"]) == 7


async def test_a_second_pharmacy_with_the_same_gpp_number_or_outlet_id_is_409(client: Client,
                                                                             admin: dict[str, str]) -> None:
    await register(client, admin)
    for changes in ({"national_outlet_id": "other"}, {"gpp_certificate_number": "other"}):
        again = await client.post("/admin/pharmacies", headers=admin, json={**BODY, **changes})
        assert again.status_code == 409
        assert again.json()["type"] == "/problems/pharmacy-identifier-taken"


@pytest.mark.parametrize(("changes", "path"), [
    ({"latitude": 91}, "body.latitude"),
    ({"longitude": -181}, "body.longitude"),
    ({"phone": "call us"}, "body.phone"),
    ({"phone": "0283 855 1234 5678"}, "body.phone"),
    ({"kind": "benh_vien"}, "body.kind"),
    ({"national_outlet_id": "x" * 201}, "body.national_outlet_id"),
    ({"opening_hours": [{"weekday": 8, "opens": "07:00", "closes": "22:00"}]}, "body.opening_hours[0].weekday"),
    ({"opening_hours": [{"weekday": 1, "opens": "07:00", "closes": "25:00"}]}, "body.opening_hours[0].closes"),
    ({"opening_hours": [{"weekday": 1, "opens": "24:00", "closes": "02:00"}]}, "body.opening_hours[0].opens"),
    ({"stock": []}, "body.stock"),
])
async def test_bad_registry_fields_are_422_naming_the_field(client: Client, admin: dict[str, str],
                                                           changes: dict[str, Any], path: str) -> None:
    response = await client.post("/admin/pharmacies", headers=admin, json={**BODY, **changes})
    assert response.status_code == 422, response.text
    assert [e["path"] for e in response.json()["errors"]] == [path]


async def test_admin_updates_and_deactivates_a_pharmacy_and_each_change_is_audited(
        client: Client, admin: dict[str, str], pool: asyncpg.Pool) -> None:
    created = await register(client, admin)
    path = f"/admin/pharmacies/{created['id']}"
    moved = await client.patch(path, headers=admin, json={"latitude": 10.78, "longitude": 106.70,
                                                          "phone": "0912 345 678", "national_outlet_id": None})
    assert moved.status_code == 200, moved.text
    assert (moved.json()["latitude"], moved.json()["phone"], moved.json()["national_outlet_id"]) == (
        10.78, "0912345678", None)
    deactivated = await client.patch(path, headers=admin, json={"active": False})
    assert deactivated.json()["active"] is False
    assert (await client.get(f"/pharmacies/{created['id']}")).json()["active"] is False
    actions = await pool.fetch("SELECT action FROM audit_log WHERE target_id = $1 ORDER BY id", created["id"])
    assert [a["action"] for a in actions] == ["pharmacy.created", "pharmacy.updated", "pharmacy.deactivated"]


async def test_latitude_without_longitude_is_422(client: Client, admin: dict[str, str]) -> None:
    created = await register(client, admin)
    response = await client.patch(f"/admin/pharmacies/{created['id']}", headers=admin, json={"latitude": 10.0})
    assert response.status_code == 422
    assert response.json()["errors"][0]["path"] == "body.longitude"


async def test_unknown_pharmacy_is_404(client: Client, admin: dict[str, str]) -> None:
    unknown = uuid.uuid4()
    assert (await client.get(f"/pharmacies/{unknown}")).status_code == 404
    assert (await client.patch(f"/admin/pharmacies/{unknown}", headers=admin, json={"active": False})).status_code \
        == 404
    added = await client.post(f"/admin/pharmacies/{unknown}/pharmacists", headers=admin, json={
        "username": "ds.nobody", "password": "a-long-password-1", "full_name": "Không Ai"})
    assert added.status_code == 404
    assert added.json()["type"] == "/problems/pharmacy-not-found"


async def test_only_admin_registers_or_changes_pharmacies(client: Client, hoa: dict[str, str], mai: dict[str, str],
                                                         doctor: dict[str, str]) -> None:
    for headers in (hoa, mai, doctor):
        assert (await client.post("/admin/pharmacies", headers=headers, json=BODY)).status_code == 403
        assert (await client.patch(f"/admin/pharmacies/{PHARMACY_ID}", headers=headers,
                                   json={"active": False})).status_code == 403
    assert (await client.post("/admin/pharmacies", json=BODY)).status_code == 401


async def test_admin_adds_a_pharmacist_who_then_acts_for_that_pharmacy(
        client: Client, admin: dict[str, str], pool: asyncpg.Pool) -> None:
    created = await register(client, admin)
    added = await client.post(f"/admin/pharmacies/{created['id']}/pharmacists", headers=admin, json={
        "username": "ds.an", "password": "a-long-password-1", "full_name": "Võ Thị An",
        "has_pharmacist_degree": True})
    assert added.status_code == 201, added.text
    assert added.json()["role"] == "pharmacist"
    row = await pool.fetchrow(
        "SELECT pharmacy_id, has_pharmacist_degree FROM pharmacists WHERE account_id = $1",
        uuid.UUID(added.json()["account_id"]))
    assert (str(row["pharmacy_id"]), row["has_pharmacist_degree"]) == (created["id"], True)
    staff = await client.get(f"/pharmacies/{created['id']}/pharmacists", headers=admin)
    assert [m["full_name"] for m in staff.json()] == ["Võ Thị An"]
    again = await client.post(f"/admin/pharmacies/{created['id']}/pharmacists", headers=admin, json={
        "username": "ds.an", "password": "a-long-password-1", "full_name": "Võ Thị An"})
    assert again.status_code == 409


async def test_pharmacist_of_another_pharmacy_gets_403_other_pharmacy_everywhere(
        client: Client, make_pharmacy: MakePharmacy, pharmacist_of: PharmacistOf, demo: None) -> None:
    elsewhere = await pharmacist_of(await make_pharmacy())
    key_id = uuid.uuid4()
    calls = [
        ("GET", f"/pharmacies/{PHARMACY_ID}/pharmacists", None),
        ("GET", f"/pharmacies/{PHARMACY_ID}/stock", None),
        ("PUT", f"/pharmacies/{PHARMACY_ID}/stock", {"items": []}),
        ("GET", f"/pharmacies/{PHARMACY_ID}/api-keys", None),
        ("POST", f"/pharmacies/{PHARMACY_ID}/api-keys", {"label": "POS"}),
        ("POST", f"/pharmacies/{PHARMACY_ID}/api-keys/{key_id}/rotate", {}),
        ("POST", f"/pharmacies/{PHARMACY_ID}/api-keys/{key_id}/revoke", None),
    ]
    for method, path, body in calls:
        response = await client.request(method, path, headers=elsewhere, json=body)
        assert response.status_code == 403, (method, path, response.text)
        assert response.json()["type"] == "/problems/other-pharmacy", (method, path)


async def test_patient_gets_403_on_pharmacy_staff_routes(client: Client, mai: dict[str, str]) -> None:
    for method, path, body in [
        ("GET", f"/pharmacies/{PHARMACY_ID}/pharmacists", None),
        ("GET", f"/pharmacies/{PHARMACY_ID}/stock", None),
        ("PUT", f"/pharmacies/{PHARMACY_ID}/stock", {"items": []}),
        ("GET", f"/pharmacies/{PHARMACY_ID}/api-keys", None),
        ("POST", f"/pharmacies/{PHARMACY_ID}/api-keys", {"label": "POS"}),
    ]:
        response = await client.request(method, path, headers=mai, json=body)
        assert response.status_code == 403, (method, path)
        assert response.json()["type"] == "/problems/forbidden"


# ---------------------------------------------------------------------------------------------------- hours

MONDAY = datetime(2026, 3, 2, tzinfo=VN)  # a Monday


@pytest.mark.parametrize(("hours", "weekday", "clock", "open_now"), [
    ([(1, "07:00", "22:00")], 1, "07:00", True),
    ([(1, "07:00", "22:00")], 1, "22:00", False),
    ([(1, "07:00", "22:00")], 2, "08:00", False),
    ([(1, "07:00", "11:30"), (1, "13:30", "21:00")], 1, "12:00", False),  # lunch break
    ([(1, "07:00", "11:30"), (1, "13:30", "21:00")], 1, "13:30", True),
    ([(5, "18:00", "02:00")], 5, "23:59", True),  # past midnight: Friday evening into Saturday
    ([(5, "18:00", "02:00")], 6, "01:30", True),
    ([(5, "18:00", "02:00")], 6, "02:00", False),
    ([(7, "20:00", "03:00")], 1, "02:59", True),  # Sunday night runs into Monday morning
    ([(7, "20:00", "03:00")], 1, "03:00", False),
    ([(3, "00:00", "24:00")], 3, "23:59", True),
    ([(3, "00:00", "24:00")], 4, "00:00", False),
    ([(3, "08:00", "08:00")], 4, "07:59", True),  # opens = closes: 24 hours from opening
    ([], 1, "12:00", False),
])
async def test_open_now_follows_vietnam_local_time_across_midnight_and_the_week_end(
        make_pharmacy: MakePharmacy, pool: asyncpg.Pool, hours: list[tuple[int, str, str]], weekday: int, clock: str,
        open_now: bool) -> None:
    pharmacy_id = await make_pharmacy(hours=[OpeningHours(weekday=d, opens=o, closes=c) for d, o, c in hours])
    hour, minute = map(int, clock.split(":"))
    at = MONDAY.replace(day=MONDAY.day + weekday - 1, hour=hour, minute=minute)
    assert minute_of_week(at.astimezone(UTC)) == minute_of_week(at)  # the server's clock zone does not matter
    found = await pool.fetchval("SELECT open_week_minutes @> $2::integer FROM pharmacies WHERE id = $1",
                                pharmacy_id, minute_of_week(at))
    assert found is open_now
