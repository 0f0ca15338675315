"""Sign-in rules: SMS OTP for patients, password + TOTP for staff, rotating refresh tokens, TOTP enrolment."""

from __future__ import annotations

import asyncio
import logging
import secrets
import uuid
from uuid import UUID

import asyncpg

from api import audit, qr
from api.audit import AuditContext
from api.auth import db, otp, totp
from api.auth.errors import (
    AccountLocked,
    InvalidCredentials,
    InvalidPhone,
    OtpExpired,
    OtpInvalid,
    OtpThrottled,
    RefreshTokenInvalid,
    RefreshTokenReused,
    SecondFactorRequired,
    SmsUnavailable,
    TotpNotPending,
)
from api.auth.principal import SCOPE_TOTP_ENROL, Principal, issue_access_token
from api.auth.schemas import EnrolmentRequired, OtpSent, Session, TotpConfirmed, TotpEnrolment
from api.auth.secrets_box import keyed_hash, same, seal, unseal, verify_password
from api.db import Conn
from api.settings import Settings
from notifications.phone import InvalidPhoneNumber, mask_phone, normalize_vn_phone
from notifications.sms import SmsError, SmsGateway

log = logging.getLogger("lienthong.auth")

ENROLMENT_TOKEN_TTL_S = 600
RECOVERY_CODE_COUNT = 10


def normalise_phone(raw: str) -> str:
    try:
        return normalize_vn_phone(raw)
    except InvalidPhoneNumber as exc:
        raise InvalidPhone(str(exc)) from None


# ---------------------------------------------------------------- patients: SMS OTP

async def request_otp(pool: asyncpg.Pool, settings: Settings, sms: SmsGateway, raw_phone: str,
                      ctx: AuditContext) -> OtpSent:
    """Send a sign-in code, within the per-phone and per-IP resend limits; the code is stored only hashed."""
    phone = normalise_phone(raw_phone)
    challenge_id = uuid.uuid4()
    code = otp.new_code()
    async with pool.acquire() as conn, conn.transaction():
        # Serialise per phone so two simultaneous requests cannot both slip under the 1/minute limit.
        await db.lock_key(conn, f"otp:{phone}")
        counts = await db.otp_window_counts(conn, phone, ctx.client_ip)
        limits = (
            (counts.phone_minute, settings.otp_per_phone_per_minute, counts.phone_minute_reset_s, "this number"),
            (counts.phone_hour, settings.otp_per_phone_per_hour, counts.phone_hour_reset_s, "this number"),
            (counts.ip_minute, settings.otp_per_ip_per_minute, counts.ip_minute_reset_s, "this network"),
            (counts.ip_hour, settings.otp_per_ip_per_hour, counts.ip_hour_reset_s, "this network"),
        )
        for used, limit, reset_s, who in limits:
            if used >= limit:
                await audit.record(conn, ctx, "auth.otp.throttled", target_type="phone",
                                   target_id=mask_phone(phone))
                raise OtpThrottled(f"Too many codes were requested for {who}; wait before asking again.",
                                   max(1, reset_s))
        await db.insert_otp(conn, challenge_id, phone, ctx.client_ip,
                            otp.code_hash(settings.otp_pepper, str(challenge_id), code), settings.otp_ttl_s)
        await audit.record(conn, ctx, "auth.otp.sent", target_type="phone", target_id=mask_phone(phone))
    try:
        # The gateway is a blocking requests client; RequestId = challenge id lets it drop our own retries.
        await asyncio.to_thread(sms.send, phone, otp.sms_text(code, settings.otp_ttl_s), str(challenge_id))
    except SmsError as exc:
        log.warning("otp sms failed", extra={"phone": mask_phone(phone), "error": type(exc).__name__})
        async with pool.acquire() as conn:
            # a code nobody received must not count against the user's resend allowance
            await db.delete_otp(conn, challenge_id)
        raise SmsUnavailable("The SMS could not be sent right now; please try again in a minute.") from None
    return OtpSent(phone=phone, expires_in=settings.otp_ttl_s, resend_after=60 // settings.otp_per_phone_per_minute)


async def verify_otp(pool: asyncpg.Pool, settings: Settings, raw_phone: str, code: str,
                     ctx: AuditContext) -> Session:
    """Check the code (constant-time, at most N tries); first sign-in creates the patient's account."""
    phone = normalise_phone(raw_phone)
    async with pool.acquire() as conn:
        async with conn.transaction():
            await db.lock_key(conn, f"otp:{phone}")
            live = await db.live_otp_for_update(conn, phone, settings.otp_max_attempts)
            if live is None:
                await audit.record(conn, ctx, "auth.otp.expired", target_type="phone", target_id=mask_phone(phone))
                error: OtpExpired | OtpInvalid | None = OtpExpired(
                    "No valid code for this number (expired, used, or too many wrong tries). Request a new code.")
            elif not same(live.code_hash, otp.code_hash(settings.otp_pepper, str(live.id), code)):
                attempts = await db.count_otp_attempt(conn, live.id)
                left = settings.otp_max_attempts - attempts
                await audit.record(conn, ctx, "auth.login.failed", target_type="phone", target_id=mask_phone(phone),
                                   details={"method": "otp", "attempts_left": left})
                error = OtpInvalid(
                    f"Wrong code. {left} tries left." if left > 0 else "Wrong code. This code is no longer valid; "
                    "request a new one.", extra={"attempts_left": left})
            else:
                error = None
                await db.consume_otp(conn, live.id)
                existing = await db.patient_account_by_phone(conn, phone)
                new_account = existing is None
                if existing is None:
                    account_id, patient_id = await db.create_patient_account(conn, phone, "Bệnh nhân mới")
                else:
                    account_id, patient_id, status = existing
                    if status != "active":
                        raise InvalidCredentials("This account is disabled.")
                principal = Principal(account_id=account_id, role="patient", patient_id=patient_id)
                session = await _start_session(conn, settings, principal, settings.patient_refresh_ttl_s)
                session.new_account = new_account
                await audit.record(conn, ctx.as_actor(account_id, "patient"), "auth.login.succeeded",
                                   target_type="account", target_id=account_id, subject_patient_id=patient_id,
                                   details={"method": "otp", "new_account": new_account})
        # failures are committed (attempt counters, audit) before the error goes out
        if error is not None:
            raise error
        return session


# ---------------------------------------------------------------- staff: password + TOTP

async def staff_login(pool: asyncpg.Pool, settings: Settings, username: str, password: str, totp_code: str | None,
                      recovery_code: str | None, ctx: AuditContext) -> Session | EnrolmentRequired:
    async with pool.acquire() as conn:
        async with conn.transaction():
            account = await db.staff_login_for_update(conn, username)
            failure: str | None = None
            step: int | None = None
            locked = account is not None and account.locked_for_s > 0
            # hashed even for unknown users, so response time does not reveal which usernames exist
            password_ok = not locked and await asyncio.to_thread(
                verify_password, account.password_hash if account else None, password)
            if locked:
                assert account is not None
                # audited and committed before the refusal goes out
                await audit.record(conn, ctx, "auth.login.locked_out", target_type="account", target_id=account.id)
                failure = "locked"
            elif account is None or account.status != "active" or not password_ok:
                failure = "password"
            elif account.totp_secret_enc is None:
                # Password proven, no second factor yet: only enrolment is allowed next.
                enrol = Principal(account_id=account.id, role=account.role,  # type: ignore[arg-type]
                                  scope=SCOPE_TOTP_ENROL)
                await audit.record(conn, ctx.as_actor(account.id, account.role), "auth.login.enrolment_required",
                                   target_type="account", target_id=account.id)
                return EnrolmentRequired(enrolment_token=issue_access_token(enrol, settings, ENROLMENT_TOKEN_TTL_S),
                                         expires_in=ENROLMENT_TOKEN_TTL_S)
            elif totp_code is not None:
                secret = unseal(settings.data_key, account.totp_secret_enc, account.id.bytes).decode()
                step = totp.matching_step(secret, totp_code, account.totp_last_step)
                if step is None:
                    failure = "totp"
            elif recovery_code is not None:
                code_hash = _recovery_hash(settings, account.id, recovery_code)
                if not await db.use_recovery_code(conn, account.id, code_hash):
                    failure = "recovery_code"
            else:
                raise SecondFactorRequired("Enter the 6-digit code from your authenticator app.")

            if failure == "locked":
                pass
            elif failure is not None:
                just_locked = False
                if account is not None:
                    just_locked = await db.record_failed_login(conn, account.id, settings.staff_max_failed_logins,
                                                               settings.staff_lockout_s)
                await audit.record(conn, ctx, "auth.login.failed", target_type="account",
                                   target_id=account.id if account else None,
                                   details={"method": "password_totp", "failed": failure, "username": username})
                if just_locked and account is not None:
                    await audit.record(conn, ctx, "auth.account.locked", target_type="account", target_id=account.id)
            else:
                assert account is not None
                await db.record_successful_login(conn, account.id, step)
                principal = await db.principal_for(conn, account.id)
                session = await _start_session(conn, settings, principal, settings.staff_refresh_ttl_s)
                await audit.record(conn, ctx.as_actor(account.id, account.role), "auth.login.succeeded",
                                   target_type="account", target_id=account.id,
                                   details={"method": "recovery_code" if recovery_code else "password_totp"})
        if failure == "locked":
            assert account is not None
            raise AccountLocked(account.locked_for_s)
        if failure is not None:
            raise InvalidCredentials("Username, password or authenticator code is wrong.")
        return session


def _recovery_hash(settings: Settings, account_id: UUID, code: str) -> bytes:
    return keyed_hash(settings.otp_pepper, "recovery", str(account_id), code.lower())


async def start_totp_enrolment(pool: asyncpg.Pool, settings: Settings, principal: Principal,
                               ctx: AuditContext) -> TotpEnrolment:
    """A new secret, pending until a code from it is confirmed (the old factor keeps working until then)."""
    secret = totp.new_secret()
    async with pool.acquire() as conn, conn.transaction():
        username = await db.set_pending_totp(
            conn, principal.account_id, seal(settings.data_key, secret.encode(), principal.account_id.bytes))
        await audit.record(conn, ctx, "auth.totp.enrolment_started", target_type="account",
                           target_id=principal.account_id)
    uri = totp.provisioning_uri(secret, username)
    return TotpEnrolment(provisioning_uri=uri, qr_svg=qr.svg(uri))


async def confirm_totp_enrolment(pool: asyncpg.Pool, settings: Settings, principal: Principal, code: str,
                                 ctx: AuditContext) -> TotpConfirmed:
    codes = [f"{secrets.token_hex(5)[:5]}-{secrets.token_hex(5)[:5]}" for _ in range(RECOVERY_CODE_COUNT)]
    async with pool.acquire() as conn:
        async with conn.transaction():
            sealed = await db.pending_totp_for_update(conn, principal.account_id)
            if sealed is None:
                raise TotpNotPending("Start an enrolment first (POST /auth/totp/enrol).")
            secret = unseal(settings.data_key, sealed, principal.account_id.bytes).decode()
            step = totp.matching_step(secret, code, 0)
            if step is None:
                await audit.record(conn, ctx, "auth.totp.confirm_failed", target_type="account",
                                   target_id=principal.account_id)
            else:
                await db.confirm_totp(conn, principal.account_id, step,
                                      [_recovery_hash(settings, principal.account_id, c) for c in codes])
                await audit.record(conn, ctx, "auth.totp.enrolled", target_type="account",
                                   target_id=principal.account_id)
                session = None
                if principal.scope == SCOPE_TOTP_ENROL:
                    full = await db.principal_for(conn, principal.account_id)
                    session = await _start_session(conn, settings, full, settings.staff_refresh_ttl_s)
        if step is None:
            raise InvalidCredentials("That code does not match the new authenticator entry; scan the QR again.")
        return TotpConfirmed(recovery_codes=codes, session=session)


# ---------------------------------------------------------------- sessions

async def _start_session(conn: Conn, settings: Settings, principal: Principal,
                         refresh_ttl_s: int, family_id: UUID | None = None) -> Session:
    refresh = "rt_" + secrets.token_urlsafe(32)
    await db.insert_refresh_token(conn, family_id or uuid.uuid4(), principal.account_id,
                                  keyed_hash(settings.otp_pepper, "refresh", refresh), refresh_ttl_s)
    return Session(access_token=issue_access_token(principal, settings), refresh_token=refresh,
                   expires_in=settings.access_token_ttl_s, account_id=principal.account_id, role=principal.role,
                   patient_id=principal.patient_id)


async def refresh_session(pool: asyncpg.Pool, settings: Settings, refresh_token: str, ctx: AuditContext) -> Session:
    """Rotate: the presented token is spent and a new one issued. Presenting a spent token again means it leaked
    (or the client raced itself): the whole sign-in is revoked and the user signs in afresh."""
    async with pool.acquire() as conn:
        async with conn.transaction():
            row = await db.refresh_token_for_update(conn, keyed_hash(settings.otp_pepper, "refresh", refresh_token))
            problem: RefreshTokenInvalid | RefreshTokenReused | None = None
            if row is None or row.expired or row.revoked:
                problem = RefreshTokenInvalid("Your session has ended; please sign in again.")
            elif row.rotated:
                await db.revoke_family(conn, row.family_id)
                await audit.record(conn, ctx, "auth.refresh.reuse_detected", target_type="account",
                                   target_id=row.account_id, details={"family_id": str(row.family_id)})
                problem = RefreshTokenReused(
                    "This session was signed out because an old sign-in token was used again; please sign in again.")
            elif await db.account_status(conn, row.account_id) != "active":
                problem = RefreshTokenInvalid("This account is disabled.")
            else:
                await db.mark_rotated(conn, row.id)
                principal = await db.principal_for(conn, row.account_id)
                ttl = settings.patient_refresh_ttl_s if principal.role == "patient" else settings.staff_refresh_ttl_s
                session = await _start_session(conn, settings, principal, ttl, row.family_id)
        if problem is not None:
            raise problem
        return session


async def logout(pool: asyncpg.Pool, settings: Settings, principal: Principal, refresh_token: str,
                 ctx: AuditContext) -> None:
    async with pool.acquire() as conn, conn.transaction():
        row = await db.refresh_token_for_update(conn, keyed_hash(settings.otp_pepper, "refresh", refresh_token))
        # only the owner's own session can be ended; anything else is silently a no-op (no token probing)
        if row is not None and row.account_id == principal.account_id:
            await db.revoke_family(conn, row.family_id)
        await audit.record(conn, ctx, "auth.logout", target_type="account", target_id=principal.account_id)
