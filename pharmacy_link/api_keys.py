"""API keys of pharmacy software: created, listed, rotated and revoked by the pharmacy's pharmacists or an
administrator; shown once and stored as keyed hashes; exchanged at ``POST /pharmacies/token`` for a short-lived
pharmacist access token, so everything downstream sees an ordinary pharmacist of that pharmacy."""

from __future__ import annotations

import re
import secrets
import string
from uuid import UUID

import asyncpg

from api import audit
from api.audit import AuditContext
from api.auth import db as auth_db
from api.auth.principal import Principal, issue_access_token
from api.auth.secrets_box import keyed_hash
from api.db import Conn
from api.errors import Conflict, DomainError, Forbidden, NotFound, TooManyRequests
from api.settings import Settings
from pharmacy_link import db
from pharmacy_link.schemas import ApiKey, MachineToken, NewApiKey
from pharmacy_link.service import PharmacyNotFound, require_own_pharmacy

KEY_PREFIX = "ltpk_"
# Access tokens are checked without a database round trip, so a revoked key's last token lives until it expires:
# machine tokens are kept shorter than people's.
MACHINE_TOKEN_TTL_S = 300
FAILED_EXCHANGES_ALLOWED = 20
FAILED_EXCHANGE_WINDOW_S = 900
# Not an argon2 hash, so verify_password() rejects every password: software signs in only with its key.
UNUSABLE_PASSWORD = "!pharmacy-software-has-no-password"  # noqa: S105 - a marker, not a secret
_ALPHANUMERIC = string.ascii_letters + string.digits
_KEY_SHAPE = re.compile(r"^(ltpk_[A-Za-z0-9]{8})_[A-Za-z0-9_-]{43}$")


class ApiKeyNotFound(NotFound):
    slug, title = "api-key-not-found", "API key not found"


class ApiKeyRevoked(Conflict):
    slug, title = "api-key-revoked", "API key no longer active"


class ApiKeyInvalid(DomainError):
    status, slug, title = 401, "api-key-invalid", "API key not accepted"


class PharmacyInactive(Forbidden):
    slug, title = "pharmacy-inactive", "Pharmacy deactivated"


class SoftwareCannotManageKeys(Forbidden):
    slug, title = "software-cannot-manage-keys", "Keys are managed by people"


def _new_key() -> tuple[str, str]:
    """(prefix, whole key): the prefix is public and names the key in lists; 256 random bits follow it."""
    prefix = KEY_PREFIX + "".join(secrets.choice(_ALPHANUMERIC) for _ in range(8))
    return prefix, f"{prefix}_{secrets.token_urlsafe(32)}"


def _hash(settings: Settings, api_key: str) -> bytes:
    return keyed_hash(settings.otp_pepper, "pharmacy_api_key", api_key)


async def _may_manage(conn: Conn, principal: Principal, pharmacy_id: UUID) -> None:
    require_own_pharmacy(principal, pharmacy_id)
    # A leaked key must not be able to mint keys that outlive its own revocation.
    if principal.role == "pharmacist" and await db.is_machine_account(conn, principal.account_id):
        raise SoftwareCannotManageKeys("Pharmacy software cannot list, create, rotate or revoke API keys; "
                                       "a pharmacist signs in to do it.")
    if not await db.pharmacy_exists(conn, pharmacy_id):
        raise PharmacyNotFound("No such pharmacy.")


async def _key(conn: Conn, pharmacy_id: UUID, key_id: UUID) -> ApiKey:
    return (await db.api_keys(conn, pharmacy_id, key_id))[0]


async def list_keys(pool: asyncpg.Pool, principal: Principal, pharmacy_id: UUID) -> list[ApiKey]:
    async with pool.acquire() as conn:
        await _may_manage(conn, principal, pharmacy_id)
        return await db.api_keys(conn, pharmacy_id)


async def create_key(pool: asyncpg.Pool, settings: Settings, principal: Principal, pharmacy_id: UUID, label: str,
                     ctx: AuditContext) -> NewApiKey:
    """A new key with a service account of its own: role pharmacist of this pharmacy, no password, no pharmacist
    degree (PH-4: software never substitutes), so the audit log names the software in everything it does."""
    prefix, api_key = _new_key()
    async with pool.acquire() as conn, conn.transaction():
        await _may_manage(conn, principal, pharmacy_id)
        username = f"apikey.{prefix}"
        account_id = await auth_db.insert_staff_account(conn, "pharmacist", username, UNUSABLE_PASSWORD,
                                                        f"Phần mềm nhà thuốc: {label}")
        await auth_db.insert_pharmacist(conn, account_id, pharmacy_id, False)
        await audit.record(conn, ctx, "account.created", target_type="account", target_id=account_id,
                           details={"role": "pharmacist", "username": username, "pharmacy_software": True})
        key_id = await db.insert_api_key(conn, pharmacy_id, account_id, label, prefix, _hash(settings, api_key),
                                         principal.account_id)
        await audit.record(conn, ctx, "pharmacy_api_key.created", target_type="pharmacy_api_key", target_id=key_id,
                           details={"pharmacy_id": str(pharmacy_id), "prefix": prefix, "label": label})
        return NewApiKey(api_key=api_key, key=await _key(conn, pharmacy_id, key_id))


async def rotate_key(pool: asyncpg.Pool, settings: Settings, principal: Principal, pharmacy_id: UUID, key_id: UUID,
                     overlap_s: int, ctx: AuditContext) -> NewApiKey:
    """A new key for the same software (same service account); the old one stops working after ``overlap_s``."""
    prefix, api_key = _new_key()
    async with pool.acquire() as conn, conn.transaction():
        await _may_manage(conn, principal, pharmacy_id)
        old = await db.api_key_for_update(conn, pharmacy_id, key_id)
        if old is None:
            raise ApiKeyNotFound("No such API key at this pharmacy.")
        if not old.still_valid or old.rotated:
            raise ApiKeyRevoked("Only an active key can be rotated; rotate its replacement instead.")
        new_id = await db.insert_api_key(conn, pharmacy_id, old.account_id, old.label, prefix,
                                         _hash(settings, api_key), principal.account_id)
        await db.end_api_key(conn, key_id, overlap_s, principal.account_id, new_id)
        await audit.record(conn, ctx, "pharmacy_api_key.rotated", target_type="pharmacy_api_key", target_id=key_id,
                           details={"pharmacy_id": str(pharmacy_id), "prefix": old.prefix, "new_key_id": str(new_id),
                                    "new_prefix": prefix, "overlap_s": overlap_s})
        return NewApiKey(api_key=api_key, key=await _key(conn, pharmacy_id, new_id))


async def revoke_key(pool: asyncpg.Pool, principal: Principal, pharmacy_id: UUID, key_id: UUID,
                     ctx: AuditContext) -> ApiKey:
    async with pool.acquire() as conn, conn.transaction():
        await _may_manage(conn, principal, pharmacy_id)
        key = await db.api_key_for_update(conn, pharmacy_id, key_id)
        if key is None:
            raise ApiKeyNotFound("No such API key at this pharmacy.")
        if not key.still_valid:
            raise ApiKeyRevoked("This key is already revoked.")
        await db.end_api_key(conn, key_id, 0, principal.account_id, None)
        await audit.record(conn, ctx, "pharmacy_api_key.revoked", target_type="pharmacy_api_key", target_id=key_id,
                           details={"pharmacy_id": str(pharmacy_id), "prefix": key.prefix})
        return await _key(conn, pharmacy_id, key_id)


async def exchange(pool: asyncpg.Pool, settings: Settings, api_key: str, ctx: AuditContext) -> MachineToken:
    """Client credentials: a live key of an active pharmacy buys a short-lived pharmacist access token.

    Unknown, revoked and expired keys get the same 401; failures are audited and, per client address, limited.
    """
    shape = _KEY_SHAPE.match(api_key)
    presented_prefix = shape.group(1) if shape else None  # never the secret part, not even in the audit log
    error: DomainError | None = None
    async with pool.acquire() as conn, conn.transaction():
        failures, reset_s = (0, 0) if ctx.client_ip is None else await db.recent_exchange_failures(
            conn, ctx.client_ip, FAILED_EXCHANGE_WINDOW_S)
        key = None
        if failures >= FAILED_EXCHANGES_ALLOWED:
            await audit.record(conn, ctx, "pharmacy_api_key.exchange_throttled",
                               details={"prefix": presented_prefix})
            error = TooManyRequests("Too many rejected API keys from this address; wait before trying again.",
                                    reset_s)
        else:
            key = await db.live_key_by_hash(conn, _hash(settings, api_key))
            if key is None:
                await audit.record(conn, ctx, "pharmacy_api_key.exchange_failed",
                                   details={"prefix": presented_prefix})
                error = ApiKeyInvalid("This API key is unknown, revoked or expired.")
            elif not key.pharmacy_active:
                await audit.record(conn, ctx, "pharmacy_api_key.exchange_refused", target_type="pharmacy_api_key",
                                   target_id=key.id, details={"reason": "pharmacy_inactive"})
                error = PharmacyInactive("This pharmacy is deactivated; its software cannot sign in.")
            else:
                await db.touch_api_key(conn, key.id)
                await audit.record(conn, ctx.as_actor(key.account_id, "pharmacist"), "pharmacy_api_key.exchanged",
                                   target_type="pharmacy_api_key", target_id=key.id,
                                   details={"pharmacy_id": str(key.pharmacy_id), "prefix": key.prefix})
    # the failure is committed (audit, throttle count) before the refusal goes out
    if error is not None:
        raise error
    assert key is not None
    ttl = min(settings.access_token_ttl_s, MACHINE_TOKEN_TTL_S)
    principal = Principal(account_id=key.account_id, role="pharmacist", pharmacy_id=key.pharmacy_id)
    return MachineToken(access_token=issue_access_token(principal, settings, ttl), expires_in=ttl,
                        account_id=key.account_id, pharmacy_id=key.pharmacy_id)
