"""Wire shapes of the pharmacy registry, pharmacy API keys, published stock and the nearby-pharmacy search."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal
from uuid import UUID

import msgspec

from api.auth.schemas import Password, Strict, Username

PharmacyKind = Literal["nha_thuoc", "quay_thuoc"]
Weekday = Annotated[int, msgspec.Meta(ge=1, le=7, description="1 = Monday (Thứ Hai) ... 7 = Sunday (Chủ nhật)")]
ClockTime = Annotated[str, msgspec.Meta(pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$", examples=["07:30"])]
ClosingTime = Annotated[str, msgspec.Meta(
    pattern=r"^(([01][0-9]|2[0-3]):[0-5][0-9]|24:00)$", examples=["22:00", "24:00", "02:00"],
    description="at or before `opens` means the next day; equal to `opens` means open 24 hours")]
Name = Annotated[str, msgspec.Meta(min_length=1, max_length=300)]
GppNumber = Annotated[str, msgspec.Meta(min_length=1, max_length=100, description="GPP certificate number (opaque)")]
OutletId = Annotated[str, msgspec.Meta(
    min_length=1, max_length=200,
    description="national outlet id, ma_dinh_danh_co_so_cung_ung_thuoc (opaque: its format is not published)")]
PhoneIn = Annotated[str, msgspec.Meta(
    pattern=r"^\+?[0-9 .()-]{8,24}$", examples=["028 3855 1234", "0912345678", "+84 28 3855 1234"],
    description="a Vietnamese phone number; stored as at most 12 digits in domestic form (API-7)")]
Address = Annotated[str, msgspec.Meta(min_length=1, max_length=500)]
Province = Annotated[str, msgspec.Meta(max_length=100)]
Latitude = Annotated[float, msgspec.Meta(ge=-90, le=90)]
Longitude = Annotated[float, msgspec.Meta(ge=-180, le=180)]


class OpeningHours(Strict):
    """One opening span in Vietnam local time; several per weekday are allowed (a lunch break)."""

    weekday: Weekday
    opens: ClockTime
    closes: ClosingTime


WeekHours = Annotated[list[OpeningHours], msgspec.Meta(
    max_length=28, description="Vietnam local time; a pharmacy without opening hours shows as closed")]


class PharmacyIn(Strict):
    name: Name
    kind: PharmacyKind
    gpp_certificate_number: GppNumber
    phone: PhoneIn
    address: Address
    latitude: Latitude
    longitude: Longitude
    province: Province = ""
    national_outlet_id: OutletId | None = None
    opening_hours: WeekHours = []


class PharmacyPatch(Strict):
    """Only the fields present change; `active: false` deactivates the pharmacy (it leaves searches, its API keys
    stop working), `active: true` brings it back."""

    name: Name | msgspec.UnsetType = msgspec.UNSET
    kind: PharmacyKind | msgspec.UnsetType = msgspec.UNSET
    gpp_certificate_number: GppNumber | msgspec.UnsetType = msgspec.UNSET
    national_outlet_id: OutletId | msgspec.UnsetType | None = msgspec.UNSET
    phone: PhoneIn | msgspec.UnsetType = msgspec.UNSET
    address: Address | msgspec.UnsetType = msgspec.UNSET
    province: Province | msgspec.UnsetType = msgspec.UNSET
    latitude: Latitude | msgspec.UnsetType = msgspec.UNSET
    longitude: Longitude | msgspec.UnsetType = msgspec.UNSET
    opening_hours: WeekHours | msgspec.UnsetType = msgspec.UNSET
    active: bool | msgspec.UnsetType = msgspec.UNSET


class Pharmacy(msgspec.Struct):
    """What anyone may read about a pharmacy (never its stock)."""

    id: UUID
    name: str
    kind: PharmacyKind
    gpp_certificate_number: str | None
    national_outlet_id: str | None
    phone: str | None
    address: str
    province: str
    latitude: float | None
    longitude: float | None
    opening_hours: list[OpeningHours]
    open_now: bool
    active: bool


class PharmacistIn(Strict):
    username: Username
    password: Password
    full_name: Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
    has_pharmacist_degree: bool = False


class PharmacyStaffMember(msgspec.Struct):
    account_id: UUID
    full_name: str
    has_pharmacist_degree: bool


# ---------------------------------------------------------------------------------------------------- API keys

ApiKeyStatus = Literal["active", "expiring", "revoked"]


class ApiKeyIn(Strict):
    label: Annotated[str, msgspec.Meta(min_length=1, max_length=100, examples=["Phần mềm bán hàng quầy 1"])]


class ApiKeyRotation(Strict):
    overlap_s: Annotated[int, msgspec.Meta(
        ge=0, le=86_400, description="how long the old key keeps working, so the software can switch over")] = 0


class ApiKey(msgspec.Struct):
    id: UUID
    pharmacy_id: UUID
    account_id: UUID
    label: str
    prefix: str
    status: ApiKeyStatus
    created_at: datetime
    created_by: UUID | None
    last_used_at: datetime | None
    revoked_at: datetime | None
    replaced_by: UUID | None


class NewApiKey(msgspec.Struct):
    """The only time the secret is shown: it is stored as a keyed hash and cannot be recovered."""

    api_key: str
    key: ApiKey


class TokenRequest(Strict):
    api_key: Annotated[str, msgspec.Meta(min_length=1, max_length=200)]


class MachineToken(msgspec.Struct, kw_only=True):
    access_token: str
    token_type: str = "Bearer"  # noqa: S105 - the OAuth token type, not a secret
    expires_in: int
    account_id: UUID
    pharmacy_id: UUID


# ---------------------------------------------------------------------------------------------------- stock

_NO_NUL = "^[^\x00]*$"  # PostgreSQL text cannot hold U+0000


class StockItemIn(Strict, kw_only=True):
    """One drug of a stock upload, named by catalogue id or by registration number (exactly one of them)."""

    drug_id: UUID | None = None
    registration_number: Annotated[str, msgspec.Meta(min_length=3, max_length=40, pattern=_NO_NUL,
                                                     examples=["VD-12345-19"])] | None = None
    quantity: Annotated[int, msgspec.Meta(ge=0, le=10_000_000, description="in the drug's dispensing unit")]
    unit: Annotated[str, msgspec.Meta(max_length=30, pattern=_NO_NUL, examples=["viên"])] = ""


class StockUploadReport(msgspec.Struct):
    items: int
    inserted: int
    updated: int


class StockItem(msgspec.Struct):
    drug_id: UUID
    registration_number: str | None
    inn: str
    strength: str
    dosage_form: str
    quantity: int
    unit: str
    updated_at: datetime


class StockPage(msgspec.Struct):
    total: int
    items: list[StockItem]


# ---------------------------------------------------------------------------------------------------- search

class LineAvailability(msgspec.Struct):
    """Whether the pharmacy has enough for one line; never how much it has."""

    position: int
    drug_id: UUID
    available: bool


class NearbyPharmacy(msgspec.Struct):
    id: UUID
    name: str
    kind: PharmacyKind
    address: str
    province: str
    phone: str | None
    latitude: float
    longitude: float
    distance_m: int
    open_now: bool
    lines_available: int
    lines_total: int
    lines: list[LineAvailability]
