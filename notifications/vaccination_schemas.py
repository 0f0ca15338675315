"""Wire shapes of the vaccination record: doses in and out, the record with its plan, the schedule catalogue."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Literal
from uuid import UUID

import msgspec

from api.auth.schemas import Strict
from notifications.vaccination import Catalogue, DoseWarning, SeriesPlan

VaccineCode = Annotated[str, msgspec.Meta(pattern=r"^[A-Z][A-Z0-9_]{1,30}$", examples=["DTP_HEPB_HIB"])]
DoseSource = Literal["guardian", "patient", "clinician"]


class DoseIn(Strict):
    vaccine: VaccineCode
    dose_number: Annotated[int, msgspec.Meta(ge=0, le=20)]
    given_on: date
    place: Annotated[str, msgspec.Meta(max_length=300, examples=["Trạm Y tế phường Bến Nghé"])] = ""
    lot: Annotated[str, msgspec.Meta(max_length=100)] = ""


class EnteredInErrorIn(Strict):
    reason: Annotated[str, msgspec.Meta(min_length=3, max_length=500, examples=["Nhập nhầm mũi"])]


class Dose(msgspec.Struct):
    id: UUID
    vaccine: str
    vaccine_name: str
    series: str
    dose_number: int
    given_on: date
    place: str
    lot: str
    source: DoseSource
    recorded_by: UUID
    recorded_at: datetime
    entered_in_error_at: datetime | None
    entered_in_error_reason: str | None


class VaccinationRecord(msgspec.Struct):
    """Doses (entered-in-error ones included, marked) and the plan computed from the ones that count.

    Dates are Vietnam local dates. The plan is a reminder aid, not a prescription: every dose needs the
    pre-vaccination screening (khám sàng lọc trước tiêm, QĐ 1575/QĐ-BYT) and the schedule data awaits clinical review.
    """

    patient_id: UUID
    date_of_birth: date | None
    as_of: date
    doses: list[Dose]
    plan: list[SeriesPlan]


class DoseRecorded(msgspec.Struct):
    dose: Dose
    warnings: list[DoseWarning]
    record: VaccinationRecord


__all__ = ["Catalogue", "Dose", "DoseIn", "DoseRecorded", "EnteredInErrorIn", "VaccinationRecord"]
