"""The hard prescribing rules, one passing and one failing case each, named by rule id (spec §1-3, §5).

Most cases go through the dry-run endpoint, which reports exactly what signing would refuse; one test per kind of
refusal proves that signing does refuse it, with the rule id and the field path in the problem document.
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import asyncpg
import pytest
from litestar.testing import AsyncTestClient

from api import db
from api.app import create_app
from api.settings import Settings, with_overrides
from eprescription import rules
from tests.consultations.factories import make_consultation
from tests.eprescription.factories import behind_the_apps_back
from tests.eprescription.prescribing import draft, line, sign, staff_headers
from tests.helpers import Client

pytestmark = pytest.mark.usefixtures("demo")

# each dry run gets a consultation of its own, earlier than the last: one doctor's consultations never overlap
_earlier = itertools.count(1)


async def _paracetamol(pool: asyncpg.Pool, **kw: Any) -> list[dict[str, Any]]:
    return [await line(pool, "Paracetamol", "500 mg", **kw)]


async def _dry_run(client: Client, pool: asyncpg.Pool, settings: Settings, lines: list[dict[str, Any]], *,
                   for_child: bool = False, **fields: Any) -> set[tuple[str, str]]:
    consultation_id = await make_consultation(pool, status="in_call", for_child=for_child,
                                              starts_in=timedelta(minutes=-30 * next(_earlier)))
    body = {"consultation_id": str(consultation_id), "lines": lines,
            "diagnoses": fields.pop("diagnoses", [{"code": "J00"}]), **fields}
    response = await client.post("/prescriptions/dry-run", headers=await staff_headers(pool, settings, "bs.lan"),
                                 json=body)
    assert response.status_code == 200, response.text
    return {(p["rule"], p["path"]) for p in response.json()["problems"]}


@pytest.fixture
async def permissive(settings: Settings) -> AsyncIterator[Client]:
    """The platform with controlled drugs allowed in telemedicine (legal sign-off), to reach VN-2.5/2.6/3.1."""
    app = create_app(with_overrides(settings, telemedicine_controlled_drugs=True))
    async with AsyncTestClient(app) as client:
        yield client


# ------------------------------------------------------------------------------------------- content (VN-1.x)

async def test_vn_1_6_a_diagnosis_is_required(client: Client, pool: asyncpg.Pool, settings: Settings) -> None:
    assert ("VN-1.6", "diagnoses") in await _dry_run(client, pool, settings, await _paracetamol(pool), diagnoses=[])
    assert await _dry_run(client, pool, settings, await _paracetamol(pool), diagnoses=[{"code": "J00"}]) == set()


async def test_vn_1_6_a_new_draft_takes_the_consultation_record_diagnoses(client: Client, pool: asyncpg.Pool,
                                                                         settings: Settings) -> None:
    consultation_id = await make_consultation(pool, status="in_call")
    await pool.execute("""INSERT INTO consultation_diagnoses (consultation_id, position, code, name, is_principal)
                          VALUES ($1, 1, 'R05', 'Ho', false), ($1, 2, 'I10', 'Tăng huyết áp', true)""",
                       consultation_id)
    doctor = await staff_headers(pool, settings, "bs.lan")
    response = await client.post("/prescriptions", headers=doctor, json={
        "consultation_id": str(consultation_id), "lines": await _paracetamol(pool)})
    assert [d["code"] for d in response.json()["diagnoses"]] == ["I10", "R05"]  # principal first


async def test_tm_5_principal_diagnosis_must_be_on_the_tt30_list(client: Client, pool: asyncpg.Pool,
                                                                 settings: Settings) -> None:
    lines = await _paracetamol(pool)
    assert ("TM-5", "diagnoses[0].code") in await _dry_run(client, pool, settings, lines,
                                                           diagnoses=[{"code": "J02.9"}, {"code": "J00"}])
    assert await _dry_run(client, pool, settings, lines, diagnoses=[{"code": "J00"}, {"code": "J02.9"}]) == set()
    assert await _dry_run(client, pool, settings, lines, diagnoses=[{"code": "E11.9"}]) == set()


async def test_vn_1_11_non_medicines_are_refused(client: Client, pool: asyncpg.Pool, settings: Settings) -> None:
    supplement = await pool.fetchval(
        """INSERT INTO drugs (inn, ingredients, strength, dosage_form, route, is_medicine, source_code, source_ref)
           VALUES ('Viên sủi vitamin C', '{acid ascorbic}', '1000 mg', 'viên sủi', 'oral', false,
                   'lienthong-demo-seed', 'test') RETURNING id""")
    bad = {**(await _paracetamol(pool))[0], "drug_id": str(supplement)}
    assert ("VN-1.11", "lines[0].drug_id") in await _dry_run(client, pool, settings, [bad])
    assert await _dry_run(client, pool, settings, await _paracetamol(pool)) == set()


async def test_vn_1_8_quantity_matches_dose_times_frequency_times_days(client: Client, pool: asyncpg.Pool,
                                                                      settings: Settings) -> None:
    assert await _dry_run(client, pool, settings, await _paracetamol(pool, dose=1.5, times=3, days=5,
                                                                     quantity=23)) == set()  # 22.5 → 23
    assert ("VN-1.8", "lines[0].quantity") in await _dry_run(
        client, pool, settings, await _paracetamol(pool, dose=1, times=3, days=5, quantity=30))
    syrup = [await line(pool, "Paracetamol", "120 mg/5 ml", unit="ml", dose=5, times=3, days=3, quantity=1,
                        quantity_unit="chai")]
    assert await _dry_run(client, pool, settings, syrup, for_child=True) == set()
    assert ("VN-1.8", "lines[0].quantity_unit") in await _dry_run(
        client, pool, settings, await _paracetamol(pool, quantity=10, quantity_unit="gói"))


async def test_vn_1_4_a_child_under_72_months_needs_a_weight(client: Client, pool: asyncpg.Pool,
                                                             settings: Settings) -> None:
    await pool.execute("UPDATE patients SET weight_kg = NULL WHERE full_name = 'Trần Gia Bảo'")
    sachet = [await line(pool, "Paracetamol", "250 mg", unit="gói", dose=0.5, times=3, days=2)]
    assert ("VN-1.4", "weight_kg") in await _dry_run(client, pool, settings, sachet, for_child=True)
    assert await _dry_run(client, pool, settings, sachet, for_child=True, weight_kg=11.8) == set()


async def test_vn_1_3_and_1_5_address_and_date_of_birth_are_required(client: Client, pool: asyncpg.Pool,
                                                                     settings: Settings) -> None:
    assert await _dry_run(client, pool, settings, await _paracetamol(pool)) == set()
    await pool.execute("UPDATE patients SET address = '', date_of_birth = NULL WHERE full_name = 'Nguyễn Thị Mai'")
    problems = await _dry_run(client, pool, settings, await _paracetamol(pool))
    assert {("VN-1.3", "patient.address"), ("VN-1.5", "patient.date_of_birth")} <= problems


async def test_vn_1_3_a_child_without_an_address_of_its_own_uses_the_guardians(
        client: Client, pool: asyncpg.Pool, settings: Settings) -> None:
    assert await pool.fetchval("SELECT address FROM patients WHERE full_name = 'Trần Gia Bảo'") == ""
    sachet = [await line(pool, "Paracetamol", "250 mg", unit="gói", dose=0.5, times=3, days=2)]
    assert await _dry_run(client, pool, settings, sachet, for_child=True) == set()


# ------------------------------------------------------------------------------------------- durations (VN-2.x)

async def test_vn_2_3_at_most_30_days(client: Client, pool: asyncpg.Pool, settings: Settings) -> None:
    assert await _dry_run(client, pool, settings, [await line(pool, "Amlodipin", times=1, days=30)],
                          diagnoses=[{"code": "I10"}]) == set()
    assert ("VN-2.3", "lines[0].days") in await _dry_run(
        client, pool, settings, [await line(pool, "Amlodipin", times=1, days=31)], diagnoses=[{"code": "I10"}])


async def test_vn_2_5_narcotics_at_most_7_days(permissive: Client, pool: asyncpg.Pool, settings: Settings) -> None:
    assert await _dry_run(permissive, pool, settings, [await line(pool, "Morphin sulfat", days=7)]) == set()
    assert ("VN-2.5", "lines[0].days") in await _dry_run(permissive, pool, settings,
                                                          [await line(pool, "Morphin sulfat", days=8)])


async def test_vn_2_6_psychotropics_10_days_or_30_long_term(permissive: Client, pool: asyncpg.Pool,
                                                            settings: Settings) -> None:
    assert await _dry_run(permissive, pool, settings, [await line(pool, "Diazepam", times=1, days=10)]) == set()
    assert ("VN-2.6", "lines[0].days") in await _dry_run(permissive, pool, settings,
                                                          [await line(pool, "Diazepam", times=1, days=11)])
    assert await _dry_run(permissive, pool, settings, [await line(pool, "Diazepam", times=1, days=30)],
                          long_term=True) == set()
    assert ("VN-2.6", "lines[0].days") in await _dry_run(
        permissive, pool, settings, [await line(pool, "Diazepam", times=1, days=31)], long_term=True)


def test_vn_2_1_and_2_2_valid_through_the_fifth_calendar_day_in_vietnam() -> None:
    vn = rules.VN
    assert rules.valid_until(datetime(2026, 11, 23, 10, 0, tzinfo=vn)).astimezone(vn) == datetime(
        2026, 11, 27, 23, 59, 59, 999999, tzinfo=vn)
    # 17:30 UTC is already the next day in Vietnam: that day counts as the first
    assert rules.valid_until(datetime(2026, 11, 23, 17, 30, tzinfo=UTC)).astimezone(vn).date().isoformat() == \
        "2026-11-28"
    assert rules.valid_until(datetime(2026, 12, 30, 23, 59, tzinfo=vn)).astimezone(vn).date().isoformat() == \
        "2027-01-03"


async def test_vn_2_1_past_the_window_the_prescription_is_expired(client: Client, pool: asyncpg.Pool,
                                                                  settings: Settings,
                                                                  database: db.DatabaseTarget) -> None:
    from eprescription.service import expire_prescriptions

    consultation_id = await make_consultation(pool, status="in_call")
    doctor = await staff_headers(pool, settings, "bs.lan")
    fresh = await draft(client, doctor, consultation_id, await _paracetamol(pool))
    assert (await sign(client, doctor, fresh["id"])).status_code == 200
    assert await expire_prescriptions(pool, settings) == 0  # within the window: still issued
    # six days later, as far as the database can tell (the signed content is immutable, so move the clock instead)
    await behind_the_apps_back(database, "prescriptions",
                               "UPDATE prescriptions SET valid_until = now() - interval '1 day' WHERE id = $1",
                               UUID(fresh["id"]))
    assert (await client.get(f"/prescriptions/{fresh['id']}", headers=doctor)).json()["status"] == "expired"
    amend = await client.post(f"/prescriptions/{fresh['id']}/amend", headers=doctor)
    assert amend.status_code == 409 and amend.json()["type"] == "/problems/prescription-expired"
    assert await expire_prescriptions(pool, settings) == 1
    assert await pool.fetchval("SELECT status FROM prescriptions WHERE id = $1", UUID(fresh["id"])) == "expired"


# ------------------------------------------------------------------------------------------- types (VN-3.x, TM-4)

async def test_tm_4_narcotic_and_psychotropic_drugs_are_refused_in_telemedicine(
        client: Client, pool: asyncpg.Pool, settings: Settings) -> None:
    for inn in ("Morphin sulfat", "Diazepam", "Zolpidem"):
        assert ("TM-4", "lines[0].drug_id") in await _dry_run(client, pool, settings,
                                                               [await line(pool, inn, times=1, days=3)]), inn
    assert await _dry_run(client, pool, settings, await _paracetamol(pool)) == set()


async def test_vn_3_1_types_are_never_mixed(permissive: Client, pool: asyncpg.Pool, settings: Settings) -> None:
    mixed = [*(await _paracetamol(pool)), await line(pool, "Diazepam", times=1, days=3)]
    assert ("VN-3.1", "lines") in await _dry_run(permissive, pool, settings, mixed)
    only_h = [await line(pool, "Diazepam", times=1, days=3), await line(pool, "Alprazolam", times=1, days=3)]
    assert await _dry_run(permissive, pool, settings, only_h) == set()


async def test_vn_3_6_an_h_prescription_gets_an_h_code(permissive: Client, pool: asyncpg.Pool,
                                                       settings: Settings) -> None:
    consultation_id = await make_consultation(pool, status="in_call")
    doctor = await staff_headers(pool, settings, "bs.lan")
    created = await draft(permissive, doctor, consultation_id, [await line(pool, "Diazepam", times=1, days=5)])
    signed = await sign(permissive, doctor, created["id"])
    assert signed.status_code == 200, signed.text
    assert signed.json()["rx_type"] == "h" and signed.json()["code"].endswith("-h")


async def test_vn_1_10_one_open_normal_prescription_per_consultation(client: Client, pool: asyncpg.Pool,
                                                                     settings: Settings) -> None:
    consultation_id = await make_consultation(pool, status="in_call")
    doctor = await staff_headers(pool, settings, "bs.lan")
    first = await draft(client, doctor, consultation_id, await _paracetamol(pool))
    second = await draft(client, doctor, consultation_id, [await line(pool, "Loratadin", times=1, days=5)])
    assert (await sign(client, doctor, first["id"])).status_code == 200
    refused = await sign(client, doctor, second["id"], steps_ahead=1)
    assert refused.status_code == 422
    body = refused.json()
    assert body["type"] == "/problems/prescription-rule-violated" and body["rules"] == ["VN-1.10"]
    assert body["errors"][0]["path"] == "consultation_id" and body["errors"][0]["message"].startswith("[VN-1.10]")
    # once the first is cancelled the consultation may have another
    await client.post(f"/prescriptions/{first['id']}/cancel", headers=doctor, json={"reason": "change_of_treatment"})
    assert (await sign(client, doctor, second["id"], steps_ahead=1)).status_code == 200


async def test_signing_refuses_a_broken_rule_with_the_rule_id_and_path(client: Client, pool: asyncpg.Pool,
                                                                       settings: Settings) -> None:
    consultation_id = await make_consultation(pool, status="in_call")
    doctor = await staff_headers(pool, settings, "bs.lan")
    created = await draft(client, doctor, consultation_id, [await line(pool, "Diazepam", times=1, days=3)],
                          diagnoses=[{"code": "J02.9"}])
    refused = await sign(client, doctor, created["id"])
    assert refused.status_code == 422
    body = refused.json()
    assert body["rules"] == ["TM-4", "TM-5"]
    assert {e["path"] for e in body["errors"]} == {"lines[0].drug_id", "diagnoses[0].code"}
    assert await pool.fetchval("SELECT status FROM prescriptions WHERE id = $1", UUID(created["id"])) == "draft"
