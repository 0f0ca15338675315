"""The shipped demo catalogue (spec §8.2) and interaction pairs (§8.3): complete enough to prescribe against, every
row citing its source, and every spec pair found from either drug."""

from __future__ import annotations

from typing import Any

import asyncpg
import pytest

from tests.helpers import Client


async def test_seed_has_the_spec_catalogue_each_row_with_its_source(pool: asyncpg.Pool) -> None:
    rows = await pool.fetch(
        """SELECT d.inn, d.source_ref, d.rx_required, d.is_medicine, d.atc_code, s.demo_data
           FROM drugs d JOIN drug_sources s ON s.code = d.source_code""")
    assert 70 <= len(rows) <= 83
    assert all(r["demo_data"] and r["source_ref"].startswith("e-prescription spec §8.2 #") for r in rows)
    assert all(r["rx_required"] and r["is_medicine"] and r["atc_code"] for r in rows)  # U-13: Rx-only by default
    interactions = await pool.fetch(
        "SELECT i.source_ref, s.demo_data FROM drug_interactions i JOIN drug_sources s ON s.code = i.source_code")
    assert len(interactions) >= 20
    assert all(r["demo_data"] and r["source_ref"].startswith("spec §8.3 I-") for r in interactions)


async def test_controlled_drugs_force_their_prescription_form(pool: asyncpg.Pool) -> None:
    rows = await pool.fetch("SELECT inn, control_class, prescription_type FROM drugs WHERE control_class <> 'none'")
    classes = {r["inn"]: (r["control_class"], r["prescription_type"]) for r in rows}
    assert classes == {
        "Morphin sulfat": ("narcotic", "n"), "Diazepam": ("psychotropic", "h"), "Alprazolam": ("psychotropic", "h"),
        "Phenobarbital": ("psychotropic", "h"), "Zolpidem": ("psychotropic", "h"),
    }
    assert await pool.fetchval("SELECT count(*) FROM drugs WHERE prescription_type = 'c'") == 76


async def test_pregnancy_and_weight_flags_of_the_spec_are_kept(pool: asyncpg.Pool) -> None:
    flagged = await pool.fetch("SELECT inn, pregnancy_warning FROM drugs WHERE pregnancy_warning <> 'none'")
    assert {r["inn"]: r["pregnancy_warning"] for r in flagged} == {
        "Isotretinoin": "block", "Misoprostol": "block", "Enalapril": "warn", "Perindopril": "warn",
        "Losartan kali": "warn", "Valsartan": "warn", "Warfarin": "warn", "Natri valproat (acid valproic)": "warn"}
    by_weight = await pool.fetch("SELECT inn, strength FROM drugs WHERE weight_based_dosing ORDER BY inn, strength")
    assert [(r["inn"], r["strength"]) for r in by_weight] == [
        ("Amoxicilin", "250 mg"), ("Ibuprofen", "100 mg/5 ml"), ("Paracetamol", "120 mg/5 ml"),
        ("Paracetamol", "250 mg")]


# Spec §8.3 pairs between catalogue drugs (by INN as the catalogue spells it), with the severity we store.
SPEC_PAIRS = [
    ("I-1", "Simvastatin", "Clarithromycin", "contraindicated"),
    ("I-2", "Simvastatin", "Amiodaron", "major"),
    ("I-3", "Simvastatin", "Amlodipin", "moderate"),
    ("I-4", "Tizanidin", "Ciprofloxacin", "contraindicated"),
    ("I-5", "Tizanidin", "Amiodaron", "major"),
    ("I-5", "Tizanidin", "Famotidin", "major"),
    ("I-6", "Sildenafil", "Glyceryl trinitrat", "contraindicated"),
    ("I-6", "Sildenafil", "Isosorbid mononitrat", "contraindicated"),
    ("I-7", "Colchicin", "Clarithromycin", "contraindicated"),
    ("I-8", "Domperidon", "Clarithromycin", "contraindicated"),
    ("I-8", "Domperidon", "Fluconazol", "contraindicated"),
    ("I-9", "Domperidon", "Amiodaron", "contraindicated"),
    ("I-10", "Methotrexat", "Sulfamethoxazol + trimethoprim", "major"),
    ("I-11", "Azathioprin", "Allopurinol", "major"),
    ("I-12", "Warfarin", "Fluconazol", "major"),
    ("I-13", "Warfarin", "Metronidazol", "major"),
    ("I-14", "Warfarin", "Sulfamethoxazol + trimethoprim", "major"),
    ("I-15", "Warfarin", "Amiodaron", "major"),
    ("I-16", "Warfarin", "Acid acetylsalicylic (aspirin)", "major"),
    ("I-16", "Warfarin", "Ibuprofen", "major"),
    ("I-16", "Warfarin", "Diclofenac natri", "major"),
    ("I-17", "Clopidogrel", "Omeprazol", "major"),
    ("I-17", "Clopidogrel", "Esomeprazol", "major"),
    ("I-18", "Morphin sulfat", "Diazepam", "major"),
    ("I-18", "Morphin sulfat", "Alprazolam", "major"),
    ("I-19", "Enalapril", "Spironolacton", "major"),
    ("I-19", "Perindopril", "Spironolacton", "major"),
    ("I-19", "Losartan kali", "Spironolacton", "major"),
    ("I-19", "Valsartan", "Spironolacton", "major"),
    ("I-20", "Acid acetylsalicylic (aspirin)", "Ibuprofen", "moderate"),
]


def _names(side: dict[str, Any], drug: asyncpg.Record) -> bool:
    if side["kind"] == "ingredient":
        return bool(side["code"] in drug["ingredients"])
    return bool(drug["atc_code"].startswith(side["code"]))


@pytest.mark.parametrize(("rule", "first", "second", "severity"), SPEC_PAIRS,
                         ids=[f"{r}-{a}-{b}" for r, a, b, _ in SPEC_PAIRS])
async def test_spec_interaction_pair_is_found_from_either_drug(client: Client, doctor: dict[str, str],
                                                               pool: asyncpg.Pool, rule: str, first: str,
                                                               second: str, severity: str) -> None:
    drugs = {r["inn"]: r for r in await pool.fetch(
        "SELECT DISTINCT ON (inn) id, inn, ingredients, atc_code FROM drugs WHERE inn = ANY($1::text[])",
        [first, second])}
    for this, other in ((drugs[first], drugs[second]), (drugs[second], drugs[first])):
        found = (await client.get(f"/drugs/{this['id']}/interactions", headers=doctor)).json()
        matching = [i for i in found if _names(i["other"], other)]
        assert [i["severity"] for i in matching] == [severity], (this["inn"], other["inn"])
        assert matching[0]["source_ref"].startswith(f"spec §8.3 {rule};")
        # doctors read Vietnamese (CDS-1 findings show these texts)
        assert matching[0]["effect_vi"] != matching[0]["effect"]
        assert matching[0]["advice_vi"] != matching[0]["advice"]
