"""Finding a pharmacy on a seeded map around Đà Nẵng (no demo pharmacy is near): ranked by lines in stock, then
distance; the radius, opening hours and deactivation respected; only the prescription's patient or guardian may
search with it; availability per line, never a quantity."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

import asyncpg
import pytest

from pharmacy_link.schemas import OpeningHours
from pharmacy_link.service import VN
from tests.consultations.factories import make_consultation
from tests.eprescription.factories import RxLine, days_ago, insert_issued_prescription
from tests.helpers import Client
from tests.pharmacy_link.conftest import MakePharmacy

ORIGIN = (16.0544, 108.2022)
KM_OF_LATITUDE = 111.195  # earthdistance's sphere: 6,378,168 m × π / 180


def closed_now() -> list[OpeningHours]:
    """An hour a day that starts twelve hours from now: whatever the time the test runs, the pharmacy is closed."""
    later = datetime.now(VN) + timedelta(hours=12)
    opens, closes = later.strftime("%H:%M"), (later + timedelta(hours=1)).strftime("%H:%M")
    return [OpeningHours(weekday=day, opens=opens, closes=closes) for day in range(1, 8)]


@dataclass
class Map:
    pharmacies: dict[str, UUID]
    drugs: list[UUID]
    prescription_id: UUID

    def names(self, found: list[dict[str, Any]]) -> list[str]:
        by_id = {str(v): k for k, v in self.pharmacies.items()}
        return [by_id[f["id"]] for f in found]


@pytest.fixture
async def seeded(demo: None, pool: asyncpg.Pool, make_pharmacy: MakePharmacy) -> Map:
    """Mai's prescription of three drugs, remaining 10, 4 (10 of 14 already dispensed) and 20, and pharmacies due
    north of the origin: (distance km, stock of each drug, how it is open)."""
    drugs = [r["id"] for r in await pool.fetch(
        "SELECT id FROM drugs WHERE control_class = 'none' AND is_medicine ORDER BY inn, strength LIMIT 3")]
    consultation_id = await make_consultation(pool)
    rx_id = await insert_issued_prescription(pool, consultation_id, [
        RxLine(drugs[0], quantity=10), RxLine(drugs[1], quantity=14), RxLine(drugs[2], quantity=20)])
    await pool.execute(
        "UPDATE prescription_lines SET dispensed_quantity = 10 WHERE prescription_id = $1 AND position = 2", rx_id)
    layout: dict[str, tuple[float, tuple[int | None, ...], str]] = {
        "A": (0.5, (10, 4, 20), "open"),        # every line, exactly the remaining quantities
        "B": (1.0, (50, 50, 19), "open"),       # one short on the third line
        "C": (2.0, (10, 5, 100), "open"),
        "D": (1.5, (9, 4, 20), "open"),         # one short on the first line
        "E": (0.8, (None, None, None), "open"),
        "F": (3.0, (10, 4, 20), "closed"),
        "G": (8.0, (10, 4, 20), "open"),        # outside 5 km
        "H": (0.3, (10, 4, 20), "deactivated"),
        "I": (0.2, (None, 4, 0), "open"),       # only the second line
    }
    pharmacies = {}
    for name, (km, stock, state) in layout.items():
        pharmacy_id = await make_pharmacy(
            name=f"Nhà thuốc {name}", latitude=ORIGIN[0] + km / KM_OF_LATITUDE, longitude=ORIGIN[1],
            hours=closed_now() if state == "closed" else None, active=state != "deactivated")
        await pool.executemany(
            "INSERT INTO pharmacy_stock (pharmacy_id, drug_id, quantity) VALUES ($1, $2, $3)",
            [(pharmacy_id, drug, quantity) for drug, quantity in zip(drugs, stock, strict=True)
             if quantity is not None])
        pharmacies[name] = pharmacy_id
    return Map(pharmacies, drugs, rx_id)


async def nearby(client: Client, headers: dict[str, str], **params: Any) -> Any:
    return await client.get("/pharmacies/nearby", headers=headers,
                            params={"lat": ORIGIN[0], "lng": ORIGIN[1], **params})


async def test_pharmacies_with_every_line_come_first_then_most_lines_then_nearest(
        client: Client, seeded: Map, mai: dict[str, str]) -> None:
    response = await nearby(client, mai, prescription_id=str(seeded.prescription_id))
    assert response.status_code == 200, response.text
    found = response.json()
    assert seeded.names(found) == ["A", "C", "F", "B", "D", "I", "E"]
    assert [(f["lines_available"], f["lines_total"]) for f in found] == [
        (3, 3), (3, 3), (3, 3), (2, 3), (2, 3), (1, 3), (0, 3)]
    b = found[3]
    assert [(line["position"], line["available"]) for line in b["lines"]] == [(1, True), (2, True), (3, False)]
    assert [line["drug_id"] for line in b["lines"]] == [str(d) for d in seeded.drugs]
    assert abs(found[0]["distance_m"] - 500) < 5
    assert found[0]["name"] == "Nhà thuốc A"


async def test_the_radius_leaves_out_farther_pharmacies(client: Client, seeded: Map, mai: dict[str, str]) -> None:
    wide = (await nearby(client, mai, prescription_id=str(seeded.prescription_id), radius_km=10)).json()
    assert seeded.names(wide) == ["A", "C", "F", "G", "B", "D", "I", "E"]
    narrow = (await nearby(client, mai, prescription_id=str(seeded.prescription_id), radius_km=0.9)).json()
    assert seeded.names(narrow) == ["A", "I", "E"]


async def test_closed_pharmacies_are_flagged_and_left_out_when_only_open_ones_are_asked_for(
        client: Client, seeded: Map, mai: dict[str, str]) -> None:
    found = (await nearby(client, mai, prescription_id=str(seeded.prescription_id))).json()
    assert {name: f["open_now"] for name, f in zip(seeded.names(found), found, strict=True)} == {
        "A": True, "C": True, "F": False, "B": True, "D": True, "I": True, "E": True}
    open_only = (await nearby(client, mai, prescription_id=str(seeded.prescription_id), open_now="true")).json()
    assert seeded.names(open_only) == ["A", "C", "B", "D", "I", "E"]


async def test_lines_already_dispensed_in_full_are_not_searched_for(client: Client, seeded: Map,
                                                                     mai: dict[str, str], pool: asyncpg.Pool) -> None:
    await pool.execute("""UPDATE prescription_lines SET dispensed_quantity = quantity
                          WHERE prescription_id = $1 AND position = 1""", seeded.prescription_id)
    found = (await nearby(client, mai, prescription_id=str(seeded.prescription_id))).json()
    assert seeded.names(found) == ["A", "D", "C", "F", "I", "B", "E"]  # D lacked only the first drug
    assert {f["lines_total"] for f in found} == {2}
    assert [line["position"] for line in found[0]["lines"]] == [2, 3]


async def test_the_answer_shows_availability_per_line_never_quantities(client: Client, seeded: Map,
                                                                        mai: dict[str, str]) -> None:
    found = (await nearby(client, mai, prescription_id=str(seeded.prescription_id))).json()

    def keys(value: Any) -> set[str]:
        if isinstance(value, dict):
            return set(value) | {k for v in value.values() for k in keys(v)}
        if isinstance(value, list):
            return {k for v in value for k in keys(v)}
        return set()

    assert keys(found) == {
        "id", "name", "kind", "address", "province", "phone", "latitude", "longitude", "distance_m", "open_now",
        "lines_available", "lines_total", "lines", "position", "drug_id", "available"}


async def test_limit_keeps_the_best_ranked(client: Client, seeded: Map, mai: dict[str, str]) -> None:
    found = (await nearby(client, mai, prescription_id=str(seeded.prescription_id), limit=2)).json()
    assert seeded.names(found) == ["A", "C"]


async def test_another_patients_prescription_is_404_like_an_unknown_one(
        client: Client, seeded: Map, hung: dict[str, str], doctor: dict[str, str], mai: dict[str, str]) -> None:
    for headers, prescription_id in ((hung, seeded.prescription_id), (doctor, seeded.prescription_id),
                                     (mai, UUID(int=7))):
        response = await nearby(client, headers, prescription_id=str(prescription_id))
        assert response.status_code == 404
        assert response.json()["type"] == "/problems/prescription-not-found"


async def test_guardian_finds_pharmacies_for_their_childs_prescription(
        client: Client, seeded: Map, pool: asyncpg.Pool, mai: dict[str, str], hung: dict[str, str]) -> None:
    consultation_id = await make_consultation(pool, for_child=True, starts_in=timedelta(hours=2))
    rx_id = await insert_issued_prescription(pool, consultation_id, [RxLine(seeded.drugs[0], quantity=10)])
    found = await nearby(client, mai, prescription_id=str(rx_id))
    assert found.status_code == 200
    assert seeded.names(found.json()) == ["A", "B", "C", "F", "I", "E", "D"]
    assert (await nearby(client, hung, prescription_id=str(rx_id))).status_code == 404


@pytest.mark.parametrize("state", ["cancelled", "dispensed", "expired"])
async def test_a_prescription_that_can_no_longer_be_dispensed_is_409(client: Client, seeded: Map,
                                                                     pool: asyncpg.Pool, mai: dict[str, str],
                                                                     state: str) -> None:
    consultation_id = await make_consultation(pool, starts_in=timedelta(hours=3))
    if state == "expired":
        rx_id = await insert_issued_prescription(pool, consultation_id, [RxLine(seeded.drugs[0])],
                                                 issued_at=days_ago(10))
    else:
        rx_id = await insert_issued_prescription(pool, consultation_id, [RxLine(seeded.drugs[0])], status=state)
    response = await nearby(client, mai, prescription_id=str(rx_id))
    assert response.status_code == 409
    assert response.json()["type"] == "/problems/prescription-not-dispensable"


async def test_a_search_with_a_prescription_is_audited_as_a_read_of_it(
        client: Client, seeded: Map, mai: dict[str, str], pool: asyncpg.Pool) -> None:
    await nearby(client, mai, prescription_id=str(seeded.prescription_id))
    row = await pool.fetchrow("SELECT * FROM audit_log WHERE action = 'prescription.pharmacies_searched'")
    assert row["target_id"] == str(seeded.prescription_id)
    assert row["subject_patient_id"] is not None
    assert row["details"]["results"] == 7


async def test_search_by_drugs_needs_at_least_one_unit_of_each(client: Client, seeded: Map,
                                                               hung: dict[str, str]) -> None:
    drug_ids = f"{seeded.drugs[2]},{seeded.drugs[1]}"
    found = (await nearby(client, hung, drug_ids=drug_ids)).json()
    # I holds 0 of the third drug: not available; E holds nothing
    assert seeded.names(found) == ["A", "B", "D", "C", "F", "I", "E"]
    assert [line["position"] for line in found[0]["lines"]] == [1, 2]
    assert [line["drug_id"] for line in found[0]["lines"]] == [str(seeded.drugs[2]), str(seeded.drugs[1])]


@pytest.mark.parametrize("params", [
    {},
    {"prescription_id": str(UUID(int=1)), "drug_ids": str(UUID(int=2))},
    {"drug_ids": "aspirin"},
    {"drug_ids": ",".join(str(UUID(int=i)) for i in range(1, 32))},
    {"drug_ids": f"{UUID(int=3)},{UUID(int=3)}"},
    {"drug_ids": str(UUID(int=3))},  # no such drug
    {"drug_ids": str(UUID(int=3)), "radius_km": 0},
    {"drug_ids": str(UUID(int=3)), "radius_km": 51},
    {"drug_ids": str(UUID(int=3)), "lat": 91},
])
async def test_a_search_needs_a_prescription_or_known_drugs_and_a_sane_area(client: Client, hung: dict[str, str],
                                                                            params: dict[str, Any]) -> None:
    response = await nearby(client, hung, **params)
    assert response.status_code in (400, 422), response.text
    assert response.json()["type"] == "/problems/validation-error"


async def test_a_search_needs_a_signed_in_user(client: Client, seeded: Map) -> None:
    assert (await client.get("/pharmacies/nearby", params={"lat": 16, "lng": 108,
                                                          "drug_ids": str(seeded.drugs[0])})).status_code == 401
