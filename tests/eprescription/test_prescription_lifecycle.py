"""After signing: amendment supersedes (VN-1.15), cancellation follows the status model (spec §7.3, NHS-6)."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import asyncpg
import pytest

from api.demo import PHARMACY_ID
from api.settings import Settings
from tests.consultations.factories import make_consultation
from tests.eprescription.prescribing import draft, line, patient_headers, sign, staff_headers
from tests.helpers import Client

pytestmark = pytest.mark.usefixtures("demo")


async def _issued(client: Client, pool: asyncpg.Pool, settings: Settings) -> tuple[dict[str, Any], dict[str, str]]:
    consultation_id = await make_consultation(pool, status="in_call")
    doctor = await staff_headers(pool, settings, "bs.lan")
    created = await draft(client, doctor, consultation_id, [await line(pool, "Paracetamol", "500 mg", times=3)])
    signed = await sign(client, doctor, created["id"])
    assert signed.status_code == 200, signed.text
    return signed.json(), doctor


async def test_vn_1_15_an_amendment_supersedes_the_original(client: Client, pool: asyncpg.Pool,
                                                            settings: Settings) -> None:
    original, doctor = await _issued(client, pool, settings)
    started = await client.post(f"/prescriptions/{original['id']}/amend", headers=doctor)
    assert started.status_code == 201
    amendment = started.json()
    assert amendment["status"] == "draft" and amendment["replaces_id"] == original["id"]
    assert [li["drug_name"] for li in amendment["lines"]] == ["Paracetamol"]
    # a second correction of the same prescription would fork it
    assert (await client.post(f"/prescriptions/{original['id']}/amend", headers=doctor)).status_code == 409

    fixed = await client.patch(f"/prescriptions/{amendment['id']}", headers=doctor, json={
        "lines": [await line(pool, "Paracetamol", "500 mg", times=2, days=3)]})
    assert fixed.status_code == 200
    signed = await sign(client, doctor, amendment["id"], steps_ahead=1)  # VN-1.10 does not count the replaced one
    assert signed.status_code == 200, signed.text
    assert signed.json()["code"] != original["code"]

    old = (await client.get(f"/prescriptions/{original['id']}", headers=doctor)).json()
    assert old["status"] == "superseded" and old["replaced_by_id"] == amendment["id"]
    patient = await patient_headers(pool, settings, "+84912345678")
    listed = {p["code"]: p["status"] for p in (await client.get("/prescriptions", headers=patient)).json()}
    assert listed == {original["code"]: "superseded", signed.json()["code"]: "issued"}
    content = await pool.fetchval("SELECT payload FROM national_rx_outbox WHERE prescription_id = $1",
                                  UUID(amendment["id"]))
    assert content is not None  # the correction goes to the national system as a new prescription


async def test_a_prescription_a_pharmacy_has_started_cannot_be_amended(client: Client, pool: asyncpg.Pool,
                                                                       settings: Settings) -> None:
    original, doctor = await _issued(client, pool, settings)
    started = (await client.post(f"/prescriptions/{original['id']}/amend", headers=doctor)).json()
    # a pharmacy dispenses part of it before the doctor signs the correction
    await pool.execute("UPDATE prescription_lines SET dispensed_quantity = 4 WHERE prescription_id = $1",
                       UUID(original["id"]))
    await pool.execute("UPDATE prescriptions SET status = 'partially_dispensed' WHERE id = $1", UUID(original["id"]))
    refused = await sign(client, doctor, started["id"], steps_ahead=1)
    assert refused.status_code == 409 and refused.json()["type"] == "/problems/prescription-state-conflict"
    assert (await client.get(f"/prescriptions/{original['id']}", headers=doctor)).json()["status"] == \
        "partially_dispensed"


@pytest.mark.parametrize(("status", "held", "outcome"), [
    ("issued", False, "cancelled"),
    ("with_dispenser", True, "pending_cancellation"),
    ("partially_dispensed", True, "pending_cancellation"),
    ("partially_dispensed", False, "cancelled"),  # nobody holds it: the rest stops being dispensable at once
    ("dispensed", False, None),
    ("cancelled", False, None),
])
async def test_cancellation_follows_the_status_model(client: Client, pool: asyncpg.Pool, settings: Settings,
                                                     status: str, held: bool, outcome: str | None) -> None:
    rx, doctor = await _issued(client, pool, settings)
    await pool.execute(
        """UPDATE prescriptions SET status = $2,
                  holder_pharmacy_id = CASE WHEN $3 THEN $4::uuid END,
                  hold_expires_at = CASE WHEN $3 THEN now() + interval '10 minutes' END WHERE id = $1""",
        UUID(rx["id"]), status, held, PHARMACY_ID)
    response = await client.post(f"/prescriptions/{rx['id']}/cancel", headers=doctor,
                                 json={"reason": "clinical_contraindication", "note": "Dị ứng mới phát hiện"})
    if outcome is None:
        assert response.status_code == 409
        assert response.json()["type"] == "/problems/prescription-state-conflict"
        return
    assert response.status_code == 200, response.text
    assert response.json()["status"] == outcome and response.json()["cancel_reason"] == "clinical_contraindication"
    audit = await pool.fetchval("SELECT action FROM audit_log WHERE target_id = $1 AND action LIKE '%cancel%'",
                                rx["id"])
    assert audit == ("prescription.cancelled" if outcome == "cancelled" else "prescription.cancellation_requested")


async def test_only_its_doctor_cancels_and_a_bad_reason_names_the_field(client: Client, pool: asyncpg.Pool,
                                                                         settings: Settings) -> None:
    rx, doctor = await _issued(client, pool, settings)
    other = await staff_headers(pool, settings, "bs.minh")
    assert (await client.post(f"/prescriptions/{rx['id']}/cancel", headers=other,
                              json={"reason": "patient_request"})).status_code == 404
    patient = await patient_headers(pool, settings, "+84912345678")
    assert (await client.post(f"/prescriptions/{rx['id']}/cancel", headers=patient,
                              json={"reason": "patient_request"})).status_code == 403
    bad = await client.post(f"/prescriptions/{rx['id']}/cancel", headers=doctor, json={"reason": "changed my mind"})
    assert bad.status_code == 422 and bad.json()["errors"][0]["path"] == "body.reason"
    assert (await client.get(f"/prescriptions/{rx['id']}", headers=doctor)).json()["status"] == "issued"
