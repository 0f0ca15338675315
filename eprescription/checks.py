"""Clinical decision support at prescribe time (spec §8): the findings a draft raises for drug interactions (CDS-1),
allergies (CDS-2), duplicate therapy (CDS-3), paediatric doses (CDS-4) and pregnancy (CDS-5), in Vietnamese.

Runs on every dry-run keystroke in the doctor console and on every signature, so everything it reads arrives with the
rest of what prescribing reads, in one round trip (SQL function ``clinical_check_data`` inside ``prescribing_facts``;
the shapes are in ``checks_db``), and the rest is a little Python over at most 30 lines.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterator, Sequence
from functools import lru_cache
from itertools import chain
from typing import NamedTuple
from uuid import UUID
from zoneinfo import ZoneInfo

import msgspec

from eprescription.checks_db import ActiveMedication, CheckData, DoseLimit, DraftDrug
from eprescription.schemas import Finding, Severity

_VN = ZoneInfo("Asia/Ho_Chi_Minh")
_RANK: dict[Severity, int] = {"contraindicated": 0, "major": 1, "moderate": 2, "minor": 3}

# VN-1.4: below this age the prescription must carry the child's weight
WEIGHT_REQUIRED_BELOW_MONTHS = 72
# CDS-5: the ages at which a woman may become pregnant, for the purpose of the warning (12 to 55 years)
CHILDBEARING_MONTHS = range(12 * 12, 56 * 12)
# CDS-4: a daily dose this many times the maximum is a dosing error (a unit or decimal slip), not a judgement call
DAILY_DOSE_BLOCK_FACTOR = 1.5


class CheckLine(msgspec.Struct):
    """One line of the draft, as the checks see it."""

    position: int  # 1-based draft line number
    drug_id: UUID
    dose_per_time: float  # in dose_unit
    dose_unit: str  # 'viên', 'gói', 'ml', 'nhát xịt', ...
    times_per_day: int
    days: int


class PatientFacts(msgspec.Struct):
    """What the checks need to know about the patient."""

    patient_id: UUID
    age_months: int | None  # None when the date of birth is unknown
    sex: str | None  # 'male' | 'female' | 'other' | None
    weight_kg: float | None
    allergies: list[str]  # allergy substances as typed, e.g. "penicillin", "Sulfamid"
    pregnancy_status: str  # 'unknown' | 'pregnant' | 'not_pregnant'


def clinical_findings(data: CheckData, patient: PatientFacts, lines: Sequence[CheckLine]) -> list[Finding]:
    """CDS-1..CDS-5 findings for a draft, most severe first, then by key, from ``data`` (clinical_check_data of the
    lines' drugs for this patient).

    Active medications are the lines of the patient's prescriptions that are issued, with a dispenser, partially
    dispensed or dispensed, until issue + the line's days, less the prescriptions the caller excluded when reading
    ``data`` (the one an amendment replaces). A finding's ``key`` names the problem, not the draft's layout, so an
    override still matches after an unrelated line is added; CDS-4 keys carry the line's position because a dose
    belongs to its line. Lines whose drug is not in the catalogue are ignored here (prescribing rejects them).
    """
    if not lines:
        return []
    draft = _draft(data, lines)
    found: dict[str, Finding] = {}
    for finding in chain(_interactions(draft), _allergies(draft), _duplicates(draft), _doses(draft, patient),
                         _pregnancy(draft, patient)):
        known = found.get(finding.key)
        if known is None:
            found[finding.key] = finding
        else:
            # the same problem met again through another line (a drug written twice): one finding, every line
            keep = finding if _RANK[finding.severity] < _RANK[known.severity] else known
            found[finding.key] = msgspec.structs.replace(keep, positions=sorted({*known.positions, *finding.positions}))
    return sorted(found.values(), key=lambda f: (_RANK[f.severity], f.key))


class _Draft(NamedTuple):
    data: CheckData
    lines: list[CheckLine]  # by position, catalogue drugs only
    drugs: dict[UUID, DraftDrug]
    positions: dict[UUID, list[int]]  # draft lines of each drug
    active: dict[UUID, list[ActiveMedication]]  # active medication lines by drug


def _draft(data: CheckData, lines: Sequence[CheckLine]) -> _Draft:
    drugs = {d.id: d for d in data.drugs}
    known = sorted((line for line in lines if line.drug_id in drugs), key=lambda line: line.position)
    positions: dict[UUID, list[int]] = defaultdict(list)
    for line in known:
        positions[line.drug_id].append(line.position)
    active: dict[UUID, list[ActiveMedication]] = defaultdict(list)
    for med in sorted(data.active, key=lambda m: (m.issued_at, m.code)):
        active[med.drug_id].append(med)
    return _Draft(data, known, drugs, positions, active)


def _finding(key: str, severity: Severity, title: str, detail: str, advice: str, positions: list[int],
             source: str, *, blocks: bool = False) -> Finding:
    return Finding(key=key, rule=key.split(":", 1)[0], severity=severity, title=title, detail=detail, advice=advice,
                   positions=positions, blocks_signing=blocks or severity == "contraindicated", source=source)


def _pair_key(rule: str, x: UUID, y: UUID) -> str:
    first, second = sorted((str(x), str(y)))
    return f"{rule}:{first}:{second}"


def _on_prescriptions(meds: list[ActiveMedication]) -> str:
    """'theo đơn 79026abcdefg-c (kê ngày 20/11/2026)', naming every prescription the drug is taken under."""
    written = dict.fromkeys(f"{m.code} (kê ngày {m.issued_at.astimezone(_VN):%d/%m/%Y})" for m in meds)
    return "theo đơn " + ", ".join(written)


def _num(value: float) -> str:
    """A number as Vietnamese writes it: decimal comma, at most two decimals."""
    return f"{value:.2f}".rstrip("0").rstrip(".").replace(".", ",")


# ------------------------------------------------------------------------------------------------- CDS-1

_INTERACTION_TITLE: dict[str, str] = {
    "contraindicated": "Chống chỉ định phối hợp", "major": "Tương tác thuốc nghiêm trọng",
    "moderate": "Tương tác thuốc mức trung bình", "minor": "Tương tác thuốc nhẹ"}


def _interactions(d: _Draft) -> Iterator[Finding]:
    """CDS-1: every interaction rule whose two sides name two draft drugs, or a draft drug and an active medication
    (class rules expand through drug_matches_side). Severity is the rule's; contraindicated blocks signing."""
    draft_ids, active_ids = set(d.drugs), set(d.active)
    for rule in d.data.interactions:
        severity = rule.severity
        a, b = set(rule.a_ids), set(rule.b_ids)
        for x in a & draft_ids:
            for y in b & draft_ids - {x}:
                first, second = sorted((d.drugs[x], d.drugs[y]), key=lambda drug: d.positions[drug.id][0])
                yield _finding(
                    _pair_key("CDS-1", x, y), severity,
                    f"{_INTERACTION_TITLE[severity]}: {first.inn} + {second.inn}", rule.effect_vi, rule.advice_vi,
                    sorted(d.positions[x] + d.positions[y]), rule.source_ref)
        for mine, theirs in ((a, b), (b, a)):
            for x in mine & draft_ids:
                for y in theirs & active_ids - {x}:
                    meds = d.active[y]
                    yield _finding(
                        f"CDS-1:{x}:active:{y}", severity,
                        f"{_INTERACTION_TITLE[severity]}: {d.drugs[x].inn} + {meds[0].inn} (thuốc đang dùng)",
                        f"{rule.effect_vi} Người bệnh đang dùng {meds[0].inn} {_on_prescriptions(meds)}.",
                        rule.advice_vi, list(d.positions[x]), rule.source_ref)


# ------------------------------------------------------------------------------------------------- CDS-2

_ALLERGY_ADVICE = ("Không kê thuốc này; chọn thuốc không chứa hoạt chất người bệnh đã dị ứng. Nếu tiền sử dị ứng "
                   "đáng ngờ, chuyển khám chuyên khoa dị ứng để đánh giá lại.")
_CROSS_REACTION_ADVICE = ("Cân nhắc thuốc nhóm khác; nếu vẫn dùng, hỏi kỹ loại phản ứng trước đây, theo dõi sau liều "
                          "đầu và dặn người bệnh các dấu hiệu dị ứng.")


def _names_ingredient(allergy_key: str, ingredient_key: str) -> bool:
    """Whether an allergy names an ingredient: the same key, or one of them is the other with a salt word before or
    after ('diclofenac' and 'diclofenac natri'), as drug_matches_side() treats interaction sides."""
    short, long = sorted((allergy_key, ingredient_key), key=len)
    return short == long or long.startswith(short + " ") or long.endswith(" " + short)


def _allergies(d: _Draft) -> Iterator[Finding]:
    """CDS-2: a draft drug against each recorded allergy. An allergy naming a drug class (curated in
    allergy_classes, e.g. "penicilin", "sulfamid", "NSAID") reaches the class's members with the member's severity
    (penicillin class: contraindicated; cephalosporins: moderate). Any other allergy is read as an ingredient: a drug
    containing it is contraindicated, a drug of the same ATC level-4 group as a catalogue drug containing it is a
    possible cross-reaction (major)."""
    hits = {(h.key, h.drug_id): h for h in d.data.class_hits}
    for allergen in d.data.allergens:
        for drug in d.drugs.values():
            key = f"CDS-2:{drug.id}:{allergen.key}"
            title = f"Dị ứng {allergen.substance}: {drug.inn}"
            history = f"Người bệnh có tiền sử dị ứng “{allergen.substance}”"
            if allergen.class_code is not None:
                hit = hits.get((allergen.key, drug.id))
                if hit is not None:
                    yield _finding(key, hit.severity, title,
                                   f"{history} ({allergen.class_label}). {hit.rationale_vi}", hit.advice_vi,
                                   list(d.positions[drug.id]), hit.source_ref)
                continue
            contained = next((drug.ingredients[i] for i, ingredient in enumerate(drug.allergy_keys)
                              if any(_names_ingredient(a, ingredient) for a in allergen.ingredient_keys)), None)
            if contained is not None:
                yield _finding(key, "contraindicated", title, f"{history}; {drug.inn} chứa {contained}.",
                               _ALLERGY_ADVICE, list(d.positions[drug.id]), "spec CDS-2 [U8]: ingredient match")
            elif len(drug.atc_code) >= 5 and drug.atc_code[:5] in allergen.groups:
                yield _finding(
                    key, "major", title,
                    f"{history}. {drug.inn} cùng nhóm ATC {drug.atc_code[:5]} với thuốc chứa chất này: có thể dị ứng "
                    "chéo.", _CROSS_REACTION_ADVICE, list(d.positions[drug.id]),
                    "spec CDS-2 [U8]: same ATC level-4 group as the allergen (WHO ATC/DDD index)")


# ------------------------------------------------------------------------------------------------- CDS-3

_DUPLICATE_SOURCE = "spec CDS-3; Leapfrog CPOE evaluation tool, therapeutic duplication [U9]; ATC: WHO ATC/DDD index"


class _Overlap(NamedTuple):
    severity: Severity
    title: str
    detail: str
    advice: str


def _overlap(x: DraftDrug | ActiveMedication, y: DraftDrug | ActiveMedication) -> _Overlap | None:
    names = f"{x.inn} {x.strength} + {y.inn} {y.strength}"
    shared = next((i for i in x.ingredients if i in y.ingredients), None)
    if shared is not None:
        return _Overlap("major", f"Trùng hoạt chất {shared}: {names}",
                        f"Cả hai thuốc đều chứa {shared}: tổng liều mỗi ngày có thể vượt mức an toàn.",
                        f"Bỏ thuốc trùng, hoặc bảo đảm tổng liều {shared} mỗi ngày không vượt liều tối đa.")
    group = x.atc_code[:5]
    if len(group) == 5 and y.atc_code.startswith(group):
        return _Overlap("moderate", f"Trùng nhóm thuốc (ATC {group}): {names}",
                        f"Hai thuốc cùng nhóm ATC {group}, cùng cơ chế và tác dụng phụ: dùng đồng thời hiếm khi thêm "
                        "lợi ích.", "Giữ một thuốc, trừ khi phối hợp là chủ đích điều trị.")
    if x.atc_code.startswith("M01A") and y.atc_code.startswith("M01A"):
        return _Overlap("moderate", f"Hai thuốc chống viêm không steroid (NSAID): {names}",
                        "Phối hợp hai NSAID không tăng hiệu quả giảm đau nhưng tăng nguy cơ loét, xuất huyết tiêu "
                        "hoá và tổn thương thận.", "Chỉ dùng một NSAID.")
    return None


def _duplicates(d: _Draft) -> Iterator[Finding]:
    """CDS-3: the same ingredient twice (two draft lines, a combination and a single drug, or a draft line and an
    active medication) is major; the same ATC level-4 group (two PPIs, A02BC) or two NSAIDs (level 3, M01A) is
    moderate."""
    for i, first in enumerate(d.lines):
        x = d.drugs[first.drug_id]
        for second in d.lines[i + 1:]:
            overlap = _overlap(x, d.drugs[second.drug_id])
            if overlap is not None:
                yield _finding(_pair_key("CDS-3", first.drug_id, second.drug_id), overlap.severity, overlap.title,
                               overlap.detail, overlap.advice, [first.position, second.position], _DUPLICATE_SOURCE)
        for y, meds in d.active.items():
            overlap = _overlap(x, meds[0])
            if overlap is not None:
                yield _finding(
                    f"CDS-3:{x.id}:active:{y}", overlap.severity, f"{overlap.title} (thuốc đang dùng)",
                    f"{overlap.detail} Người bệnh đang dùng {meds[0].inn} {_on_prescriptions(meds)}.",
                    f"{overlap.advice} Nếu đơn này thay thuốc đang dùng, dặn người bệnh ngừng thuốc cũ.",
                    [first.position], _DUPLICATE_SOURCE)


# ------------------------------------------------------------------------------------------------- CDS-4

_MASS_MG = {"g": 1000.0, "mg": 1.0, "mcg": 0.001, "µg": 0.001, "μg": 0.001}
_AMOUNT = re.compile(r"^(\d+(?:[.,]\d+)?)\s*(g|mg|mcg|µg|μg)$")
_PER = re.compile(r"^(\d+(?:[.,]\d+)?)?\s*(ml|liều)$")
# the dose units one "unit" of a strength such as "500 mg" stands for
_COUNTED_UNITS = frozenset({"viên", "gói", "ống"})


@lru_cache(maxsize=1024)
def _mg_per_unit(strength: str, dose_unit: str, ingredients: int) -> tuple[float, ...] | None:
    """mg of each ingredient in one ``dose_unit`` of a drug of this strength, or None when the two do not convert:
    "500 mg" per viên/gói/ống, "120 mg/5 ml" → 24 mg per ml, "100 mcg/liều" per nhát xịt, "500 mg/125 mg" per viên
    (one amount per ingredient, in order), "0,5 mg" with a decimal comma."""
    parts = [p.strip().lower() for p in strength.split("/")]
    per_amount, per_unit = 1.0, None
    last = _PER.match(parts[-1])
    if last is not None and len(parts) > 1:
        per_amount = float((last.group(1) or "1").replace(",", "."))
        per_unit = last.group(2)
        parts = parts[:-1]
    amounts = [_AMOUNT.match(p) for p in parts]
    if len(amounts) != ingredients or any(a is None for a in amounts) or per_amount <= 0:
        return None
    if (per_unit is None and dose_unit not in _COUNTED_UNITS) or (per_unit == "ml" and dose_unit != "ml") or (
            per_unit == "liều" and dose_unit != "nhát xịt"):
        return None
    return tuple(float(a.group(1).replace(",", ".")) * _MASS_MG[a.group(2)] / per_amount
                 for a in amounts if a is not None)


def _doses(d: _Draft, patient: PatientFacts) -> Iterator[Finding]:
    """CDS-4: paediatric doses in mg/kg against paediatric_dose_limits (only paracetamol has a sourced, illustrative
    limit, spec §9 U-11). A child under 72 months with no weight cannot have a weight-based dose checked: that blocks
    signing (VN-1.4). Over the maximum per dose, per day or doses per day is major; over 1.5 times the daily maximum is
    contraindicated. A dose that cannot be converted to mg is a minor finding saying it was not checked."""
    age = patient.age_months
    if age is None:
        return
    limits = {limit.ingredient: limit for limit in d.data.limits if age < limit.below_age_months}
    weight = patient.weight_kg
    if weight is None:
        if age < WEIGHT_REQUIRED_BELOW_MONTHS:
            needing = [line.position for line in d.lines if d.drugs[line.drug_id].weight_based_dosing
                       or any(i in limits for i in d.drugs[line.drug_id].ingredients)]
            if needing:
                yield _finding(
                    "CDS-4:no-weight", "major", "Thiếu cân nặng của trẻ dưới 72 tháng tuổi",
                    "Trẻ dưới 72 tháng tuổi phải có cân nặng trên đơn (VN-1.4); liều thuốc tính theo cân nặng chỉ kiểm "
                    "tra được khi có cân nặng.", "Cân trẻ và nhập cân nặng (kg) trước khi ký đơn.", needing,
                    "spec CDS-4; VN-1.4 (TT 26/2025)", blocks=True)
            return
        for line in d.lines:
            drug = d.drugs[line.drug_id]
            limited = next((limits[i] for i in drug.ingredients if i in limits), None)
            if limited is not None:
                yield _finding(f"CDS-4:{line.position}:{drug.id}:unchecked", "minor",
                               f"Chưa kiểm tra được liều {drug.inn}", "Chưa có cân nặng của trẻ.",
                               "Nhập cân nặng để kiểm tra liều theo mg/kg, hoặc tự đối chiếu liều với tờ hướng dẫn.",
                               [line.position], limited.source_ref)
        return
    daily: dict[str, list[tuple[int, float]]] = defaultdict(list)  # ingredient → (position, mg per day)
    flagged_daily: set[str] = set()
    for line in d.lines:
        drug = d.drugs[line.drug_id]
        applicable = [(n, limits[i]) for n, i in enumerate(drug.ingredients) if i in limits]
        if not applicable:
            continue
        per_unit = _mg_per_unit(drug.strength, line.dose_unit, len(drug.ingredients))
        if per_unit is None:
            yield _finding(f"CDS-4:{line.position}:{drug.id}:unchecked", "minor",
                           f"Chưa kiểm tra được liều {drug.inn}",
                           f"Không quy đổi được liều “{_num(line.dose_per_time)} {line.dose_unit}” của thuốc hàm lượng "
                           f"{drug.strength} sang mg.",
                           "Tự đối chiếu liều theo cân nặng với tờ hướng dẫn sử dụng.", [line.position],
                           applicable[0][1].source_ref)
            continue
        for n, limit in applicable:
            mg_per_dose = line.dose_per_time * per_unit[n]
            findings = list(_line_dose(line, drug, limit, mg_per_dose, weight))
            flagged_daily.update(limit.ingredient for f in findings if ":day" in f.key)
            daily[limit.ingredient].append((line.position, mg_per_dose * line.times_per_day))
            yield from findings
    for ingredient, parts in daily.items():
        if len(parts) > 1 and ingredient not in flagged_daily:
            yield from _combined_daily_dose(ingredient, limits[ingredient], parts, weight)


def _line_dose(line: CheckLine, drug: DraftDrug, limit: DoseLimit, mg_per_dose: float,
               weight: float) -> Iterator[Finding]:
    ingredient, position = limit.ingredient, [line.position]
    key = f"CDS-4:{line.position}:{drug.id}"
    # rounded so that exactly the maximum (7,5 ml x 24 mg/ml = 180 mg for 12 kg) is not over it by a float's error
    per_kg = round(mg_per_dose / weight, 6)
    per_kg_day = round(per_kg * line.times_per_day, 6)
    dose = f"Mỗi lần {_num(mg_per_dose)} mg = {_num(per_kg)} mg/kg (cân nặng {_num(weight)} kg)"
    low, high = limit.min_mg_per_kg_dose, limit.max_mg_per_kg_dose
    advised = (f"{_num(low)}–{_num(high)} mg/kg/lần ({_num(low * weight)}–{_num(high * weight)} mg)"
               if low is not None else f"tối đa {_num(high)} mg/kg/lần ({_num(high * weight)} mg)")
    if limit.max_doses_per_day is not None and line.times_per_day > limit.max_doses_per_day:
        yield _finding(f"{key}:frequency", "major",
                       f"Dùng {ingredient} quá {limit.max_doses_per_day} lần mỗi ngày: {drug.inn}",
                       f"Kê {line.times_per_day} lần/ngày; tối đa {limit.max_doses_per_day} lần trong 24 giờ.",
                       f"Giảm số lần dùng xuống tối đa {limit.max_doses_per_day} lần mỗi ngày.", position,
                       limit.source_ref)
    if per_kg > high:
        yield _finding(f"{key}:dose-high", "major", f"Liều {ingredient} mỗi lần vượt mức tối đa: {drug.inn}",
                       f"{dose}; khuyến cáo {advised}.", f"Giảm liều mỗi lần về {advised}.", position,
                       limit.source_ref)
    elif low is not None and per_kg < low:
        yield _finding(f"{key}:dose-low", "minor", f"Liều {ingredient} mỗi lần thấp hơn khuyến cáo: {drug.inn}",
                       f"{dose}; khuyến cáo {advised}.", f"Liều có hiệu quả: {advised}.", position, limit.source_ref)
    yield from _daily_dose(key, ingredient, drug.inn, limit, mg_per_dose * line.times_per_day, per_kg_day, weight,
                           position, "")


def _combined_daily_dose(ingredient: str, limit: DoseLimit, parts: list[tuple[int, float]],
                         weight: float) -> Iterator[Finding]:
    mg_day = sum(mg for _, mg in parts)
    yield from _daily_dose(f"CDS-4:total:{ingredient}", ingredient, ingredient, limit, mg_day,
                           round(mg_day / weight, 6), weight, sorted(p for p, _ in parts), " (cộng các dòng)")


def _daily_dose(key: str, ingredient: str, name: str, limit: DoseLimit, mg_day: float, per_kg_day: float,
                weight: float, positions: list[int], summed: str) -> Iterator[Finding]:
    maximum = limit.max_mg_per_kg_day
    if per_kg_day <= maximum:
        return
    very_high = per_kg_day > DAILY_DOSE_BLOCK_FACTOR * maximum
    yield _finding(
        f"{key}:{'day-very-high' if very_high else 'day-high'}", "contraindicated" if very_high else "major",
        f"Tổng liều {ingredient} mỗi ngày{summed} vượt "
        f"{'quá 1,5 lần ' if very_high else ''}mức tối đa: {name}",
        f"Mỗi ngày{summed} {_num(mg_day)} mg = {_num(per_kg_day)} mg/kg (cân nặng {_num(weight)} kg); tối đa "
        f"{_num(maximum)} mg/kg/ngày ({_num(maximum * weight)} mg).",
        f"Giảm liều hoặc số lần dùng để tổng liều {ingredient} mỗi ngày không quá {_num(maximum * weight)} mg.",
        positions, limit.source_ref)


# ------------------------------------------------------------------------------------------------- CDS-5

_PREGNANCY_SEVERITY: dict[tuple[str, str], Severity] = {
    ("pregnant", "block"): "contraindicated", ("pregnant", "warn"): "major",
    ("unknown", "block"): "major", ("unknown", "warn"): "moderate",
    ("not_pregnant", "block"): "moderate"}
_PREGNANCY_TEXT: dict[tuple[str, str], tuple[str, str]] = {  # (title prefix, advice)
    ("pregnant", "block"): ("Chống chỉ định khi có thai", "Không kê; chọn thuốc khác an toàn cho thai."),
    ("pregnant", "warn"): ("Thuốc có hại cho thai",
                           "Tránh dùng; chọn thuốc thay thế. Chỉ dùng khi lợi ích rõ ràng vượt nguy cơ, đã trao đổi "
                           "với người bệnh, và ghi lý do."),
    ("unknown", "block"): ("Cần loại trừ có thai trước khi kê",
                           "Xác định người bệnh không có thai (thử thai) và bảo đảm người bệnh dùng biện pháp tránh "
                           "thai hiệu quả theo chương trình phòng tránh thai của thuốc; ghi nhận tình trạng thai vào "
                           "đơn."),
    ("unknown", "warn"): ("Thuốc có hại cho thai, chưa rõ tình trạng thai",
                          "Hỏi khả năng có thai và ghi nhận vào đơn; tư vấn biện pháp tránh thai trong thời gian dùng "
                          "thuốc."),
    ("not_pregnant", "block"): ("Nhắc tránh thai khi dùng thuốc",
                                "Nhắc người bệnh dùng biện pháp tránh thai hiệu quả trong và sau đợt điều trị theo "
                                "hướng dẫn của thuốc."),
}
_PREGNANCY_CONTEXT = {
    "pregnant": "Người bệnh đang mang thai.",
    "unknown": "Người bệnh là nữ trong độ tuổi sinh đẻ, chưa ghi nhận có thai hay không.",
    "not_pregnant": "Người bệnh là nữ trong độ tuổi sinh đẻ, hiện không mang thai.",
}


def _pregnancy(d: _Draft, patient: PatientFacts) -> Iterator[Finding]:
    """CDS-5: drugs flagged pregnancy_warning 'block' (isotretinoin, misoprostol) or 'warn' (valproate, warfarin, ACE
    inhibitors, ARBs), for a woman aged 12-55 (or of unknown age), and for anyone recorded as pregnant who is not
    male. Pregnant: block → contraindicated, warn → major; status unknown: block → major (rule out pregnancy,
    pregnancy-prevention programme), warn → moderate; not pregnant: block → moderate reminder, warn → nothing."""
    if patient.sex == "male":
        return
    status = patient.pregnancy_status
    childbearing = patient.sex == "female" and (patient.age_months is None
                                                or patient.age_months in CHILDBEARING_MONTHS)
    if status != "pregnant" and not childbearing:
        return
    for drug in d.drugs.values():
        severity = _PREGNANCY_SEVERITY.get((status, drug.pregnancy_warning))
        if severity is None:
            continue
        title, advice = _PREGNANCY_TEXT[status, drug.pregnancy_warning]
        risk = drug.pregnancy_risk or "Thuốc có nguy cơ gây hại cho thai."
        yield _finding(f"CDS-5:{drug.id}", severity, f"{title}: {drug.inn}", f"{risk} {_PREGNANCY_CONTEXT[status]}",
                       advice, list(d.positions[drug.id]), drug.pregnancy_source or "spec CDS-5 [U11] [U12]")
