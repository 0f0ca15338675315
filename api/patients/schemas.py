"""Wire shapes for patient profiles, dependents, consents and the access log."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Literal
from uuid import UUID

import msgspec

from api.auth.schemas import Strict

Sex = Literal["male", "female", "other"]
CitizenId = Annotated[str, msgspec.Meta(pattern=r"^[0-9]{12}$", description="12-digit citizen ID (CCCD)")]
InsuranceNumber = Annotated[str, msgspec.Meta(pattern=r"^[A-Z]{2}[0-9]{13}$|^[0-9]{10}$",
                                             description="BHYT card number (15 chars) or 10-digit social ID")]
Name = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
Address = Annotated[str, msgspec.Meta(max_length=500)]
WeightKg = Annotated[float, msgspec.Meta(gt=0, lt=500)]
ConsentKind = Literal["telemedicine_terms", "data_processing"]


class Allergy(msgspec.Struct, forbid_unknown_fields=True):
    substance: Annotated[str, msgspec.Meta(min_length=1, max_length=100, examples=["penicillin"])]
    reaction: Annotated[str, msgspec.Meta(max_length=200)] | None = None
    severity: Literal["mild", "moderate", "severe"] | None = None


class PatientProfile(msgspec.Struct):
    id: UUID
    full_name: str
    date_of_birth: date | None
    sex: Sex | None
    citizen_id: str | None
    address: str
    health_insurance_number: str | None
    allergies: list[Allergy]
    weight_kg: float | None
    is_dependent: bool
    updated_at: datetime


class PatientPatch(Strict):
    """Only the fields present change; send null to clear an optional field."""

    full_name: Name | msgspec.UnsetType = msgspec.UNSET
    date_of_birth: date | msgspec.UnsetType | None = msgspec.UNSET
    sex: Sex | msgspec.UnsetType | None = msgspec.UNSET
    citizen_id: CitizenId | msgspec.UnsetType | None = msgspec.UNSET
    address: Address | msgspec.UnsetType = msgspec.UNSET
    health_insurance_number: InsuranceNumber | msgspec.UnsetType | None = msgspec.UNSET
    allergies: Annotated[list[Allergy], msgspec.Meta(max_length=50)] | msgspec.UnsetType = msgspec.UNSET
    weight_kg: WeightKg | msgspec.UnsetType | None = msgspec.UNSET


class DependentIn(Strict):
    full_name: Name
    date_of_birth: date
    relationship: Literal["parent", "legal_guardian"] = "parent"
    sex: Sex | None = None
    citizen_id: CitizenId | None = None
    weight_kg: WeightKg | None = None
    allergies: Annotated[list[Allergy], msgspec.Meta(max_length=50)] = []


class Me(msgspec.Struct):
    account_id: UUID
    role: str
    full_name: str
    phone: str | None
    username: str | None
    patient: PatientProfile | None
    facility_id: UUID | None
    pharmacy_id: UUID | None


class ConsentDocument(msgspec.Struct):
    kind: ConsentKind
    version: str
    title: str
    body: str
    effective_at: datetime


class ConsentIn(Strict):
    kind: ConsentKind
    version: Annotated[str, msgspec.Meta(pattern=r"^[0-9]{4}-[0-9]{2}(\.[0-9]+)?$")]
    granted: bool
    patient_id: UUID | None = None  # a dependent's id when a guardian consents for a child


class ConsentRecord(msgspec.Struct):
    id: UUID
    patient_id: UUID
    kind: ConsentKind
    version: str
    granted: bool
    recorded_at: datetime
    current: bool


class AccessLogEntry(msgspec.Struct):
    at: datetime
    action: str
    actor_role: str | None
    actor_name: str | None
    patient_id: UUID
    by_you: bool
