"""Drug search as the doctor console uses it for type-ahead: any case, with or without diacritics, prefixes, typos,
ATC codes and trade names, ranked and paginated; one drug and its interaction rules; who may look."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from api.settings import Settings
from tests.eprescription.conftest import headers_for
from tests.helpers import Client, bearer, sign_in_patient, sign_in_staff


async def _search(client: Client, headers: dict[str, str], q: str, **params: Any) -> dict[str, Any]:
    response = await client.get("/drugs", params={"q": q, **params}, headers=headers)
    assert response.status_code == 200, response.text
    page: dict[str, Any] = response.json()
    return page


def _names(page: dict[str, Any]) -> list[str]:
    return [f"{d['inn']} {d['strength']}" for d in page["items"]]


@pytest.mark.parametrize(("query", "first"), [
    ("paracetamol", "Paracetamol"),
    ("PARACETAMOL", "Paracetamol"),
    ("Para", "Paracetamol"),            # prefix
    ("amlo", "Amlodipin"),
    ("meto", "Metoclopramid"),          # name prefix beats Metformin, Methotrexat...
    ("clar", "Clarithromycin"),         # a name prefix beats a trade-name prefix (Clarityne)
    ("paracetamon", "Paracetamol"),     # typos
    ("amoxcilin", "Amoxicilin"),
    ("amoxicillin", "Amoxicilin"),      # English spelling of the Vietnamese INN
    ("glicazid", "Gliclazid"),
    ("metphormin", "Metformin"),
    ("simvastatine", "Simvastatin"),
    ("panadol", "Paracetamol"),         # trade names
    ("Augmentin", "Amoxicilin + acid clavulanic"),
    ("seduxen", "Diazepam"),
    ("N02BE01", "Paracetamol"),         # ATC code, any case
    ("m01ae01", "Ibuprofen"),
])
async def test_search_finds_the_drug_first(client: Client, doctor: dict[str, str], query: str, first: str) -> None:
    page = await _search(client, doctor, query)
    assert page["items"], f"nothing found for {query!r}"
    assert page["items"][0]["inn"] == first


async def test_diacritics_and_case_do_not_matter(client: Client, doctor: dict[str, str]) -> None:
    with_marks = await _search(client, doctor, "Paracetamol GÓI")
    without = await _search(client, doctor, "paracetamol goi")
    assert _names(with_marks) == _names(without)
    assert _names(with_marks)[0] == "Paracetamol 250 mg"  # the sachet ("gói thuốc bột/cốm")


async def test_name_and_strength_typed_together_pick_the_presentation(client: Client, doctor: dict[str, str]) -> None:
    assert _names(await _search(client, doctor, "amoxicilin 250"))[0] == "Amoxicilin 250 mg"
    assert _names(await _search(client, doctor, "500 paracetamol"))[0] == "Paracetamol 500 mg"


async def test_atc_group_lists_its_members_before_anything_else(client: Client, doctor: dict[str, str]) -> None:
    ace_inhibitors = await _search(client, doctor, "C09AA")
    assert {d["inn"] for d in ace_inhibitors["items"][:2]} == {"Enalapril", "Perindopril"}
    renin_angiotensin = await _search(client, doctor, "c09")
    assert {d["atc_code"][:3] for d in renin_angiotensin["items"][:4]} == {"C09"}
    # one wrong character in a code is another code: no fuzzy neighbours for code-like queries
    assert all(d["atc_code"].startswith("N02") for d in (await _search(client, doctor, "n02"))["items"])


async def test_nothing_matches_gives_an_empty_page(client: Client, doctor: dict[str, str]) -> None:
    page = await _search(client, doctor, "xyzzyqwv")
    assert page == {"items": [], "total": 0, "demo_data": False}
    assert (await _search(client, doctor, "%_%"))["items"] == []  # LIKE wildcards are plain characters


async def test_pages_are_disjoint_and_cover_every_match_once(client: Client, doctor: dict[str, str]) -> None:
    first = await _search(client, doctor, "viên", limit=10)
    total = first["total"]
    assert total > 30
    seen: list[str] = []
    for offset in range(0, total, 10):
        page = await _search(client, doctor, "viên", limit=10, offset=offset)
        assert page["total"] == total
        seen += [d["id"] for d in page["items"]]
    assert len(seen) == len(set(seen)) == total


async def test_without_a_query_the_catalogue_is_listed_by_name(client: Client, doctor: dict[str, str]) -> None:
    response = await client.get("/drugs", params={"limit": 50}, headers=doctor)
    page = response.json()
    assert page["total"] >= 70
    names = [d["inn"].lower() for d in page["items"]]
    assert names == sorted(names)


async def test_bad_paging_parameters_are_a_422(client: Client, doctor: dict[str, str]) -> None:
    for params in ({"limit": 0}, {"limit": 51}, {"offset": -1}, {"q": "x" * 101}):
        response = await client.get("/drugs", params=params, headers=doctor)
        assert response.status_code in (400, 422), params
        assert response.json()["type"] == "/problems/validation-error"


async def test_a_drug_by_id_says_where_it_comes_from_and_that_it_is_demo_data(client: Client,
                                                                              doctor: dict[str, str]) -> None:
    found = (await _search(client, doctor, "morphin"))["items"][0]
    response = await client.get(f"/drugs/{found['id']}", headers=doctor)
    assert response.status_code == 200
    drug = response.json()
    assert drug == found
    assert drug["demo_data"] is True
    assert drug["source"] == "lienthong-demo-seed"
    assert "§8.2 #79" in drug["source_ref"]
    assert (drug["control_class"], drug["prescription_type"], drug["route"]) == ("narcotic", "n", "oral")


async def test_unknown_drug_is_a_404_problem(client: Client, doctor: dict[str, str]) -> None:
    for path in (f"/drugs/{uuid.uuid4()}", f"/drugs/{uuid.uuid4()}/interactions"):
        response = await client.get(path, headers=doctor)
        assert response.status_code == 404
        assert response.json()["type"] == "/problems/drug-not-found"


async def test_withdrawn_drug_leaves_the_search_but_stays_readable(client: Client, doctor: dict[str, str],
                                                                   pool: Any) -> None:
    drug = (await _search(client, doctor, "panadol"))["items"][0]
    await pool.execute("UPDATE drugs SET active = false WHERE id = $1", uuid.UUID(drug["id"]))
    assert (await _search(client, doctor, "panadol"))["items"] == []
    still = await client.get(f"/drugs/{drug['id']}", headers=doctor)
    assert still.json()["active"] is False


async def test_interactions_of_a_drug_come_most_severe_first(client: Client, doctor: dict[str, str]) -> None:
    simvastatin = (await _search(client, doctor, "simvastatin"))["items"][0]
    found = (await client.get(f"/drugs/{simvastatin['id']}/interactions", headers=doctor)).json()
    severities = [i["severity"] for i in found]
    order = ["contraindicated", "major", "moderate", "minor"]
    assert severities == sorted(severities, key=order.index)
    clarithromycin = next(i for i in found if i["other"]["code"] == "clarithromycin")
    assert clarithromycin["severity"] == "contraindicated"
    assert clarithromycin["drug"] == {"kind": "ingredient", "code": "simvastatin", "label": "Simvastatin"}
    assert "rhabdomyolysis" in clarithromycin["effect"]
    assert clarithromycin["source_ref"].startswith("spec §8.3 I-1")
    assert clarithromycin["demo_data"] is True
    paracetamol = (await _search(client, doctor, "paracetamol"))["items"][0]
    assert (await client.get(f"/drugs/{paracetamol['id']}/interactions", headers=doctor)).json() == []


async def test_class_rule_reaches_every_member_of_the_class(client: Client, doctor: dict[str, str]) -> None:
    for nsaid in ("ibuprofen", "diclofenac", "meloxicam", "celecoxib"):
        drug = (await _search(client, doctor, nsaid))["items"][0]
        found = (await client.get(f"/drugs/{drug['id']}/interactions", headers=doctor)).json()
        warfarin = [i for i in found if i["other"]["code"] == "warfarin"]
        assert warfarin, nsaid
        assert warfarin[0]["drug"] == {"kind": "atc_class", "code": "M01A", "label": "NSAIDs (M01A)"}


@pytest.mark.usefixtures("demo")
async def test_doctors_pharmacists_and_admins_may_search_patients_may_not(client: Client, sms: Any) -> None:
    for username in ("bs.lan", "ds.hoa", "admin"):
        session = await sign_in_staff(client, username)
        assert (await client.get("/drugs", params={"q": "para"}, headers=bearer(session))).status_code == 200
    patient = await sign_in_patient(client, sms, "+84987654321")
    for path in ("/drugs?q=para", "/drugs/sources", f"/drugs/{uuid.uuid4()}"):
        forbidden = await client.get(path, headers=bearer(patient))
        assert forbidden.status_code == 403, path
        assert forbidden.json()["type"] == "/problems/forbidden"
    assert (await client.get("/drugs", params={"q": "para"})).status_code == 401


async def test_sources_say_which_data_is_for_demonstration(client: Client, settings: Settings) -> None:
    response = await client.get("/drugs/sources", headers=headers_for(settings, "pharmacist"))
    [seed] = response.json()
    assert seed["code"] == "lienthong-demo-seed"
    assert seed["demo_data"] is True
    assert "NOT FOR CLINICAL USE" in seed["notes"]
    assert seed["drugs"] >= 70
    assert seed["interactions"] >= 20


async def test_one_or_two_letters_match_word_starts_three_anywhere(client: Client, doctor: dict[str, str]) -> None:
    assert {d["inn"] for d in (await _search(client, doctor, "az"))["items"]} == {"Azithromycin", "Azathioprin"}
    anywhere = {d["inn"] for d in (await _search(client, doctor, "azo", limit=50))["items"]}
    assert {"Fluconazol", "Metronidazol", "Albendazol"} <= anywhere
