"""Wire shapes of prescriptions: what a doctor sends, what the API returns, the clinical findings, and the canonical
content that is signed (and sent to the national system)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Literal
from uuid import UUID

import msgspec

from api.auth.schemas import Strict

RxType = Literal["c", "n", "h"]
Status = Literal["draft", "issued", "with_dispenser", "partially_dispensed", "dispensed", "not_dispensed",
                 "pending_cancellation", "cancelled", "superseded", "expired"]
Severity = Literal["contraindicated", "major", "moderate", "minor"]
PregnancyStatus = Literal["unknown", "pregnant", "not_pregnant"]
# NHS-6 reason codes 0001-0006, in words
CancelReason = Literal["prescribing_error", "clinical_contraindication", "change_of_treatment", "clinical_grounds",
                       "patient_request", "pharmacist_request"]
# what a dose or a quantity is counted in; VN-1.8 writes "mỗi lần 01 viên, ngày 02 lần"
Unit = Literal["viên", "gói", "ml", "nhát xịt", "ống", "chai", "lọ", "bình", "tuýp", "miếng", "giọt"]
Icd10Code = Annotated[str, msgspec.Meta(pattern=r"^[A-TV-Z][0-9]{2}(\.[0-9A-Z]{1,2})?$", examples=["J00"])]
TotpCode = Annotated[str, msgspec.Meta(pattern=r"^[0-9]{6}$", examples=["123456"])]


class DiagnosisIn(Strict):
    code: Icd10Code
    conclusion: Annotated[str, msgspec.Meta(max_length=500)] = ""  # ket_luan: the doctor's own words


class LineIn(Strict):
    """One drug line (VN-1.8). Quantity is in ``quantity_unit``; when that is the dose unit it must equal
    dose × times per day × days, rounded up to a whole unit."""

    drug_id: UUID
    dose_per_time: Annotated[float, msgspec.Meta(gt=0, le=1000)]
    dose_unit: Unit
    times_per_day: Annotated[int, msgspec.Meta(ge=1, le=24)]
    days: Annotated[int, msgspec.Meta(ge=1, le=90)]
    quantity: Annotated[int, msgspec.Meta(ge=1, le=100000)]
    quantity_unit: Unit
    usage: Annotated[str, msgspec.Meta(max_length=500, examples=["Uống sau ăn sáng và tối"])] = ""


class DraftIn(Strict):
    """A draft for the consultation's patient. ``diagnoses`` defaults to the consultation record's diagnoses."""

    consultation_id: UUID
    lines: Annotated[list[LineIn], msgspec.Meta(max_length=30)] = []
    diagnoses: Annotated[list[DiagnosisIn], msgspec.Meta(max_length=10)] | None = None
    advice: Annotated[str, msgspec.Meta(max_length=2000)] = ""
    note: Annotated[str, msgspec.Meta(max_length=2000)] = ""
    follow_up_days: Annotated[int, msgspec.Meta(ge=1, le=365)] | None = None
    weight_kg: Annotated[float, msgspec.Meta(gt=0, lt=500)] | None = None
    pregnancy_status: PregnancyStatus = "unknown"
    long_term: bool = False


class DraftPatch(Strict):
    """Only the fields present change; ``lines`` and ``diagnoses`` are replaced as a whole."""

    lines: Annotated[list[LineIn], msgspec.Meta(max_length=30)] | msgspec.UnsetType = msgspec.UNSET
    diagnoses: Annotated[list[DiagnosisIn], msgspec.Meta(max_length=10)] | msgspec.UnsetType = msgspec.UNSET
    advice: Annotated[str, msgspec.Meta(max_length=2000)] | msgspec.UnsetType = msgspec.UNSET
    note: Annotated[str, msgspec.Meta(max_length=2000)] | msgspec.UnsetType = msgspec.UNSET
    follow_up_days: Annotated[int, msgspec.Meta(ge=1, le=365)] | msgspec.UnsetType | None = msgspec.UNSET
    weight_kg: Annotated[float, msgspec.Meta(gt=0, lt=500)] | msgspec.UnsetType | None = msgspec.UNSET
    pregnancy_status: PregnancyStatus | msgspec.UnsetType = msgspec.UNSET
    long_term: bool | msgspec.UnsetType = msgspec.UNSET


class Finding(msgspec.Struct):
    """One clinical-check result (CDS-1..5). ``key`` is stable for the same problem in the same draft, so an
    override names it; ``blocks_signing`` findings need an override reason."""

    key: str
    rule: str  # CDS-1 .. CDS-5
    severity: Severity
    title: str  # Vietnamese, one line
    detail: str  # Vietnamese: what happens and why
    advice: str  # Vietnamese: what to do
    positions: list[int]  # the draft lines concerned
    blocks_signing: bool
    override_reason: str | None = None
    source: str = ""  # citation of the rule that produced it


class FindingsReport(msgspec.Struct):
    findings: list[Finding]
    blocking: int  # findings that need an override reason before signing
    problems: list[RuleProblem]  # hard-rule problems (VN-x, TM-x) that would stop signing, if any


class RuleProblem(msgspec.Struct):
    rule: str
    path: str
    message: str


class Override(Strict):
    key: Annotated[str, msgspec.Meta(min_length=1, max_length=300)]
    reason: Annotated[str, msgspec.Meta(min_length=10, max_length=1000)]


class SignIn(Strict):
    """The signing ceremony: the doctor read the prescription and the statement, and proves presence with TOTP."""

    totp_code: TotpCode
    overrides: Annotated[list[Override], msgspec.Meta(max_length=50)] = []


class IssueIn(DraftIn, kw_only=True):
    """A prescription written and signed in one step: a draft's content plus the signing ceremony. Nothing is stored
    unless the signature is made."""

    totp_code: TotpCode
    overrides: Annotated[list[Override], msgspec.Meta(max_length=50)] = []


class CancelIn(Strict):
    reason: CancelReason
    note: Annotated[str, msgspec.Meta(max_length=1000)] = ""


# ------------------------------------------------------------------------------------------- signed content

class SignedFacility(msgspec.Struct):
    id: UUID
    code: str
    name: str
    address: str


class SignedDoctor(msgspec.Struct):
    id: UUID
    full_name: str
    title: str
    licence_number: str
    national_rx_code: str | None


class Guardian(msgspec.Struct):
    full_name: str
    phone: str | None
    address: str


class SignedPatient(msgspec.Struct):
    id: UUID
    full_name: str
    date_of_birth: date | None
    sex: Literal["male", "female", "other"] | None
    citizen_id: str | None  # VN-1.2
    health_insurance_number: str | None
    address: str  # VN-1.3
    phone: str | None
    age_months: int | None  # VN-1.4: set for children under 72 months
    weight_kg: float | None
    guardian: Guardian | None  # VN-1.4


class SignedDiagnosis(msgspec.Struct):
    code: str
    name: str
    conclusion: str


class SignedLine(msgspec.Struct):
    position: int
    drug_id: UUID
    drug_name: str  # VN-1.7: INN, or INN (trade name)
    strength: str
    dosage_form: str
    route: str
    atc_code: str | None
    registration_number: str | None
    control_class: str
    dose_per_time: float
    dose_unit: str
    times_per_day: int
    days: int
    quantity: int
    quantity_unit: str
    usage: str


class SignedContent(msgspec.Struct, kw_only=True):
    """Exactly what the doctor signs. ``canonical()`` is the byte string under the signature: msgspec encodes the
    fields in declaration order with no whitespace, so the same content always gives the same bytes."""

    format: Literal["lienthong-rx/1"] = "lienthong-rx/1"
    prescription_id: UUID
    code: str
    rx_type: RxType
    issued_at: datetime  # UTC
    valid_until: datetime  # UTC
    consultation_id: UUID
    telemedicine: bool
    facility: SignedFacility
    doctor: SignedDoctor
    patient: SignedPatient
    diagnoses: list[SignedDiagnosis]
    lines: list[SignedLine]
    advice: str
    note: str
    follow_up_days: int | None
    long_term: bool
    replaces_code: str | None
    signing_key_id: UUID

    def canonical(self) -> bytes:
        return msgspec.json.encode(self)


# ------------------------------------------------------------------------------------------- responses

class Line(msgspec.Struct):
    position: int
    drug_id: UUID
    drug_name: str
    strength: str
    dosage_form: str
    route: str
    control_class: str
    dose_per_time: float
    dose_unit: str
    times_per_day: int
    days: int
    quantity: int
    quantity_unit: str
    usage: str
    dispensed_quantity: int
    remaining_quantity: int
    # VN-1.8/1.9: the line as printed, "mỗi lần 01 viên, ngày 02 lần"
    instructions: str


class NationalSync(msgspec.Struct):
    status: Literal["pending", "sent", "rejected", "failed"]
    attempts: int
    sent_at: datetime | None
    errors: list[str]  # danh_sach_cac_loi of a 422, or the last transient error


class Prescription(msgspec.Struct):
    id: UUID
    code: str | None
    status: Status
    rx_type: RxType | None
    consultation_id: UUID
    patient_id: UUID
    patient_name: str
    doctor_id: UUID
    doctor_name: str
    facility_code: str
    diagnoses: list[SignedDiagnosis]
    lines: list[Line]
    advice: str
    note: str
    follow_up_days: int | None
    weight_kg: float | None
    pregnancy_status: PregnancyStatus
    long_term: bool
    replaces_id: UUID | None
    replaced_by_id: UUID | None
    findings: list[Finding]
    issued_at: datetime | None  # shown in Asia/Ho_Chi_Minh
    valid_until: datetime | None
    cancel_reason: CancelReason | None
    cancelled_at: datetime | None
    national: NationalSync | None
    created_at: datetime
    updated_at: datetime


class PrescriptionSummary(msgspec.Struct):
    id: UUID
    code: str | None
    status: Status
    rx_type: RxType | None
    patient_id: UUID
    patient_name: str
    doctor_name: str
    issued_at: datetime | None
    valid_until: datetime | None
    lines: int
    remaining_lines: int  # lines with something left to dispense


class SignatureDocument(msgspec.Struct):
    """Everything a pharmacy needs to verify a prescription offline (with GET /prescriptions/signing-keys)."""

    prescription_id: UUID
    code: str
    algorithm: Literal["Ed25519"]
    key_id: UUID
    content: str  # base64url of the canonical signed bytes (a SignedContent JSON document)
    signature: str  # base64url of the 64-byte signature


class SigningKey(msgspec.Struct):
    id: UUID
    doctor_id: UUID
    doctor_name: str
    licence_number: str
    algorithm: Literal["Ed25519"]
    public_key: str  # base64url of the raw 32-byte key
    created_at: datetime
    retired_at: datetime | None


class QrCheckIn(Strict):
    qr: Annotated[str, msgspec.Meta(min_length=1, max_length=400)]


class QrCheck(msgspec.Struct):
    code: str
    key_id: UUID
    prescription_id: UUID


class QrPayload(msgspec.Struct):
    payload: str  # LT1.<code>.<key id>.<signature>, base64url parts
