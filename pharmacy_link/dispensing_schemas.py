"""Wire shapes of verifying and dispensing a prescription at a pharmacy."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated
from uuid import UUID

import msgspec

from api.auth.schemas import Strict
from eprescription.schemas import RxType, Status

CitizenId = Annotated[str, msgspec.Meta(pattern=r"^[0-9]{12}$")]


class IdentityCheck(Strict):
    """What the pharmacist read from the patient's ID card; when it matches, verify shows the full identity."""

    date_of_birth: date | None = None
    citizen_id: CitizenId | None = None


class VerifyIn(Strict):
    """Exactly one of ``code`` (typed) or ``qr`` (scanned)."""

    code: Annotated[str, msgspec.Meta(min_length=1, max_length=40, examples=["79026a1b2c3d-c"])] | None = None
    qr: Annotated[str, msgspec.Meta(min_length=1, max_length=400)] | None = None
    identity: IdentityCheck | None = None


class VerifiedLine(msgspec.Struct):
    position: int
    drug_id: UUID
    drug_name: str
    strength: str
    dosage_form: str
    route: str
    control_class: str
    instructions: str
    quantity: int
    quantity_unit: str
    dispensed_quantity: int
    remaining_quantity: int


class VerifiedPatient(msgspec.Struct):
    full_name: str
    birth_year: int | None
    # only once the identity check matched (the pharmacist saw the patient's papers)
    date_of_birth: date | None = None
    sex: str | None = None
    address: str | None = None
    weight_kg: float | None = None


class Verification(msgspec.Struct):
    prescription_id: UUID
    code: str
    rx_type: RxType
    status: Status
    dispensable: bool
    reasons: list[str]  # why it cannot be dispensed now, in words
    warnings: list[str]
    signature_valid: bool
    issued_at: datetime  # Asia/Ho_Chi_Minh
    valid_until: datetime  # Asia/Ho_Chi_Minh
    doctor_name: str
    doctor_licence: str
    facility_code: str
    facility_name: str
    patient: VerifiedPatient
    identity_confirmed: bool
    held_by_you: bool
    held_by_another_pharmacy: bool
    hold_expires_at: datetime | None
    lines: list[VerifiedLine]


class HoldOut(msgspec.Struct):
    code: str
    status: Status
    hold_expires_at: datetime | None


class DispenseLineIn(Strict):
    position: Annotated[int, msgspec.Meta(ge=1, le=30)]
    quantity: Annotated[int, msgspec.Meta(ge=1, le=100000)]
    lot_number: Annotated[str, msgspec.Meta(min_length=1, max_length=50)]
    expiry_date: date
    unit_price_vnd: Annotated[int, msgspec.Meta(ge=0, le=100_000_000)]
    origin: Annotated[str, msgspec.Meta(max_length=100, examples=["Việt Nam"])] = ""
    # PH-4: same ingredient, route and strength; a pharmacist with a degree; the buyer agrees
    substitute_drug_id: UUID | None = None
    buyer_consent: bool = False


class RecipientIn(Strict):
    full_name: Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
    # PH-6/VN-3.7: required for narcotic (n) and psychotropic (h) prescriptions
    id_number: Annotated[str, msgspec.Meta(pattern=r"^[0-9A-Z]{6,20}$")] | None = None


class DispenseIn(Strict):
    lines: Annotated[list[DispenseLineIn], msgspec.Meta(min_length=1, max_length=30)]
    invoice_number: Annotated[str, msgspec.Meta(min_length=1, max_length=20)]  # ma_hoa_don (API-7)
    recipient: RecipientIn


class DispensedLine(msgspec.Struct):
    position: int
    prescribed_drug_id: UUID
    drug_id: UUID
    substituted: bool
    quantity: int
    lot_number: str
    expiry_date: date
    origin: str
    unit_price_vnd: int


class Dispense(msgspec.Struct):
    id: UUID
    prescription_id: UUID
    code: str
    pharmacy_id: UUID
    invoice_number: str
    total_vnd: int
    lines: list[DispensedLine]
    created_at: datetime
    voided_at: datetime | None
    prescription_status: Status  # after this dispense (or its voiding)
    remaining: dict[int, int]  # prescription line position → quantity still to dispense


class VoidIn(Strict):
    reason: Annotated[str, msgspec.Meta(min_length=5, max_length=500)]
