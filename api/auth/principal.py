"""Who is calling: the Principal built from a verified access token, the JWT config, and role guards."""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, Self
from uuid import UUID

import msgspec
from litestar.connection import ASGIConnection
from litestar.exceptions import NotAuthorizedException, PermissionDeniedException
from litestar.handlers.base import BaseRouteHandler
from litestar.security.jwt import JWTAuth, Token

from api.settings import Settings

Role = Literal["patient", "doctor", "pharmacist", "admin"]
ROLES: tuple[Role, ...] = ("patient", "doctor", "pharmacist", "admin")
ISSUER = "lienthong"
AUDIENCE = "lienthong-api"
# An enrolment token proves the password only; it may call the TOTP enrolment routes and nothing else.
SCOPE_FULL = "full"
SCOPE_TOTP_ENROL = "totp_enrol"


class Principal(msgspec.Struct, frozen=True):
    account_id: UUID
    role: Role
    scope: str = SCOPE_FULL
    patient_id: UUID | None = None
    facility_id: UUID | None = None
    pharmacy_id: UUID | None = None


def issue_access_token(principal: Principal, settings: Settings, ttl_s: int | None = None) -> str:
    now = datetime.now(UTC)
    extras: dict[str, Any] = {"role": principal.role, "scp": principal.scope}
    for claim, value in (("pid", principal.patient_id), ("fid", principal.facility_id),
                         ("phid", principal.pharmacy_id)):
        if value is not None:
            extras[claim] = str(value)
    token = Token(
        sub=str(principal.account_id), exp=now + timedelta(seconds=ttl_s or settings.access_token_ttl_s),
        iat=now, iss=ISSUER, aud=AUDIENCE, jti=secrets.token_hex(8), extras=extras,
    )
    return token.encode(settings.jwt_secret, "HS256")


class RememberedToken(Token):
    """A Token whose verification is remembered for the byte-identical string under the same secret, until it
    expires: a client sends the same access token with every request, and PyJWT's decode (base64, JSON, HMAC,
    claim checks) was the largest cost of a pharmacy verify after the database (profiled). Expiry is checked on
    every use; a token that differs in any byte, or a different secret, is verified afresh. Access tokens are not
    revocable before they expire (they never were: no database look-up), so remembering changes nothing else."""

    @classmethod
    def decode(cls, encoded_token: str, secret: str, algorithm: str, audience: str | Sequence[str] | None = None,
               issuer: str | Sequence[str] | None = None, require_claims: Sequence[str] | None = None,
               verify_exp: bool = True, verify_nbf: bool = True, strict_audience: bool = False) -> Self:
        key = (secret, encoded_token)
        known = _VERIFIED.get(key)
        if known is not None and known.exp > datetime.now(UTC):
            return known  # type: ignore[return-value]
        token = super().decode(encoded_token, secret, algorithm, audience, issuer, require_claims, verify_exp,
                               verify_nbf, strict_audience)
        if len(_VERIFIED) >= _VERIFIED_MAX:
            _VERIFIED.pop(next(iter(_VERIFIED)))  # the oldest entry
        _VERIFIED[key] = token
        return token


_VERIFIED: dict[tuple[str, str], RememberedToken] = {}
_VERIFIED_MAX = 20_000


def _uuid_claim(extras: dict[str, Any], key: str) -> UUID | None:
    value = extras.get(key)
    return UUID(value) if isinstance(value, str) else None


async def principal_from_token(token: Token, connection: ASGIConnection[Any, Any, Any, Any]) -> Principal:
    """Build the caller from the verified claims; no database round trip on the hot path."""
    extras = token.extras
    role = extras.get("role")
    scope = extras.get("scp", SCOPE_FULL)
    if role not in ROLES:
        raise NotAuthorizedException("token has no valid role")
    if scope != SCOPE_FULL and not connection.route_handler.opt.get("allow_enrolment_token"):
        raise NotAuthorizedException("this token may only be used to enrol a second factor")
    try:
        return Principal(
            account_id=UUID(token.sub), role=role, scope=scope, patient_id=_uuid_claim(extras, "pid"),
            facility_id=_uuid_claim(extras, "fid"), pharmacy_id=_uuid_claim(extras, "phid"),
        )
    except ValueError:
        raise NotAuthorizedException("malformed token claims") from None


def jwt_auth(settings: Settings) -> JWTAuth[Principal, RememberedToken]:
    return JWTAuth[Principal, RememberedToken](
        token_secret=settings.jwt_secret,
        token_cls=RememberedToken,
        retrieve_user_handler=principal_from_token,
        accepted_issuers=[ISSUER],
        accepted_audiences=[AUDIENCE],
        require_claims=["exp", "iat"],
        exclude_opt_key="public",
        exclude=["^/schema", "^/docs"],
        description="Access token from /auth/otp/verify, /auth/login or /auth/refresh.",
    )


def requires_role(*roles: Role) -> Any:
    """Guard: the caller's role must be one of ``roles`` (object-level checks stay in the services)."""
    allowed = frozenset(roles)

    # async on purpose: Litestar runs a synchronous guard in a worker thread, a thread hop on every request
    async def guard(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
        principal = connection.user
        if not isinstance(principal, Principal) or principal.role not in allowed:
            raise PermissionDeniedException(f"this action is for: {', '.join(sorted(allowed))}")

    guard.__name__ = f"requires_role_{'_'.join(sorted(allowed))}"
    return guard
