"""Who may see what: patients only their own and their children's records, pharmacists only their pharmacy."""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg
import pytest

from api.demo import PHARMACY_ID
from notifications.sms_sandbox import SmsSandbox
from tests.helpers import Client, bearer, sign_in_patient, sign_in_staff

pytestmark = pytest.mark.usefixtures("demo")
GUARDIAN = "+84912345678"
OTHER = "+84987654321"


async def _child_of(client: Client, session: dict[str, Any]) -> str:
    children = (await client.get("/me/dependents", headers=bearer(session))).json()
    assert len(children) == 1
    child_id: str = children[0]["id"]
    return child_id


async def test_unauthenticated_calls_get_401(client: Client) -> None:
    for path in ("/me", "/me/dependents", f"/patients/{uuid.uuid4()}", f"/pharmacies/{PHARMACY_ID}/pharmacists"):
        response = await client.get(path)
        assert response.status_code == 401, path
        assert response.json()["type"] == "/problems/unauthenticated"


async def test_wrong_role_gets_403(client: Client, sms: SmsSandbox) -> None:
    patient = await sign_in_patient(client, sms, OTHER)
    doctor = await sign_in_staff(client, "bs.lan")
    assert (await client.post("/admin/accounts", headers=bearer(patient), json={
        "role": "admin", "username": "x.y.z", "password": "a-long-password-1", "full_name": "X"})).status_code == 403
    assert (await client.get("/me/dependents", headers=bearer(doctor))).status_code == 403
    forbidden = await client.get(f"/pharmacies/{PHARMACY_ID}/pharmacists", headers=bearer(doctor))
    assert forbidden.status_code == 403
    assert forbidden.json()["type"] == "/problems/forbidden"


async def test_guardian_reads_own_and_childs_record_and_the_view_is_audited(client: Client, sms: SmsSandbox,
                                                                           pool: asyncpg.Pool) -> None:
    guardian = await sign_in_patient(client, sms, GUARDIAN)
    child_id = await _child_of(client, guardian)
    own = await client.get(f"/patients/{guardian['patient_id']}", headers=bearer(guardian))
    assert own.status_code == 200
    child = await client.get(f"/patients/{child_id}", headers=bearer(guardian))
    assert child.status_code == 200
    assert child.json()["is_dependent"] is True
    assert child.json()["allergies"][0]["substance"] == "penicillin"
    audited = await pool.fetchval(
        "SELECT count(*) FROM audit_log WHERE action = 'patient.viewed' AND subject_patient_id = $1",
        uuid.UUID(child_id))
    assert audited == 1


async def test_patient_cannot_read_or_change_another_patient_or_their_child(client: Client,
                                                                            sms: SmsSandbox) -> None:
    guardian = await sign_in_patient(client, sms, GUARDIAN)
    child_id = await _child_of(client, guardian)
    other = await sign_in_patient(client, sms, OTHER)
    for target in (guardian["patient_id"], child_id):
        read = await client.get(f"/patients/{target}", headers=bearer(other))
        assert read.status_code == 404
        write = await client.patch(f"/patients/{target}", headers=bearer(other), json={"full_name": "Hacked"})
        assert write.status_code == 404
    consent = await client.post("/me/consents", headers=bearer(other), json={
        "kind": "telemedicine_terms", "version": "2026-01", "granted": False, "patient_id": child_id})
    assert consent.status_code == 404
    assert (await client.get(f"/patients/{child_id}", headers=bearer(guardian))).json()["full_name"] == "Trần Gia Bảo"


async def test_pharmacist_acts_only_for_own_pharmacy(client: Client, pool: asyncpg.Pool) -> None:
    other_pharmacy = await pool.fetchval(
        "INSERT INTO pharmacies (name, kind) VALUES ('Quầy thuốc Bình An', 'quay_thuoc') RETURNING id")
    pharmacist = await sign_in_staff(client, "ds.hoa")
    own = await client.get(f"/pharmacies/{PHARMACY_ID}/pharmacists", headers=bearer(pharmacist))
    assert own.status_code == 200
    assert [m["full_name"] for m in own.json()] == ["Phạm Thu Hoa"]
    other = await client.get(f"/pharmacies/{other_pharmacy}/pharmacists", headers=bearer(pharmacist))
    assert other.status_code == 403
    assert other.json()["type"] == "/problems/other-pharmacy"
    admin = await sign_in_staff(client, "admin")
    assert (await client.get(f"/pharmacies/{other_pharmacy}/pharmacists", headers=bearer(admin))).status_code == 200
