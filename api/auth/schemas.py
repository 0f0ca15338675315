"""Wire shapes of the sign-in endpoints."""

from __future__ import annotations

from typing import Annotated, Literal
from uuid import UUID

import msgspec

from api.auth.principal import Role


class Strict(msgspec.Struct, forbid_unknown_fields=True):
    """Base for request bodies: unknown fields are an error, not silently dropped."""


PhoneRaw = Annotated[str, msgspec.Meta(min_length=8, max_length=32, examples=["0912345678"])]
OtpCode = Annotated[str, msgspec.Meta(pattern=r"^[0-9]{6}$", examples=["123456"])]
Username = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9._@-]{3,64}$")]
Password = Annotated[str, msgspec.Meta(min_length=1, max_length=256)]
RecoveryCode = Annotated[str, msgspec.Meta(pattern=r"^[a-z0-9]{5}-[a-z0-9]{5}$")]
RefreshTokenStr = Annotated[str, msgspec.Meta(min_length=20, max_length=200)]


class OtpRequestIn(Strict):
    phone: PhoneRaw


class OtpSent(msgspec.Struct):
    phone: str
    expires_in: int
    resend_after: int


class OtpVerifyIn(Strict):
    phone: PhoneRaw
    code: OtpCode


class LoginIn(Strict):
    username: Username
    password: Password
    totp_code: OtpCode | None = None
    recovery_code: RecoveryCode | None = None


class Session(msgspec.Struct, kw_only=True):
    kind: Literal["session"] = "session"
    access_token: str
    refresh_token: str
    token_type: str = "Bearer"  # noqa: S105 - the OAuth token type, not a secret
    expires_in: int
    account_id: UUID
    role: Role
    patient_id: UUID | None = None
    new_account: bool = False


class EnrolmentRequired(msgspec.Struct, kw_only=True):
    """Password was right but no second factor is enrolled yet: enrol with this short-lived token."""

    kind: Literal["totp_enrolment_required"] = "totp_enrolment_required"
    enrolment_token: str
    expires_in: int


class RefreshIn(Strict):
    refresh_token: RefreshTokenStr


class LogoutIn(Strict):
    refresh_token: RefreshTokenStr


class TotpEnrolment(msgspec.Struct):
    provisioning_uri: str
    qr_svg: str


class TotpConfirmIn(Strict):
    code: OtpCode


class TotpConfirmed(msgspec.Struct, kw_only=True):
    recovery_codes: list[str]
    session: Session | None = None
