"""The hard prescribing rules: a prescription that breaks one cannot be signed (spec CDS-6: not warnings).

Pure functions over facts the service has loaded; each problem names its rule id and the field path, so the console
can point at the line. Rule ids are those of ``../shared/specs/eprescription.md``.
"""

from __future__ import annotations

import math
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import msgspec

from eprescription.codes import prescription_type
from eprescription.schemas import RuleProblem

VN = ZoneInfo("Asia/Ho_Chi_Minh")

# VN-2.1/2.2 (§9 U-2, U-3): drugs may be obtained on the issue day and the 4 days after it, until 23:59:59
# Vietnam time: "within 05 days of the prescribing date" counted the safer way, including the issue day.
VALIDITY_CALENDAR_DAYS = 5
# VN-2.3; VN-2.4 allows 90 days for the chronic diseases of TT 26 Phụ lục VII, whose ICD-10 list has not been
# transcribed (§9 U-4), so every prescription is capped at 30 days until it is.
MAX_DAYS_GENERAL = 30
MAX_DAYS_NARCOTIC = 7  # VN-2.5, acute; the cancer-pain batches (3 × 10 days) are not supported
MAX_DAYS_PSYCHOTROPIC_ACUTE = 10  # VN-2.6
MAX_DAYS_PSYCHOTROPIC_LONG_TERM = 30  # VN-2.6
CHILD_MONTHS = 72  # VN-1.4
# VN-1.8: a dose counted in these units is dispensed in a container; the quantity is the number of containers
CONTAINER_UNITS = frozenset({"chai", "lọ", "bình", "tuýp"})
MEASURED_UNITS = frozenset({"ml", "giọt", "nhát xịt"})


class LineFacts(msgspec.Struct):
    position: int
    drug_id: str
    drug_name: str
    control_class: str
    is_medicine: bool
    active: bool
    dose_per_time: float
    dose_unit: str
    times_per_day: int
    days: int
    quantity: int
    quantity_unit: str


class DiagnosisFacts(msgspec.Struct):
    code: str
    known: bool  # in our ICD-10 table
    telemedicine_tt30: bool  # TM-5: the code or one of its parents is on the TT 30/2023 list


class DraftFacts(msgspec.Struct):
    telemedicine: bool
    controlled_drugs_allowed: bool  # LIENTHONG_TELEMEDICINE_CONTROLLED_DRUGS
    age_months: int | None
    date_of_birth: date | None
    weight_kg: float | None
    address: str
    has_guardian: bool
    long_term: bool
    diagnoses: list[DiagnosisFacts]
    lines: list[LineFacts]
    open_c_prescription_code: str | None  # VN-1.10: another open C prescription of the same consultation


def valid_until(issued_at: datetime) -> datetime:
    """VN-2.2: the last instant of the 5th calendar day (Vietnam time), counting the issue day, returned in UTC."""
    issue_day = issued_at.astimezone(VN).date()
    last_day = issue_day + timedelta(days=VALIDITY_CALENDAR_DAYS - 1)
    return (datetime.combine(last_day + timedelta(days=1), time(0), VN) - timedelta(microseconds=1)).astimezone(UTC)


def age_in_months(date_of_birth: date, on: date) -> int:
    months = (on.year - date_of_birth.year) * 12 + on.month - date_of_birth.month
    return months - (1 if on.day < date_of_birth.day else 0)


def required_quantity(dose_per_time: float, times_per_day: int, days: int) -> int:
    """VN-1.8: whole units for the course. Rounded to 3 decimals first so 0.1 × 3 × 10 is 3, not 4."""
    return math.ceil(round(dose_per_time * times_per_day * days, 3))


def problems(facts: DraftFacts) -> list[RuleProblem]:
    found: list[RuleProblem] = []
    found += _diagnoses(facts)
    found += _patient(facts)
    found += _lines(facts)
    return found


def _diagnoses(facts: DraftFacts) -> list[RuleProblem]:
    if not facts.diagnoses:
        return [RuleProblem("VN-1.6", "diagnoses", "Cần ít nhất một chẩn đoán có mã ICD-10 (VN-1.6). "
                                                   "At least one ICD-10 diagnosis is required.")]
    found = [RuleProblem("VN-1.6", f"diagnoses[{i}].code", f"Mã ICD-10 {d.code} không có trong danh mục. "
                                                          f"Unknown ICD-10 code {d.code}.")
             for i, d in enumerate(facts.diagnoses) if not d.known]
    principal = facts.diagnoses[0]
    if facts.telemedicine and principal.known and not principal.telemedicine_tt30:
        found.append(RuleProblem(
            "TM-5", "diagnoses[0].code",
            f"Chẩn đoán chính {principal.code} không thuộc danh mục bệnh được chữa bệnh từ xa (TT 30/2023/TT-BYT): "
            "chỉ tư vấn hoặc hẹn khám trực tiếp, không kê đơn điều trị. The principal diagnosis is not on the "
            "TT 30/2023 telemedicine list; advise or book an in-person visit instead."))
    return found


def _patient(facts: DraftFacts) -> list[RuleProblem]:
    found = []
    if facts.date_of_birth is None:
        found.append(RuleProblem("VN-1.5", "patient.date_of_birth",
                                 "Thiếu ngày sinh của người bệnh. The patient's date of birth is required."))
    if not facts.address.strip():
        found.append(RuleProblem("VN-1.3", "patient.address",
                                 "Thiếu nơi cư trú của người bệnh. The patient's place of residence is required."))
    if facts.age_months is not None and facts.age_months < CHILD_MONTHS:
        if facts.weight_kg is None:
            found.append(RuleProblem("VN-1.4", "weight_kg",
                                     "Trẻ dưới 72 tháng tuổi: phải ghi cân nặng. A child under 72 months needs "
                                     "a body weight."))
        if not facts.has_guardian:
            found.append(RuleProblem("VN-1.4", "patient.guardian",
                                     "Trẻ dưới 72 tháng tuổi: phải có người giám hộ/đưa trẻ đi khám. A child "
                                     "under 72 months needs the name of the guardian."))
    return found


def _lines(facts: DraftFacts) -> list[RuleProblem]:
    if not facts.lines:
        return [RuleProblem("VN-1.8", "lines", "Đơn thuốc chưa có thuốc nào. The prescription has no lines.")]
    found: list[RuleProblem] = []
    types = {prescription_type([line.control_class]) for line in facts.lines}  # type: ignore[list-item]
    if len(types) > 1:
        found.append(RuleProblem(
            "VN-3.1", "lines", "Không kê chung thuốc thường, gây nghiện (N) và hướng thần/tiền chất (H) trong một "
            "đơn; tách thành các đơn riêng. Normal, narcotic and psychotropic drugs go on separate prescriptions."))
    for i, line in enumerate(facts.lines):
        at = f"lines[{i}]"
        if not line.is_medicine:
            found.append(RuleProblem("VN-1.11", f"{at}.drug_id", f"{line.drug_name} không phải là thuốc (thực "
                                     "phẩm chức năng...) nên không được kê đơn. Not a medicine; it cannot be "
                                     "prescribed."))
        if not line.active:
            found.append(RuleProblem("catalogue", f"{at}.drug_id", f"{line.drug_name} đã bị rút khỏi danh mục. "
                                     "The drug was withdrawn from the catalogue."))
        if line.control_class != "none" and facts.telemedicine and not facts.controlled_drugs_allowed:
            found.append(RuleProblem("TM-4", f"{at}.drug_id", f"{line.drug_name} là thuốc gây nghiện/hướng thần/"
                                     "tiền chất: không kê trong khám chữa bệnh từ xa. Narcotic and psychotropic "
                                     "drugs are not prescribed in telemedicine consultations."))
        found += _duration(facts, line, at)
        found += _quantity(line, at)
    if facts.open_c_prescription_code is not None and types == {"c"}:
        found.append(RuleProblem(
            "VN-1.10", "consultation_id", f"Lần khám này đã có đơn thuốc thường {facts.open_c_prescription_code}; "
            "sửa đơn đó (tạo đơn thay thế) thay vì kê đơn thứ hai. This consultation already has an open normal "
            "prescription; amend it instead."))
    return found


def _duration(facts: DraftFacts, line: LineFacts, at: str) -> list[RuleProblem]:
    if line.control_class == "narcotic" and line.days > MAX_DAYS_NARCOTIC:
        return [RuleProblem("VN-2.5", f"{at}.days", f"Thuốc gây nghiện kê tối đa {MAX_DAYS_NARCOTIC} ngày. "
                            f"Narcotics: at most {MAX_DAYS_NARCOTIC} days.")]
    if line.control_class in ("psychotropic", "precursor"):
        cap = MAX_DAYS_PSYCHOTROPIC_LONG_TERM if facts.long_term else MAX_DAYS_PSYCHOTROPIC_ACUTE
        if line.days > cap:
            return [RuleProblem("VN-2.6", f"{at}.days", f"Thuốc hướng thần/tiền chất kê tối đa {cap} ngày"
                                f"{' (điều trị dài ngày)' if facts.long_term else ''}. At most {cap} days.")]
    if line.days > MAX_DAYS_GENERAL:
        return [RuleProblem("VN-2.3", f"{at}.days", f"Mỗi đơn kê tối đa {MAX_DAYS_GENERAL} ngày điều trị. "
                            f"At most {MAX_DAYS_GENERAL} days of treatment per prescription.")]
    return []


def _quantity(line: LineFacts, at: str) -> list[RuleProblem]:
    if line.quantity_unit == line.dose_unit:
        needed = required_quantity(line.dose_per_time, line.times_per_day, line.days)
        if line.quantity != needed:
            return [RuleProblem(
                "VN-1.8", f"{at}.quantity",
                f"Số lượng {line.quantity} {line.quantity_unit} không khớp liều dùng: mỗi lần "
                f"{_number(line.dose_per_time)} × ngày {line.times_per_day} lần × {line.days} ngày = {needed} "
                f"{line.quantity_unit}. The quantity must equal dose × times per day × days ({needed}).")]
        return []
    if line.dose_unit in MEASURED_UNITS and line.quantity_unit in CONTAINER_UNITS:
        return []  # syrup in ml from a bottle, puffs from an inhaler: the pack size decides, not arithmetic
    return [RuleProblem("VN-1.8", f"{at}.quantity_unit",
                        f"Đơn vị số lượng ({line.quantity_unit}) phải trùng đơn vị liều ({line.dose_unit}), hoặc là "
                        "chai/lọ/bình/tuýp cho liều tính theo ml, giọt, nhát xịt. The quantity unit must match the "
                        "dose unit.")]


def _number(value: float) -> str:
    return f"{value:g}".replace(".", ",")


def instructions(dose_per_time: float, dose_unit: str, times_per_day: int, usage: str) -> str:
    """VN-1.8/VN-1.9 as printed: "mỗi lần 01 viên, ngày 02 lần", numbers under 10 with a leading zero."""
    def padded(value: float) -> str:
        text = _number(value)
        return f"0{text}" if value < 10 and value == int(value) else text
    text = f"Mỗi lần {padded(dose_per_time)} {dose_unit}, ngày {padded(times_per_day)} lần"
    return f"{text}. {usage}" if usage else text
