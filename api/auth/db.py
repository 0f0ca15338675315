"""SQL of accounts, OTP challenges, refresh tokens and second factors."""

from __future__ import annotations

from uuid import UUID

import msgspec

from api.auth.principal import Principal
from api.db import Conn


class OtpWindowCounts(msgspec.Struct, frozen=True):
    phone_minute: int
    phone_hour: int
    ip_minute: int
    ip_hour: int
    phone_minute_reset_s: int
    phone_hour_reset_s: int
    ip_minute_reset_s: int
    ip_hour_reset_s: int


class LiveOtp(msgspec.Struct, frozen=True):
    id: UUID
    code_hash: bytes
    attempts: int


class StaffLogin(msgspec.Struct, frozen=True):
    id: UUID
    role: str
    password_hash: str
    totp_secret_enc: bytes | None
    totp_last_step: int
    failed_logins: int
    locked_for_s: int
    status: str


class RefreshRow(msgspec.Struct, frozen=True):
    id: UUID
    family_id: UUID
    account_id: UUID
    expired: bool
    rotated: bool
    revoked: bool


async def lock_key(conn: Conn, key: str) -> None:
    """Transaction-scoped advisory lock: serialises OTP sends/verifies per phone across processes."""
    await conn.execute("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", key)


async def otp_window_counts(conn: Conn, phone: str, ip: str | None) -> OtpWindowCounts:
    row = await conn.fetchrow(
        """WITH p AS (SELECT created_at FROM otp_challenges
                      WHERE phone = $1 AND created_at > now() - interval '1 hour'),
                i AS (SELECT created_at FROM otp_challenges
                      WHERE $2::inet IS NOT NULL AND client_ip = $2::inet AND created_at > now() - interval '1 hour')
           SELECT (SELECT count(*) FROM p WHERE created_at > now() - interval '1 minute') AS phone_minute,
                  (SELECT count(*) FROM p) AS phone_hour,
                  (SELECT count(*) FROM i WHERE created_at > now() - interval '1 minute') AS ip_minute,
                  (SELECT count(*) FROM i) AS ip_hour,
                  (SELECT ceil(extract(epoch FROM min(created_at) + interval '1 minute' - now()))::int
                     FROM p WHERE created_at > now() - interval '1 minute') AS phone_minute_reset_s,
                  (SELECT ceil(extract(epoch FROM min(created_at) + interval '1 hour' - now()))::int FROM p)
                     AS phone_hour_reset_s,
                  (SELECT ceil(extract(epoch FROM min(created_at) + interval '1 minute' - now()))::int
                     FROM i WHERE created_at > now() - interval '1 minute') AS ip_minute_reset_s,
                  (SELECT ceil(extract(epoch FROM min(created_at) + interval '1 hour' - now()))::int FROM i)
                     AS ip_hour_reset_s""",
        phone, ip,
    )
    assert row is not None
    return OtpWindowCounts(**{k: int(v or 0) for k, v in row.items()})


async def insert_otp(conn: Conn, challenge_id: UUID, phone: str, ip: str | None, code_hash: bytes,
                     ttl_s: int) -> None:
    # Older live codes die when a new one is sent: only the latest SMS is valid.
    await conn.execute(
        "UPDATE otp_challenges SET consumed_at = now() WHERE phone = $1 AND consumed_at IS NULL", phone)
    await conn.execute(
        """INSERT INTO otp_challenges (id, phone, client_ip, code_hash, expires_at)
           VALUES ($1, $2, $3::inet, $4, now() + make_interval(secs => $5))""",
        challenge_id, phone, ip, code_hash, ttl_s,
    )


async def delete_otp(conn: Conn, challenge_id: UUID) -> None:
    await conn.execute("DELETE FROM otp_challenges WHERE id = $1", challenge_id)


async def live_otp_for_update(conn: Conn, phone: str, max_attempts: int) -> LiveOtp | None:
    row = await conn.fetchrow(
        """SELECT id, code_hash, attempts FROM otp_challenges
           WHERE phone = $1 AND consumed_at IS NULL AND expires_at > now() AND attempts < $2
           ORDER BY created_at DESC LIMIT 1 FOR UPDATE""",
        phone, max_attempts,
    )
    return LiveOtp(**dict(row)) if row else None


async def count_otp_attempt(conn: Conn, challenge_id: UUID) -> int:
    attempts: int = await conn.fetchval(
        "UPDATE otp_challenges SET attempts = attempts + 1 WHERE id = $1 RETURNING attempts", challenge_id)
    return attempts


async def consume_otp(conn: Conn, challenge_id: UUID) -> None:
    await conn.execute("UPDATE otp_challenges SET consumed_at = now() WHERE id = $1", challenge_id)


async def patient_account_by_phone(conn: Conn, phone: str) -> tuple[UUID, UUID, str] | None:
    row = await conn.fetchrow(
        """SELECT a.id, p.id AS patient_id, a.status FROM accounts a JOIN patients p ON p.account_id = a.id
           WHERE a.phone = $1 AND a.role = 'patient'""", phone)
    return (row["id"], row["patient_id"], row["status"]) if row else None


async def create_patient_account(conn: Conn, phone: str, display_name: str) -> tuple[UUID, UUID]:
    account_id: UUID = await conn.fetchval(
        "INSERT INTO accounts (role, phone, full_name) VALUES ('patient', $1, $2) RETURNING id", phone, display_name)
    patient_id: UUID = await conn.fetchval(
        "INSERT INTO patients (account_id, full_name) VALUES ($1, $2) RETURNING id", account_id, display_name)
    return account_id, patient_id


async def staff_login_for_update(conn: Conn, username: str) -> StaffLogin | None:
    row = await conn.fetchrow(
        """SELECT id, role, password_hash, totp_secret_enc, totp_last_step, failed_logins, status,
                  greatest(0, ceil(extract(epoch FROM locked_until - now())))::int AS locked_for_s
           FROM accounts WHERE username = $1 AND role <> 'patient' FOR UPDATE""", username)
    return StaffLogin(**{**dict(row), "locked_for_s": row["locked_for_s"] or 0}) if row else None


async def record_failed_login(conn: Conn, account_id: UUID, max_failures: int, lockout_s: int) -> bool:
    """Count a failure; lock the account when it reaches the limit. Returns True when it just got locked."""
    locked: bool = await conn.fetchval(
        """UPDATE accounts SET failed_logins = CASE WHEN failed_logins + 1 >= $2 THEN 0 ELSE failed_logins + 1 END,
                               locked_until = CASE WHEN failed_logins + 1 >= $2
                                              THEN now() + make_interval(secs => $3) ELSE locked_until END
           WHERE id = $1 RETURNING failed_logins = 0""", account_id, max_failures, lockout_s)
    return locked


async def record_successful_login(conn: Conn, account_id: UUID, totp_step: int | None) -> None:
    await conn.execute(
        """UPDATE accounts SET failed_logins = 0, locked_until = NULL,
                               totp_last_step = greatest(totp_last_step, coalesce($2, totp_last_step))
           WHERE id = $1""", account_id, totp_step)


async def principal_for(conn: Conn, account_id: UUID) -> Principal:
    row = await conn.fetchrow(
        """SELECT a.id AS account_id, a.role, p.id AS patient_id, d.facility_id, ph.pharmacy_id
           FROM accounts a LEFT JOIN patients p ON p.account_id = a.id
           LEFT JOIN doctors d ON d.account_id = a.id LEFT JOIN pharmacists ph ON ph.account_id = a.id
           WHERE a.id = $1""", account_id)
    assert row is not None
    return Principal(**dict(row))


async def insert_refresh_token(conn: Conn, family_id: UUID, account_id: UUID, token_hash: bytes,
                               ttl_s: int) -> UUID:
    token_id: UUID = await conn.fetchval(
        """INSERT INTO refresh_tokens (family_id, account_id, token_hash, expires_at)
           VALUES ($1, $2, $3, now() + make_interval(secs => $4)) RETURNING id""",
        family_id, account_id, token_hash, ttl_s)
    return token_id


async def refresh_token_for_update(conn: Conn, token_hash: bytes) -> RefreshRow | None:
    row = await conn.fetchrow(
        """SELECT id, family_id, account_id, expires_at <= now() AS expired, rotated_at IS NOT NULL AS rotated,
                  revoked_at IS NOT NULL AS revoked
           FROM refresh_tokens WHERE token_hash = $1 FOR UPDATE""", token_hash)
    return RefreshRow(**dict(row)) if row else None


async def mark_rotated(conn: Conn, token_id: UUID) -> None:
    await conn.execute("UPDATE refresh_tokens SET rotated_at = now() WHERE id = $1", token_id)


async def revoke_family(conn: Conn, family_id: UUID) -> None:
    await conn.execute(
        "UPDATE refresh_tokens SET revoked_at = now() WHERE family_id = $1 AND revoked_at IS NULL", family_id)


async def account_status(conn: Conn, account_id: UUID) -> str | None:
    status: str | None = await conn.fetchval("SELECT status FROM accounts WHERE id = $1", account_id)
    return status


async def set_pending_totp(conn: Conn, account_id: UUID, sealed: bytes) -> str:
    username: str = await conn.fetchval(
        "UPDATE accounts SET totp_pending_enc = $2 WHERE id = $1 RETURNING username", account_id, sealed)
    return username


async def pending_totp_for_update(conn: Conn, account_id: UUID) -> bytes | None:
    sealed: bytes | None = await conn.fetchval(
        "SELECT totp_pending_enc FROM accounts WHERE id = $1 FOR UPDATE", account_id)
    return sealed


async def confirm_totp(conn: Conn, account_id: UUID, step: int, code_hashes: list[bytes]) -> None:
    await conn.execute(
        """UPDATE accounts SET totp_secret_enc = totp_pending_enc, totp_pending_enc = NULL,
                               totp_confirmed_at = now(), totp_last_step = $2 WHERE id = $1""", account_id, step)
    await conn.execute("DELETE FROM recovery_codes WHERE account_id = $1", account_id)
    await conn.executemany("INSERT INTO recovery_codes (account_id, code_hash) VALUES ($1, $2)",
                           [(account_id, h) for h in code_hashes])


async def use_recovery_code(conn: Conn, account_id: UUID, code_hash: bytes) -> bool:
    used: UUID | None = await conn.fetchval(
        """UPDATE recovery_codes SET used_at = now()
           WHERE account_id = $1 AND code_hash = $2 AND used_at IS NULL RETURNING account_id""",
        account_id, code_hash)
    return used is not None


async def facility_id_by_code(conn: Conn, code: str) -> UUID | None:
    found: UUID | None = await conn.fetchval("SELECT id FROM facilities WHERE upper(code) = upper($1)", code)
    return found


async def pharmacy_exists(conn: Conn, pharmacy_id: UUID) -> bool:
    found: bool = await conn.fetchval("SELECT EXISTS (SELECT 1 FROM pharmacies WHERE id = $1)", pharmacy_id)
    return found


async def insert_staff_account(conn: Conn, role: str, username: str, password_hash: str,
                               full_name: str) -> UUID:
    account_id: UUID = await conn.fetchval(
        """INSERT INTO accounts (role, username, password_hash, full_name) VALUES ($1, $2, $3, $4) RETURNING id""",
        role, username, password_hash, full_name)
    return account_id


async def insert_doctor(conn: Conn, account_id: UUID, facility_id: UUID, title: str,
                        licence_number: str) -> None:
    await conn.execute(
        "INSERT INTO doctors (account_id, facility_id, title, licence_number) VALUES ($1, $2, $3, $4)",
        account_id, facility_id, title, licence_number)


async def insert_pharmacist(conn: Conn, account_id: UUID, pharmacy_id: UUID, degree: bool) -> None:
    await conn.execute(
        "INSERT INTO pharmacists (account_id, pharmacy_id, has_pharmacist_degree) VALUES ($1, $2, $3)",
        account_id, pharmacy_id, degree)


async def set_confirmed_totp(conn: Conn, account_id: UUID, sealed: bytes) -> None:
    await conn.execute(
        "UPDATE accounts SET totp_secret_enc = $2, totp_confirmed_at = now() WHERE id = $1", account_id, sealed)
