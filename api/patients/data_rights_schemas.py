"""Wire shapes of the data subject's rights (Decree 13/2023/NĐ-CP): the export of everything held about a person, and
the erasure request and its outcome. Times are shown in Asia/Ho_Chi_Minh (+07:00)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Literal
from uuid import UUID

import msgspec

from api.auth.schemas import Strict
from api.patients.schemas import Allergy
from notifications.vaccination import SeriesPlan
from notifications.vaccination_schemas import Dose


class SignInCode(msgspec.Struct):
    sent_at: datetime
    client_ip: str | None
    used: bool


class SignIn(msgspec.Struct):
    started_at: datetime
    expires_at: datetime
    ended_at: datetime | None


class Device(msgspec.Struct):
    platform: str
    app_version: str
    target: str  # masked: enough to recognise the installation, not enough to push to it
    registered_at: datetime
    last_seen_at: datetime
    disabled_at: datetime | None


class NotificationPreference(msgspec.Struct):
    category: str
    channel: str
    enabled: bool
    updated_at: datetime


class NotificationSent(msgspec.Struct):
    kind: str
    category: str
    channel: str
    status: str
    created_at: datetime
    sent_at: datetime | None


class Account(msgspec.Struct):
    """The sign-in identity. Absent for a child without an account of their own."""

    account_id: UUID
    phone: str | None
    status: str
    created_at: datetime
    erased_at: datetime | None
    sign_in_codes: list[SignInCode]
    sign_ins: list[SignIn]
    devices: list[Device]
    notification_preferences: list[NotificationPreference]
    notifications: list[NotificationSent]


class GuardianLink(msgspec.Struct):
    patient_id: UUID
    full_name: str
    relationship: str
    since: datetime


class Profile(msgspec.Struct):
    id: UUID
    full_name: str
    date_of_birth: date | None
    sex: str | None
    citizen_id: str | None
    health_insurance_number: str | None
    address: str
    allergies: list[Allergy]
    weight_kg: float | None
    created_at: datetime
    updated_at: datetime
    anonymised_at: datetime | None
    guardians: list[GuardianLink]
    dependents: list[GuardianLink]


class Consent(msgspec.Struct):
    kind: str
    version: str
    granted: bool
    recorded_at: datetime
    recorded_by_self: bool
    client_ip: str | None  # only when the person recorded it themselves: otherwise it is someone else's address


class Diagnosis(msgspec.Struct):
    code: str
    name: str
    is_principal: bool


class ChatMessage(msgspec.Struct):
    sender_role: str
    body: str
    sent_at: datetime


class Recording(msgspec.Struct):
    role: str
    status: str
    started_at: datetime
    ended_at: datetime | None
    duration_s: float | None


class Consultation(msgspec.Struct):
    """The visit and its summary (diagnoses, advice), as the patient reads it in the app; the doctor's working notes
    are part of the facility's medical record and are copied through its own procedure."""

    id: UUID
    doctor: str
    starts_at: datetime
    ends_at: datetime
    status: str
    reason: str
    telemedicine_icd10: str | None
    fee_vnd: int
    booked_at: datetime
    booked_by_self: bool
    checked_in_at: datetime | None
    call_started_at: datetime | None
    call_ended_at: datetime | None
    cancelled_at: datetime | None
    cancel_reason: str | None
    diagnoses: list[Diagnosis]
    advice: str | None
    follow_up_days: int | None
    chat: list[ChatMessage]
    recordings: list[Recording]


class PrescriptionLine(msgspec.Struct):
    position: int
    drug_name: str
    strength: str
    dosage_form: str
    dose_per_time: float
    dose_unit: str
    times_per_day: int
    days: int
    quantity: int
    quantity_unit: str
    route: str
    usage: str
    dispensed_quantity: int


class DispenseLine(msgspec.Struct):
    position: int
    drug: str
    substituted: bool
    quantity: int
    lot_number: str
    expiry_date: date
    unit_price_vnd: int


class Dispense(msgspec.Struct):
    id: UUID
    pharmacy: str
    dispensed_at: datetime
    recipient_name: str
    total_vnd: int
    voided_at: datetime | None
    lines: list[DispenseLine]


class Prescription(msgspec.Struct):
    id: UUID
    code: str
    status: str
    rx_type: str
    consultation_id: UUID
    doctor: str
    issued_at: datetime
    valid_until: datetime
    diagnoses: list[dict[str, Any]]
    advice: str
    note: str
    follow_up_days: int | None
    weight_kg: float | None
    cancelled_at: datetime | None
    cancel_reason: str | None
    lines: list[PrescriptionLine]
    dispenses: list[Dispense]


class Refund(msgspec.Struct):
    amount_vnd: int
    status: str
    reason: str
    requested_at: datetime


class Payment(msgspec.Struct):
    id: UUID
    txn_ref: str
    purpose: str
    consultation_id: UUID | None
    dispense_id: UUID | None
    amount_vnd: int
    status: str
    created_at: datetime
    paid_at: datetime | None
    bank_code: str | None
    card_type: str | None
    refunded_vnd: int
    refunds: list[Refund]


class Vaccination(msgspec.Struct):
    doses: list[Dose]
    plan: list[SeriesPlan]


class AccessEntry(msgspec.Struct):
    """Who touched the record: the action, the actor's role and when; never the other person's identity."""

    at: datetime
    action: str
    actor_role: str | None
    by_self: bool


class DataExport(msgspec.Struct):
    """Every personal datum Lienthong holds about one person (Decree 13/2023/NĐ-CP Art. 9, 14)."""

    exported_at: datetime
    patient_id: UUID
    account: Account | None
    profile: Profile
    consents: list[Consent]
    consultations: list[Consultation]
    prescriptions: list[Prescription]
    payments: list[Payment]
    vaccination: Vaccination
    access_log: list[AccessEntry]
    note: str


class ErasureIn(Strict):
    """Erasure cannot be undone: the caller confirms it in so many words."""

    confirm: Literal["erase my account"]


class ErasureOutcome(msgspec.Struct):
    account_id: UUID
    patient_id: UUID
    erased_at: datetime
    profile_anonymised: bool
    erased: list[str]
    retained: list[str]
