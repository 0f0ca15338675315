"""Who is calling: the Principal built from a verified access token, the JWT config, and role guards."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta
from typing import Any, Literal
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


def jwt_auth(settings: Settings) -> JWTAuth[Principal, Token]:
    return JWTAuth[Principal, Token](
        token_secret=settings.jwt_secret,
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

    def guard(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
        principal = connection.user
        if not isinstance(principal, Principal) or principal.role not in allowed:
            raise PermissionDeniedException(f"this action is for: {', '.join(sorted(allowed))}")

    guard.__name__ = f"requires_role_{'_'.join(sorted(allowed))}"
    return guard
