"""Clinical decision support at prescribe time (spec §8): what a doctor sees for interactions (CDS-1), allergies
(CDS-2), duplicate therapy (CDS-3), paediatric doses (CDS-4) and pregnancy (CDS-5), against the seed catalogue."""

from __future__ import annotations

from collections.abc import Sequence
from uuid import UUID

import asyncpg
import msgspec
import pytest

from api.demo import CHILD, PATIENTS
from eprescription.checks import CheckLine, PatientFacts, clinical_findings
from eprescription.checks_db import CheckData
from eprescription.schemas import Finding
from tests.consultations.factories import make_consultation
from tests.eprescription.factories import RxLine, days_ago, drug_id, insert_issued_prescription

pytestmark = pytest.mark.usefixtures("demo")

ADULT_WOMAN = PATIENTS[0][1]  # Nguyễn Thị Mai, born 1992
ADULT_MAN = PATIENTS[1][1]


async def patient(pool: asyncpg.Pool, full_name: str, **facts: object) -> PatientFacts:
    """A demo patient with no allergies and no recorded pregnancy, adult unless ``age_months`` says otherwise."""
    row = await pool.fetchrow("SELECT id, sex FROM patients WHERE full_name = $1", full_name)
    assert row is not None
    defaults: dict[str, object] = {"patient_id": row["id"], "age_months": 34 * 12, "sex": row["sex"],
                                   "weight_kg": 55.0, "allergies": [], "pregnancy_status": "unknown"}
    return msgspec.convert(defaults | facts, PatientFacts)


def line(position: int, drug: UUID, dose: float = 1, unit: str = "viên", times: int = 2, days: int = 5) -> CheckLine:
    return CheckLine(position=position, drug_id=drug, dose_per_time=dose, dose_unit=unit, times_per_day=times,
                     days=days)


async def check(pool: asyncpg.Pool, facts: PatientFacts, lines: Sequence[CheckLine],
                exclude: Sequence[UUID] = ()) -> list[Finding]:
    drug_ids = list(dict.fromkeys(line.drug_id for line in lines))
    text = await pool.fetchval("SELECT clinical_check_data($1, $2, $3, $4)", drug_ids, facts.patient_id,
                               list(exclude), facts.allergies)
    return clinical_findings(msgspec.json.decode(text, type=CheckData), facts, lines)


def of_rule(findings: list[Finding], rule: str) -> list[Finding]:
    return [f for f in findings if f.rule == rule]


# ------------------------------------------------------------------------------------------------- CDS-1

async def test_cds1_every_seeded_interaction_is_found_in_both_line_orders(pool: asyncpg.Pool) -> None:
    # one catalogue drug per side of every rule both of whose sides are in the seed catalogue
    rules = await pool.fetch(
        """SELECT i.severity, i.effect_vi, i.advice_vi, i.source_ref, a.id AS a_id, a.inn AS a_inn, b.id AS b_id,
                  b.inn AS b_inn
           FROM drug_interactions i
           CROSS JOIN LATERAL (SELECT d.id, d.inn FROM drugs d
                               WHERE drug_matches_side(i.a_kind, i.a_code, d.ingredients, d.atc_code)
                               ORDER BY d.inn, d.strength LIMIT 1) a
           CROSS JOIN LATERAL (SELECT d.id, d.inn FROM drugs d
                               WHERE drug_matches_side(i.b_kind, i.b_code, d.ingredients, d.atc_code)
                               ORDER BY d.inn, d.strength LIMIT 1) b""")
    assert len(rules) >= 25
    man = await patient(pool, ADULT_MAN)
    for rule in rules:
        keys = set()
        for first, second in ((rule["a_id"], rule["b_id"]), (rule["b_id"], rule["a_id"])):
            found = of_rule(await check(pool, man, [line(1, first), line(2, second)]), "CDS-1")
            assert len(found) == 1, (rule["a_inn"], rule["b_inn"], found)
            finding = found[0]
            assert (finding.severity, finding.positions) == (rule["severity"], [1, 2]), rule["source_ref"]
            assert finding.blocks_signing == (rule["severity"] == "contraindicated")
            assert (finding.detail, finding.advice, finding.source) == (
                rule["effect_vi"], rule["advice_vi"], rule["source_ref"])
            keys.add(finding.key)
        assert len(keys) == 1, "the same pair has the same key whichever line comes first"


async def test_cds1_rules_are_looked_up_by_exactly_the_codes_that_name_a_drug(pool: asyncpg.Pool) -> None:
    """The index lookup (drug_side_keys, migration 0018, stored as drugs.side_keys since 0020) is
    drug_matches_side() turned around: for every catalogue drug and every side code the catalogue uses, plus
    fragments that must not match (single words, cut words, a word too many, ATC prefixes), both say the same, so no
    rule, allergy class member or pregnancy risk is missed or invented by the lookup."""
    rows = await pool.fetch(
        """WITH sides AS (
             SELECT a_kind AS kind, a_code AS code FROM drug_interactions
             UNION SELECT b_kind, b_code FROM drug_interactions
             UNION SELECT kind, code FROM allergy_class_members UNION SELECT kind, code FROM pregnancy_risks
             UNION SELECT 'ingredient', w FROM drugs, unnest(ingredients) i, unnest(string_to_array(i, ' ')) w
             UNION SELECT 'ingredient', left(i, 4) FROM drugs, unnest(ingredients) i
             UNION SELECT 'ingredient', i || ' natri' FROM drugs, unnest(ingredients) i
             UNION SELECT 'atc_class', left(atc_code, n) FROM drugs, generate_series(1, 7) n WHERE atc_code <> ''
           )
           SELECT d.inn, s.kind, s.code, drug_matches_side(s.kind, s.code, d.ingredients, d.atc_code) AS matches,
                  s.kind || ':' || s.code = ANY (d.side_keys) AS keyed,
                  s.code = ANY (d.ingredients) AS whole_name
           FROM drugs d CROSS JOIN sides s""")
    disagree = [(r["inn"], r["kind"], r["code"], r["matches"]) for r in rows if r["matches"] != r["keyed"]]
    assert disagree == []
    matched = sum(r["matches"] for r in rows)
    assert matched > 500 and len(rows) - matched > 10_000  # both answers are well represented
    # some codes name an ingredient without its salt word ('diclofenac' names "diclofenac natri")
    assert any(r["matches"] and r["kind"] == "ingredient" and not r["whole_name"] for r in rows)


async def test_cds1_active_medication_interaction_names_the_prescription_it_is_taken_under(
        pool: asyncpg.Pool) -> None:
    simvastatin, clarithromycin = await drug_id(pool, "Simvastatin"), await drug_id(pool, "Clarithromycin")
    consultation = await make_consultation(pool, status="completed", patient_phone=PATIENTS[1][0])
    rx = await insert_issued_prescription(pool, consultation, [RxLine(simvastatin, days=30)], issued_at=days_ago(3))
    code = await pool.fetchval("SELECT code FROM prescriptions WHERE id = $1", rx)

    found = of_rule(await check(pool, await patient(pool, ADULT_MAN), [line(1, clarithromycin)]), "CDS-1")

    assert [(f.severity, f.positions, f.blocks_signing) for f in found] == [("contraindicated", [1], True)]
    assert code in found[0].detail and "Simvastatin" in found[0].title


@pytest.mark.parametrize(("status", "issued_days_ago", "days", "flagged"), [
    ("issued", 40, 5, False),  # taken from 40 days ago for 5 days: finished long ago
    ("issued", 3, 5, True),
    ("dispensed", 3, 5, True),
    ("partially_dispensed", 3, 5, True),
    ("with_dispenser", 3, 5, True),
    ("cancelled", 3, 5, False),
    ("superseded", 3, 5, False),
    ("expired", 10, 30, False),  # never dispensed, so never taken
])
async def test_cds1_only_medications_still_being_taken_are_active(pool: asyncpg.Pool, status: str,
                                                                   issued_days_ago: int, days: int,
                                                                   flagged: bool) -> None:
    warfarin, fluconazole = await drug_id(pool, "Warfarin"), await drug_id(pool, "Fluconazol")
    consultation = await make_consultation(pool, status="completed", patient_phone=PATIENTS[1][0])
    await insert_issued_prescription(pool, consultation, [RxLine(warfarin, days=days)], status=status,
                                     issued_at=days_ago(issued_days_ago))

    found = of_rule(await check(pool, await patient(pool, ADULT_MAN), [line(1, fluconazole)]), "CDS-1")

    assert [f.severity for f in found] == (["major"] if flagged else [])


async def test_cds1_excluded_prescription_is_not_an_active_medication(pool: asyncpg.Pool) -> None:
    warfarin, fluconazole = await drug_id(pool, "Warfarin"), await drug_id(pool, "Fluconazol")
    consultation = await make_consultation(pool, status="completed", patient_phone=PATIENTS[1][0])
    replaced = await insert_issued_prescription(pool, consultation, [RxLine(warfarin, days=30)])
    man = await patient(pool, ADULT_MAN)

    assert of_rule(await check(pool, man, [line(1, fluconazole)]), "CDS-1")
    assert of_rule(await check(pool, man, [line(1, fluconazole)], exclude=[replaced]), "CDS-1") == []


async def test_cds1_class_rule_reaches_every_member_and_a_drug_written_twice_is_one_finding(
        pool: asyncpg.Pool) -> None:
    sildenafil = await drug_id(pool, "Sildenafil")
    nitrates = [await drug_id(pool, "Glyceryl trinitrat"), await drug_id(pool, "Isosorbid mononitrat")]
    lines = [line(1, nitrates[0]), line(2, sildenafil), line(3, nitrates[1]), line(4, sildenafil)]

    found = of_rule(await check(pool, await patient(pool, ADULT_MAN), lines), "CDS-1")

    assert sorted(f.positions for f in found) == [[1, 2, 4], [2, 3, 4]]
    assert all(f.severity == "contraindicated" and f.blocks_signing for f in found)


# ------------------------------------------------------------------------------------------------- CDS-2

async def test_cds2_demo_child_allergic_to_penicillin_cannot_be_given_amoxicillin(pool: asyncpg.Pool) -> None:
    allergies = await pool.fetchval(
        "SELECT ARRAY(SELECT a->>'substance' FROM jsonb_array_elements(allergies) a) FROM patients "
        "WHERE full_name = $1", CHILD[0])
    child = await patient(pool, CHILD[0], age_months=30, weight_kg=CHILD[3], allergies=allergies)
    lines = [line(1, await drug_id(pool, "Amoxicilin", "250 mg"), unit="gói", times=2),
             line(2, await drug_id(pool, "Amoxicilin + acid clavulanic")),
             line(3, await drug_id(pool, "Loratadin"))]

    found = of_rule(await check(pool, child, lines), "CDS-2")

    assert sorted((f.positions, f.severity, f.blocks_signing) for f in found) == [
        ([1], "contraindicated", True), ([2], "contraindicated", True)]
    assert all("penicillin" in f.title for f in found)


ALLERGY_CASES = [
    ("penicillin", "Amoxicilin", "contraindicated"),
    ("Penicilin", "Amoxicilin + acid clavulanic", "contraindicated"),
    ("PENICILLIN", "Amoxicilin", "contraindicated"),
    ("dị ứng nhóm Penicillin", "Amoxicilin", "contraindicated"),
    ("penicillin", "Cefuroxim", "moderate"),  # cross-reactivity low but real
    ("penicillin", "Cefadroxil", "moderate"),
    ("penicillin", "Azithromycin", None),
    ("cephalosporin", "Cefixim", "contraindicated"),
    ("cefalosporin", "Amoxicilin", "moderate"),
    ("Amoxicillin", "Amoxicilin + acid clavulanic", "contraindicated"),  # English spelling of the ingredient
    ("Sulfamid", "Sulfamethoxazol + trimethoprim", "contraindicated"),
    ("sulfa", "Hydroclorothiazid", None),  # non-antibiotic sulfonamide: no cross-reactivity shown
    ("thuốc chống viêm không steroid", "Diclofenac natri", "contraindicated"),
    ("NSAID", "Acid acetylsalicylic (aspirin)", "contraindicated"),
    ("aspirin", "Acid acetylsalicylic (aspirin)", "contraindicated"),
    ("aspirin", "Ibuprofen", "major"),
    ("aspirin", "Celecoxib", "moderate"),
    ("aspirin", "Clopidogrel", None),
    ("macrolide", "Clarithromycin", "contraindicated"),
    ("fluoroquinolone", "Levofloxacin", "contraindicated"),
    ("statin", "Rosuvastatin", "contraindicated"),
    ("ức chế men chuyển", "Perindopril", "contraindicated"),
    ("ACE inhibitor", "Losartan kali", "moderate"),
    ("omeprazole", "Omeprazol", "contraindicated"),
    ("omeprazole", "Esomeprazol", "major"),  # same ATC level-4 group (A02BC): possible cross-reaction
    ("acetaminophen", "Paracetamol", "contraindicated"),
    ("Diclofenac sodium", "Diclofenac natri", "contraindicated"),
    ("metformin", "Gliclazid", None),
]


@pytest.mark.parametrize(("allergy", "inn", "severity"), ALLERGY_CASES,
                         ids=[f"{a}-{i}" for a, i, _ in ALLERGY_CASES])
async def test_cds2_allergy_by_ingredient_class_and_spelling(pool: asyncpg.Pool, allergy: str, inn: str,
                                                              severity: str | None) -> None:
    facts = await patient(pool, ADULT_MAN, allergies=[allergy])

    found = of_rule(await check(pool, facts, [line(1, await drug_id(pool, inn))]), "CDS-2")

    assert [f.severity for f in found] == ([severity] if severity else [])
    assert all(f.blocks_signing == (f.severity == "contraindicated") and f.positions == [1] for f in found)


async def test_cds2_spellings_of_one_allergy_are_one_finding(pool: asyncpg.Pool) -> None:
    facts = await patient(pool, ADULT_MAN, allergies=["Penicilin", "PENICILLIN", "penicillin"])

    found = of_rule(await check(pool, facts, [line(1, await drug_id(pool, "Amoxicilin"))]), "CDS-2")

    assert len(found) == 1


# ------------------------------------------------------------------------------------------------- CDS-3

DUPLICATE_CASES = [
    ("Paracetamol", "Paracetamol", "major"),  # the same drug on two lines
    ("Amoxicilin", "Amoxicilin + acid clavulanic", "major"),  # a combination holding the same ingredient
    ("Omeprazol", "Esomeprazol", "moderate"),  # two PPIs, A02BC
    ("Ibuprofen", "Diclofenac natri", "moderate"),  # two NSAIDs, M01A
    ("Meloxicam", "Celecoxib", "moderate"),
    ("Paracetamol", "Ibuprofen", None),
    ("Amlodipin", "Losartan kali", None),
]


@pytest.mark.parametrize(("first", "second", "severity"), DUPLICATE_CASES,
                         ids=[f"{a}-{b}" for a, b, _ in DUPLICATE_CASES])
async def test_cds3_duplicate_therapy_between_draft_lines(pool: asyncpg.Pool, first: str, second: str,
                                                          severity: str | None) -> None:
    lines = [line(1, await drug_id(pool, first)), line(2, await drug_id(pool, "Loratadin")),
             line(3, await drug_id(pool, second))]

    found = of_rule(await check(pool, await patient(pool, ADULT_MAN), lines), "CDS-3")

    assert [(f.severity, f.positions, f.blocks_signing) for f in found] == (
        [(severity, [1, 3], False)] if severity else [])


async def test_cds3_same_ingredient_as_an_active_medication_is_major(pool: asyncpg.Pool) -> None:
    omeprazole = await drug_id(pool, "Omeprazol")
    consultation = await make_consultation(pool, status="completed", patient_phone=PATIENTS[1][0])
    rx = await insert_issued_prescription(pool, consultation, [RxLine(omeprazole, days=28)])
    code = await pool.fetchval("SELECT code FROM prescriptions WHERE id = $1", rx)
    lines = [line(1, await drug_id(pool, "Loratadin")), line(2, omeprazole)]

    found = of_rule(await check(pool, await patient(pool, ADULT_MAN), lines), "CDS-3")

    assert [(f.severity, f.positions) for f in found] == [("major", [2])]
    assert code in found[0].detail


# ------------------------------------------------------------------------------------------------- CDS-4

# (strength of the paracetamol, dose, unit, times a day) → the CDS-4 findings a 12 kg child of 30 months gets
DOSE_CASES = [
    ("250 mg", 0.6, "gói", 4, []),  # 150 mg = 12,5 mg/kg, 50 mg/kg/day
    ("120 mg/5 ml", 6.25, "ml", 4, []),  # the same 150 mg as syrup: 24 mg per ml
    ("120 mg/5 ml", 7.5, "ml", 4, []),  # 180 mg = exactly 15 mg/kg, 60 mg/kg/day: at the limits, not over
    ("500 mg", 1, "viên", 4, [("contraindicated", "day-very-high"), ("major", "dose-high")]),  # 166,7 mg/kg/day
    ("120 mg/5 ml", 10, "ml", 4, [("major", "day-high"), ("major", "dose-high")]),  # 20 mg/kg, 80 mg/kg/day
    ("120 mg/5 ml", 5, "ml", 6, [("major", "frequency")]),  # 10 mg/kg six times: 60 mg/kg but too often
    ("120 mg/5 ml", 2.5, "ml", 4, [("minor", "dose-low")]),  # 5 mg/kg
    ("120 mg/5 ml", 5, "viên", 4, [("minor", "unchecked")]),  # a syrup counted in tablets: cannot be converted
]


@pytest.mark.parametrize(("strength", "dose", "unit", "times", "expected"), DOSE_CASES,
                         ids=[f"{s}-{d}{u}x{t}" for s, d, u, t, _ in DOSE_CASES])
async def test_cds4_paracetamol_dose_for_a_12_kg_child(pool: asyncpg.Pool, strength: str, dose: float, unit: str,
                                                       times: int, expected: list[tuple[str, str]]) -> None:
    child = await patient(pool, CHILD[0], age_months=30, weight_kg=12.0)
    paracetamol = await drug_id(pool, "Paracetamol", strength)

    found = of_rule(await check(pool, child, [line(1, paracetamol, dose, unit, times)]), "CDS-4")

    assert [(f.severity, f.key.rsplit(":", 1)[1]) for f in found] == expected
    assert all(f.positions == [1] and f.blocks_signing == (f.severity == "contraindicated") for f in found)


async def test_cds4_child_under_72_months_without_weight_blocks_signing(pool: asyncpg.Pool) -> None:
    child = await patient(pool, CHILD[0], age_months=30, weight_kg=None)
    lines = [line(1, await drug_id(pool, "Loratadin")),
             line(2, await drug_id(pool, "Amoxicilin", "250 mg"), unit="gói"),
             line(3, await drug_id(pool, "Paracetamol", "120 mg/5 ml"), 5, "ml", 4)]

    found = of_rule(await check(pool, child, lines), "CDS-4")

    assert [(f.positions, f.blocks_signing) for f in found] == [([2, 3], True)]
    assert "cân nặng" in found[0].advice


async def test_cds4_older_child_without_weight_is_told_the_dose_was_not_checked(pool: asyncpg.Pool) -> None:
    child = await patient(pool, CHILD[0], age_months=100, weight_kg=None)

    found = of_rule(await check(pool, child, [line(1, await drug_id(pool, "Paracetamol", "500 mg"))]), "CDS-4")

    assert [(f.severity, f.blocks_signing) for f in found] == [("minor", False)]


async def test_cds4_two_paracetamol_lines_are_checked_together(pool: asyncpg.Pool) -> None:
    child = await patient(pool, CHILD[0], age_months=30, weight_kg=12.0)
    lines = [line(1, await drug_id(pool, "Paracetamol", "120 mg/5 ml"), 5, "ml", 4),  # 40 mg/kg/day
             line(2, await drug_id(pool, "Loratadin")),
             line(3, await drug_id(pool, "Paracetamol", "250 mg"), 0.6, "gói", 4)]  # 50 mg/kg/day

    found = of_rule(await check(pool, child, lines), "CDS-4")

    assert [(f.severity, f.positions) for f in found] == [("major", [1, 3])]  # 90 mg/kg/day together


async def test_cds4_adult_doses_are_not_checked_per_kg(pool: asyncpg.Pool) -> None:
    adult = await patient(pool, ADULT_MAN)

    found = await check(pool, adult, [line(1, await drug_id(pool, "Paracetamol", "500 mg"), 2, "viên", 4)])

    assert of_rule(found, "CDS-4") == []


# ------------------------------------------------------------------------------------------------- CDS-5

PREGNANCY_CASES = [
    # sex, age in months (None: unknown), pregnancy status, drug, severity
    ("female", 360, "pregnant", "Isotretinoin", "contraindicated"),
    ("female", 360, "pregnant", "Warfarin", "major"),
    ("female", 360, "unknown", "Misoprostol", "major"),
    ("female", 360, "unknown", "Natri valproat (acid valproic)", "moderate"),
    ("female", 360, "not_pregnant", "Isotretinoin", "moderate"),
    ("female", 360, "not_pregnant", "Enalapril", None),
    ("female", 360, "pregnant", "Paracetamol", None),
    ("female", None, "unknown", "Isotretinoin", "major"),
    ("female", 120, "unknown", "Isotretinoin", None),  # a 10-year-old
    ("female", 60 * 12, "unknown", "Losartan kali", None),
    (None, 360, "pregnant", "Valsartan", "major"),
    (None, 360, "unknown", "Isotretinoin", None),
    ("male", 360, "unknown", "Isotretinoin", None),
    ("male", 360, "pregnant", "Misoprostol", None),
]


@pytest.mark.parametrize(("sex", "age_months", "status", "inn", "severity"), PREGNANCY_CASES,
                         ids=[f"{s}-{a}-{p}-{i}" for s, a, p, i, _ in PREGNANCY_CASES])
async def test_cds5_pregnancy_matrix(pool: asyncpg.Pool, sex: str | None, age_months: int | None, status: str,
                                     inn: str, severity: str | None) -> None:
    facts = await patient(pool, ADULT_WOMAN, sex=sex, age_months=age_months, pregnancy_status=status)

    found = of_rule(await check(pool, facts, [line(1, await drug_id(pool, inn))]), "CDS-5")

    assert [(f.severity, f.positions) for f in found] == ([(severity, [1])] if severity else [])
    assert all(f.blocks_signing == (f.severity == "contraindicated") for f in found)


# ------------------------------------------------------------------------------------------- all the rules

async def test_findings_come_most_severe_first_and_keep_their_keys_when_an_unrelated_line_is_added(
        pool: asyncpg.Pool) -> None:
    facts = await patient(pool, ADULT_WOMAN, allergies=["penicillin"], pregnancy_status="unknown")
    draft = [await drug_id(pool, n) for n in ("Simvastatin", "Clarithromycin", "Cefuroxim", "Omeprazol",
                                              "Esomeprazol", "Warfarin")]
    loratadine = await drug_id(pool, "Loratadin")
    before = await check(pool, facts, [line(i, d) for i, d in enumerate(draft, start=1)])

    appended = await check(pool, facts, [line(i, d) for i, d in enumerate([*draft, loratadine], start=1)])
    prepended = await check(pool, facts, [line(i, d) for i, d in enumerate([loratadine, *draft], start=1)])

    assert {f.rule for f in before} == {"CDS-1", "CDS-2", "CDS-3", "CDS-5"}
    assert [f.severity for f in before] == sorted((f.severity for f in before), key=[
        "contraindicated", "major", "moderate", "minor"].index)
    assert appended == before
    assert [f.key for f in prepended] == [f.key for f in before]
    assert [f.positions for f in prepended] == [[p + 1 for p in f.positions] for f in before]


async def test_a_finding_reads_in_vietnamese_with_its_source(pool: asyncpg.Pool) -> None:
    lines = [line(1, await drug_id(pool, "Simvastatin")), line(2, await drug_id(pool, "Clarithromycin"))]

    found = await check(pool, await patient(pool, ADULT_MAN), lines)

    assert msgspec.to_builtins(found[0]) | {"key": "…"} == {
        "key": "…", "rule": "CDS-1", "severity": "contraindicated",
        "title": "Chống chỉ định phối hợp: Simvastatin + Clarithromycin",
        "detail": "Chất ức chế mạnh CYP3A4 làm nồng độ simvastatin trong máu tăng nhiều lần: nguy cơ bệnh cơ và tiêu "
                  "cơ vân.",
        "advice": "Không phối hợp; tạm ngừng simvastatin trong suốt đợt kháng sinh hoặc chọn kháng sinh khác.",
        "positions": [1, 2], "blocks_signing": True, "override_reason": None,
        "source": "spec §8.3 I-1; simvastatin (Zocor) labelling, drug interactions: "
                  "https://uat.mimsdev.com/hongkong/drug/info/zocor/drug-interactions"}


async def test_an_empty_draft_has_no_findings(pool: asyncpg.Pool) -> None:
    assert await check(pool, await patient(pool, ADULT_MAN, allergies=["penicillin"]), []) == []
