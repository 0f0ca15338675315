"""At the counter: verify by code or QR, hold, dispense in parts across pharmacies, void; what is refused and why."""

from __future__ import annotations

from datetime import date, timedelta
from uuid import UUID

import asyncpg
import pytest

from api import db
from api.demo import PHARMACY_ID
from api.settings import Settings
from tests.eprescription.factories import behind_the_apps_back, drug_id
from tests.eprescription.prescribing import patient_headers, staff_headers
from tests.helpers import Client
from tests.pharmacy_link.dispensing_helpers import key, other_pharmacist, sale, signed_prescription

pytestmark = pytest.mark.usefixtures("demo")


async def test_verify_hold_partial_dispense_and_a_second_pharmacy_finishes(
        client: Client, pool: asyncpg.Pool, settings: Settings) -> None:
    rx = await signed_prescription(client, pool, settings)
    hoa = await staff_headers(pool, settings, "ds.hoa")
    _, other = await other_pharmacist(pool, settings)

    seen = (await client.post("/dispensing/verify", headers=hoa, json={"code": rx["code"].upper()})).json()
    assert seen["dispensable"] and seen["signature_valid"] and seen["reasons"] == []
    assert seen["patient"] == {"full_name": "Nguyễn Thị Mai", "birth_year": 1992, "date_of_birth": None, "sex": None,
                               "address": None, "weight_kg": None}
    assert [(li["position"], li["remaining_quantity"]) for li in seen["lines"]] == [(1, 10), (2, 5)]

    held = await client.post(f"/dispensing/prescriptions/{rx['code']}/hold", headers=hoa)
    assert held.status_code == 200 and held.json()["status"] == "with_dispenser"
    blocked = (await client.post("/dispensing/verify", headers=other, json={"code": rx["code"]})).json()
    assert blocked["held_by_another_pharmacy"] and not blocked["dispensable"]
    refused = await client.post(f"/dispensing/prescriptions/{rx['code']}/dispenses", headers={**other, **key()},
                                json=sale((1, 10)))
    assert refused.status_code == 409 and refused.json()["type"] == "/problems/prescription-held"

    first = await client.post(f"/dispensing/prescriptions/{rx['code']}/dispenses", headers={**hoa, **key()},
                              json=sale((1, 4), (2, 5)))
    assert first.status_code == 201, first.text
    assert first.json()["prescription_status"] == "partially_dispensed"
    assert first.json()["remaining"] == {"1": 6, "2": 0} and first.json()["total_vnd"] == 18_000
    assert (await client.post(f"/dispensing/prescriptions/{rx['code']}/release", headers=hoa)).status_code == 200

    rest = await client.post(f"/dispensing/prescriptions/{rx['code']}/dispenses", headers={**other, **key()},
                             json=sale((1, 6)))
    assert rest.status_code == 201, rest.text
    assert rest.json()["prescription_status"] == "dispensed" and rest.json()["remaining"] == {"1": 0, "2": 0}

    patient = await patient_headers(pool, settings, "+84912345678")
    mine = (await client.get(f"/prescriptions/{rx['id']}", headers=patient)).json()
    assert mine["status"] == "dispensed" and [li["remaining_quantity"] for li in mine["lines"]] == [0, 0]
    reports = await pool.fetch("SELECT status FROM national_sale_outbox WHERE prescription_id = $1", UUID(rx["id"]))
    assert [r["status"] for r in reports] == ["pending", "pending"]  # PH-3: each sale queued for API-7
    events = await pool.fetch("SELECT kind FROM prescription_events WHERE prescription_id = $1 ORDER BY id",
                              UUID(rx["id"]))
    assert [e["kind"] for e in events] == ["held", "partially_dispensed", "released", "dispensed"]
    again = await client.post(f"/dispensing/prescriptions/{rx['code']}/dispenses", headers={**hoa, **key()},
                              json=sale((1, 1)))
    assert again.status_code == 409 and again.json()["type"] == "/problems/prescription-not-dispensable"


async def test_more_than_remains_is_refused_naming_what_remains(client: Client, pool: asyncpg.Pool,
                                                                settings: Settings) -> None:
    rx = await signed_prescription(client, pool, settings)
    hoa = await staff_headers(pool, settings, "ds.hoa")
    await client.post(f"/dispensing/prescriptions/{rx['code']}/dispenses", headers={**hoa, **key()},
                      json=sale((1, 7)))
    over = await client.post(f"/dispensing/prescriptions/{rx['code']}/dispenses", headers={**hoa, **key()},
                             json=sale((2, 1), (1, 4)))
    assert over.status_code == 409
    problem = over.json()
    assert problem["type"] == "/problems/quantity-exceeds-remaining" and problem["remaining"] == {"1": 3}
    assert problem["errors"] == [{"path": "body.lines[1].quantity", "message": "only 3 left on line 1"}]
    # nothing of the refused request was sold, line 2 included
    rows = await pool.fetch("SELECT dispensed_quantity FROM prescription_lines WHERE prescription_id = $1 "
                            "ORDER BY position", UUID(rx["id"]))
    assert [r["dispensed_quantity"] for r in rows] == [7, 0]


async def test_a_retried_request_returns_the_first_result(client: Client, pool: asyncpg.Pool,
                                                          settings: Settings) -> None:
    rx = await signed_prescription(client, pool, settings)
    hoa = {**await staff_headers(pool, settings, "ds.hoa"), **key()}
    body = sale((1, 2))
    first = await client.post(f"/dispensing/prescriptions/{rx['code']}/dispenses", headers=hoa, json=body)
    retry = await client.post(f"/dispensing/prescriptions/{rx['code']}/dispenses", headers=hoa, json=body)
    assert (first.status_code, retry.status_code) == (201, 200)
    assert retry.json() == first.json()
    assert await pool.fetchval("SELECT dispensed_quantity FROM prescription_lines WHERE prescription_id = $1 "
                               "AND position = 1", UUID(rx["id"])) == 2
    changed = await client.post(f"/dispensing/prescriptions/{rx['code']}/dispenses", headers=hoa, json=sale((1, 3)))
    assert changed.status_code == 422 and changed.json()["type"] == "/problems/idempotency-key-reused"
    missing = await client.post(f"/dispensing/prescriptions/{rx['code']}/dispenses",
                                headers=await staff_headers(pool, settings, "ds.hoa"), json=body)
    assert missing.status_code == 400 and "Idempotency-Key" in missing.json()["detail"]


@pytest.mark.parametrize("state", ["expired", "cancelled", "superseded"])
async def test_expired_cancelled_and_superseded_prescriptions_are_refused(
        client: Client, pool: asyncpg.Pool, settings: Settings, database: db.DatabaseTarget, state: str) -> None:
    rx = await signed_prescription(client, pool, settings)
    doctor = await staff_headers(pool, settings, "bs.lan")
    if state == "expired":
        await behind_the_apps_back(database, "prescriptions",
                                   "UPDATE prescriptions SET valid_until = now() - interval '1 minute' WHERE id = $1",
                                   UUID(rx["id"]))
    elif state == "cancelled":
        await client.post(f"/prescriptions/{rx['id']}/cancel", headers=doctor, json={"reason": "prescribing_error"})
    else:
        amendment = (await client.post(f"/prescriptions/{rx['id']}/amend", headers=doctor)).json()
        from tests.eprescription.prescribing import sign
        assert (await sign(client, doctor, amendment["id"], steps_ahead=1)).status_code == 200
    hoa = await staff_headers(pool, settings, "ds.hoa")
    seen = (await client.post("/dispensing/verify", headers=hoa, json={"code": rx["code"]})).json()
    assert seen["status"] == state and not seen["dispensable"]
    # (moving valid_until by hand also breaks the signed content, which verify reports as well)
    assert any(word in " ".join(seen["reasons"]) for word in ("Expired", "cancelled", "replaced"))
    refused = await client.post(f"/dispensing/prescriptions/{rx['code']}/dispenses", headers={**hoa, **key()},
                                json=sale((1, 1)))
    assert refused.status_code == 409
    assert refused.json()["type"] == ("/problems/prescription-expired" if state == "expired"
                                      else "/problems/prescription-not-dispensable")


async def test_verify_by_qr_and_forged_or_altered_qr_refused(client: Client, pool: asyncpg.Pool,
                                                             settings: Settings) -> None:
    rx = await signed_prescription(client, pool, settings)
    patient = await patient_headers(pool, settings, "+84912345678")
    payload = (await client.get(f"/prescriptions/{rx['id']}/qr", headers=patient)).json()["payload"]
    hoa = await staff_headers(pool, settings, "ds.hoa")
    scanned = await client.post("/dispensing/verify", headers=hoa, json={"qr": payload})
    assert scanned.status_code == 200 and scanned.json()["code"] == rx["code"]
    prefix, _code, key_id, signature = payload.split(".")
    other = await signed_prescription(client, pool, settings, starts_in=timedelta(hours=-2), steps_ahead=1)
    altered = ".".join((prefix, other["code"], key_id, signature))  # someone else's code under this signature
    for bad in (altered, payload[:-4] + "AAAA", "not a qr at all"):
        response = await client.post("/dispensing/verify", headers=hoa, json={"qr": bad})
        assert response.status_code == 422, bad
        assert response.json()["type"] == "/problems/qr-invalid"
    assert (await client.post("/dispensing/verify", headers=hoa, json={"code": "79026zzzzzzz-c"})).status_code == 404
    bad_code = await client.post("/dispensing/verify", headers=hoa, json={"code": "79026-c"})
    assert bad_code.status_code == 422 and bad_code.json()["errors"][0]["path"] == "body.code"


async def test_identity_check_reveals_the_full_identity_only_when_it_matches(
        client: Client, pool: asyncpg.Pool, settings: Settings) -> None:
    rx = await signed_prescription(client, pool, settings)
    hoa = await staff_headers(pool, settings, "ds.hoa")
    wrong = (await client.post("/dispensing/verify", headers=hoa, json={
        "code": rx["code"], "identity": {"date_of_birth": "1992-03-15"}})).json()
    assert not wrong["identity_confirmed"] and wrong["patient"]["address"] is None
    right = (await client.post("/dispensing/verify", headers=hoa, json={
        "code": rx["code"], "identity": {"date_of_birth": "1992-03-14"}})).json()
    assert right["identity_confirmed"] and right["patient"]["address"].startswith("12 Nguyễn Huệ")
    audited = await pool.fetchval("SELECT count(*) FROM audit_log WHERE action = 'prescription.verified' "
                                  "AND target_id = $1", rx["id"])
    assert audited == 2


async def test_only_pharmacists_verify_and_dispense(client: Client, pool: asyncpg.Pool, settings: Settings) -> None:
    rx = await signed_prescription(client, pool, settings)
    for who in (await patient_headers(pool, settings, "+84912345678"), await staff_headers(pool, settings, "bs.lan"),
                await staff_headers(pool, settings, "admin")):
        assert (await client.post("/dispensing/verify", headers=who, json={"code": rx["code"]})).status_code == 403
        assert (await client.post(f"/dispensing/prescriptions/{rx['code']}/dispenses", headers={**who, **key()},
                                  json=sale((1, 1)))).status_code == 403


async def test_substitution_needs_same_ingredient_route_strength_a_degree_and_consent(
        client: Client, pool: asyncpg.Pool, settings: Settings) -> None:
    rx = await signed_prescription(client, pool, settings, lines=1)
    generic = await pool.fetchval(
        """INSERT INTO drugs (inn, ingredients, strength, dosage_form, route, atc_code, trade_names, source_code,
                              source_ref)
           VALUES ('Paracetamol', '{paracetamol}', '500mg', 'viên nén sủi', 'oral', 'N02BE01', '{Hapacol}',
                   'lienthong-demo-seed', 'test generic') RETURNING id""")
    stronger = await drug_id(pool, "Ibuprofen", "400 mg")
    hoa = await staff_headers(pool, settings, "ds.hoa")
    _, no_degree = await other_pharmacist(pool, settings, degree=False, pharmacy_id=PHARMACY_ID)

    wrong_drug = await client.post(f"/dispensing/prescriptions/{rx['code']}/dispenses", headers={**hoa, **key()},
                                   json=sale((1, 2), substitute_drug_id=str(stronger), buyer_consent=True))
    assert wrong_drug.status_code == 422
    assert wrong_drug.json()["errors"][0]["path"] == "body.lines[0].substitute_drug_id"
    no_consent = await client.post(f"/dispensing/prescriptions/{rx['code']}/dispenses", headers={**hoa, **key()},
                                   json=sale((1, 2), substitute_drug_id=str(generic)))
    assert [e["path"] for e in no_consent.json()["errors"]] == ["body.lines[0].buyer_consent"]
    unqualified = await client.post(f"/dispensing/prescriptions/{rx['code']}/dispenses",
                                    headers={**no_degree, **key()},
                                    json=sale((1, 2), substitute_drug_id=str(generic), buyer_consent=True))
    assert unqualified.status_code == 422 and "degree" in unqualified.json()["errors"][0]["message"]

    done = await client.post(f"/dispensing/prescriptions/{rx['code']}/dispenses", headers={**hoa, **key()},
                             json=sale((1, 2), substitute_drug_id=str(generic), buyer_consent=True))
    assert done.status_code == 201, done.text
    [sold] = done.json()["lines"]
    assert sold["substituted"] and sold["drug_id"] == str(generic) and sold["prescribed_drug_id"] != str(generic)


async def test_an_expired_lot_is_never_sold(client: Client, pool: asyncpg.Pool, settings: Settings) -> None:
    rx = await signed_prescription(client, pool, settings, lines=1)
    hoa = await staff_headers(pool, settings, "ds.hoa")
    body = sale((1, 2), expiry_date=str(date.today() - timedelta(days=1)))
    refused = await client.post(f"/dispensing/prescriptions/{rx['code']}/dispenses", headers={**hoa, **key()},
                                json=body)
    assert refused.status_code == 422 and refused.json()["errors"][0]["path"] == "body.lines[0].expiry_date"


async def test_void_returns_the_quantities_once_and_only_at_its_pharmacy(
        client: Client, pool: asyncpg.Pool, settings: Settings) -> None:
    rx = await signed_prescription(client, pool, settings)
    hoa = await staff_headers(pool, settings, "ds.hoa")
    sold = (await client.post(f"/dispensing/prescriptions/{rx['code']}/dispenses", headers={**hoa, **key()},
                              json=sale((1, 10), (2, 5)))).json()
    assert sold["prescription_status"] == "dispensed"
    _, other = await other_pharmacist(pool, settings)
    assert (await client.post(f"/dispensing/dispenses/{sold['id']}/void", headers=other,
                              json={"reason": "Nhập nhầm số lượng"})).status_code == 404
    voided = await client.post(f"/dispensing/dispenses/{sold['id']}/void", headers=hoa,
                               json={"reason": "Nhập nhầm số lượng"})
    assert voided.status_code == 200, voided.text
    assert voided.json()["voided_at"] is not None and voided.json()["prescription_status"] == "issued"
    assert voided.json()["remaining"] == {"1": 10, "2": 5}
    assert await pool.fetchval("SELECT status FROM national_sale_outbox WHERE dispense_id = $1",
                               UUID(sold["id"])) == "withheld"  # never reported to the national system
    twice = await client.post(f"/dispensing/dispenses/{sold['id']}/void", headers=hoa, json={"reason": "Lần nữa"})
    assert twice.status_code == 409 and twice.json()["type"] == "/problems/void-not-allowed"
    with pytest.raises(asyncpg.InsufficientPrivilegeError):
        await pool.execute("UPDATE dispenses SET total_vnd = 0 WHERE id = $1", UUID(sold["id"]))


async def test_a_cancellation_waits_for_the_holding_pharmacy_to_return_it(client: Client, pool: asyncpg.Pool,
                                                                          settings: Settings) -> None:
    from eprescription.service import expire_prescriptions

    doctor = await staff_headers(pool, settings, "bs.lan")
    hoa = await staff_headers(pool, settings, "ds.hoa")
    returned = await signed_prescription(client, pool, settings)
    lapsed = await signed_prescription(client, pool, settings, starts_in=timedelta(hours=-2), steps_ahead=1)
    for rx in (returned, lapsed):
        assert (await client.post(f"/dispensing/prescriptions/{rx['code']}/hold", headers=hoa)).status_code == 200
        cancelling = await client.post(f"/prescriptions/{rx['id']}/cancel", headers=doctor,
                                       json={"reason": "clinical_grounds"})
        assert cancelling.json()["status"] == "pending_cancellation"
    refused = await client.post(f"/dispensing/prescriptions/{returned['code']}/dispenses", headers={**hoa, **key()},
                                json=sale((1, 1)))
    assert refused.status_code == 409 and refused.json()["prescription_status"] == "pending_cancellation"

    back = await client.post(f"/dispensing/prescriptions/{returned['code']}/release", headers=hoa)
    assert back.json()["status"] == "cancelled"
    # the other pharmacy never returns it: when its hold lapses the cancellation completes on its own
    await pool.execute("UPDATE prescriptions SET hold_expires_at = now() - interval '1 second' WHERE id = $1",
                       UUID(lapsed["id"]))
    await expire_prescriptions(pool, settings)
    assert (await client.get(f"/prescriptions/{lapsed['id']}", headers=doctor)).json()["status"] == "cancelled"


async def test_a_deactivated_pharmacy_cannot_dispense(client: Client, pool: asyncpg.Pool, settings: Settings) -> None:
    rx = await signed_prescription(client, pool, settings, lines=1)
    pharmacy_id, other = await other_pharmacist(pool, settings)
    await pool.execute("UPDATE pharmacies SET active = false WHERE id = $1", pharmacy_id)
    refused = await client.post(f"/dispensing/prescriptions/{rx['code']}/dispenses", headers={**other, **key()},
                                json=sale((1, 1)))
    assert refused.status_code == 403 and refused.json()["type"] == "/problems/pharmacy-inactive"
    assert await pool.fetchval("SELECT count(*) FROM dispenses") == 0
