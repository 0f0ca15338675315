"""Wire shapes of doctors, schedules, bookings, the doctor's queue and the consultation record."""

from __future__ import annotations

from datetime import date, datetime, time
from typing import Annotated, Literal
from uuid import UUID

import msgspec

from api.auth.schemas import Strict
from api.patients.schemas import Allergy, Sex

# awaiting_payment: a paid booking holds its slot until the fee is paid (then booked) or its payment deadline
# passes unpaid (payment_expired, the slot is free again)
ConsultationStatus = Literal["awaiting_payment", "booked", "waiting", "in_call", "completed", "cancelled_by_patient",
                             "cancelled_by_doctor", "no_show", "payment_expired"]
Icd10Code = Annotated[str, msgspec.Meta(pattern=r"^[A-TV-Z][0-9]{2}(\.[0-9A-Z]{1,2})?$", examples=["J00"])]
Text = Annotated[str, msgspec.Meta(max_length=10000)]


class DoctorSummary(msgspec.Struct):
    id: UUID
    full_name: str
    title: str
    specialty_code: str
    specialty_name: str
    facility_name: str
    languages: list[str]
    fee_vnd: int
    slot_minutes: int
    accepts_bookings: bool


class DoctorPage(msgspec.Struct):
    items: list[DoctorSummary]
    total: int


class DoctorProfilePatch(Strict):
    specialty_code: Annotated[str, msgspec.Meta(pattern=r"^[a-z_]{2,40}$")] | msgspec.UnsetType = msgspec.UNSET
    bio: Annotated[str, msgspec.Meta(max_length=2000)] | msgspec.UnsetType = msgspec.UNSET
    languages: Annotated[list[Annotated[str, msgspec.Meta(pattern=r"^[a-z]{2}$")]],
                         msgspec.Meta(min_length=1, max_length=10)] | msgspec.UnsetType = msgspec.UNSET
    fee_vnd: Annotated[int, msgspec.Meta(ge=0, le=100_000_000)] | msgspec.UnsetType = msgspec.UNSET
    slot_minutes: Annotated[int, msgspec.Meta(ge=10, le=120)] | msgspec.UnsetType = msgspec.UNSET
    accepts_bookings: bool | msgspec.UnsetType = msgspec.UNSET


class AvailabilityRule(Strict):
    weekday: Annotated[int, msgspec.Meta(ge=1, le=7, description="ISO weekday, 1 = Monday")]
    start_time: time
    end_time: time
    valid_from: date | None = None
    valid_until: date | None = None


class WeeklySchedule(Strict):
    """Replaces the doctor's weekly rules; times are Vietnam local time (Asia/Ho_Chi_Minh)."""

    rules: Annotated[list[AvailabilityRule], msgspec.Meta(max_length=100)]


class ScheduleExceptionIn(Strict):
    kind: Literal["leave", "extra"]
    starts_at: datetime
    ends_at: datetime
    reason: Annotated[str, msgspec.Meta(max_length=300)] = ""


class ScheduleException(msgspec.Struct):
    id: UUID
    kind: Literal["leave", "extra"]
    starts_at: datetime
    ends_at: datetime
    reason: str


class Schedule(msgspec.Struct):
    rules: list[AvailabilityRule]
    exceptions: list[ScheduleException]


class Slot(msgspec.Struct):
    starts_at: datetime
    ends_at: datetime


class BookingIn(Strict):
    doctor_id: UUID
    starts_at: datetime
    reason: Annotated[str, msgspec.Meta(min_length=1, max_length=1000)]
    patient_id: UUID | None = None  # a child's id when a guardian books for them
    telemedicine_icd10: Icd10Code | None = None  # the TT 30/2023 condition, when the visit is for treatment


class Consultation(msgspec.Struct):
    id: UUID
    doctor_id: UUID
    doctor_name: str
    patient_id: UUID
    patient_name: str
    booked_by: UUID
    starts_at: datetime
    ends_at: datetime
    status: ConsultationStatus
    reason: str
    telemedicine_icd10: str | None
    fee_vnd: int
    checked_in_at: datetime | None
    call_started_at: datetime | None
    call_ended_at: datetime | None
    cancelled_at: datetime | None
    cancel_reason: str | None
    late_cancellation: bool
    refund_due: bool
    payment_due_at: datetime | None  # while awaiting_payment: pay before this or the slot is released


class CancelIn(Strict):
    reason: Annotated[str, msgspec.Meta(min_length=1, max_length=500)]


class QueueEntry(msgspec.Struct):
    consultation_id: UUID
    starts_at: datetime
    ends_at: datetime
    status: ConsultationStatus
    patient_id: UUID
    patient_name: str
    patient_date_of_birth: date | None
    reason: str
    waiting_since: datetime | None
    call_started_at: datetime | None


class DiagnosisIn(Strict):
    code: Icd10Code
    is_principal: bool = False


class RecordIn(Strict):
    subjective: Text = ""
    objective: Text = ""
    assessment: Text = ""
    plan: Text = ""
    advice: Annotated[str, msgspec.Meta(max_length=4000)] = ""
    follow_up_days: Annotated[int, msgspec.Meta(ge=1, le=365)] | None = None
    diagnoses: Annotated[list[DiagnosisIn], msgspec.Meta(max_length=20)] = []


class Diagnosis(msgspec.Struct):
    code: str
    name: str
    is_principal: bool


class CallQuality(msgspec.Struct):
    samples: int
    avg_rtt_ms: float | None
    max_loss_pct: float | None
    avg_jitter_ms: float | None
    avg_in_kbps: float | None


class ConsultationRecord(msgspec.Struct):
    """What the treating doctor sees."""

    consultation_id: UUID
    subjective: str
    objective: str
    assessment: str
    plan: str
    advice: str
    follow_up_days: int | None
    diagnoses: list[Diagnosis]
    call_duration_s: int | None
    call_quality: CallQuality
    updated_at: datetime | None


class ConsultationSummary(msgspec.Struct):
    """What the patient reads: diagnoses and advice, not the doctor's working notes."""

    consultation_id: UUID
    doctor_name: str
    diagnoses: list[Diagnosis]
    advice: str
    follow_up_days: int | None
    call_duration_s: int | None


class Icd10(msgspec.Struct):
    code: str
    title_vi: str
    title_en: str
    telemedicine_tt30: bool


class HistoryPatient(msgspec.Struct):
    id: UUID
    full_name: str
    date_of_birth: date | None
    sex: Sex | None
    weight_kg: float | None
    allergies: list[Allergy]


class PastConsultation(msgspec.Struct):
    id: UUID
    starts_at: datetime  # Vietnam time
    status: ConsultationStatus
    doctor_name: str
    reason: str
    diagnoses: list[Diagnosis]
    advice: str


class PastPrescriptionLine(msgspec.Struct):
    drug_name: str
    strength: str
    dose_per_time: float
    dose_unit: str
    times_per_day: int
    days: int
    quantity: int
    quantity_unit: str


class PastPrescription(msgspec.Struct):
    id: UUID
    code: str | None
    status: str
    issued_at: datetime | None  # Vietnam time
    doctor_name: str
    diagnoses: list[str]  # ICD-10 codes
    lines: list[PastPrescriptionLine]


class PatientHistory(msgspec.Struct):
    """What the treating doctor needs before prescribing: allergies, earlier visits and signed prescriptions (any
    doctor's, newest first; drafts are private to their author and left out)."""

    patient: HistoryPatient
    consultations: list[PastConsultation]
    prescriptions: list[PastPrescription]
