"""Creating staff accounts (doctor, pharmacist, admin) for ``lienthong createuser``, the admin API and demo data."""

from __future__ import annotations

import asyncio
from typing import Annotated, Literal
from uuid import UUID

import asyncpg
import msgspec

from api import audit
from api.audit import AuditContext
from api.auth import db
from api.auth.schemas import Password, Strict, Username
from api.auth.secrets_box import hash_password, seal
from api.errors import Conflict, InvalidInput
from api.settings import Settings

StaffRole = Literal["doctor", "pharmacist", "admin"]
MIN_PASSWORD_LENGTH = 10


class StaffAccountIn(Strict):
    role: StaffRole
    username: Username
    password: Password
    full_name: Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
    facility_code: Annotated[str, msgspec.Meta(pattern=r"^[0-9A-Za-z]{5}$")] | None = None
    title: Annotated[str, msgspec.Meta(max_length=50)] = ""
    licence_number: Annotated[str, msgspec.Meta(min_length=3, max_length=50)] | None = None
    pharmacy_id: UUID | None = None
    has_pharmacist_degree: bool = False


class StaffAccount(msgspec.Struct):
    account_id: UUID
    role: StaffRole
    username: str


class UsernameTaken(Conflict):
    slug, title = "username-taken", "Username already in use"


async def create_staff_account(pool: asyncpg.Pool, settings: Settings, data: StaffAccountIn, ctx: AuditContext,
                               *, totp_secret: str | None = None) -> StaffAccount:
    """Create the account; the TOTP factor is enrolled at first sign-in unless ``totp_secret`` is given (demo)."""
    if len(data.password) < MIN_PASSWORD_LENGTH:
        raise InvalidInput("body.password", f"Use at least {MIN_PASSWORD_LENGTH} characters.")
    password_hash = await asyncio.to_thread(hash_password, data.password)
    async with pool.acquire() as conn, conn.transaction():
        facility_id = None
        if data.role == "doctor":
            if data.facility_code is None or data.licence_number is None:
                raise InvalidInput("body.facility_code", "A doctor needs a facility_code and a licence_number.")
            facility_id = await db.facility_id_by_code(conn, data.facility_code)
            if facility_id is None:
                raise InvalidInput("body.facility_code", f"No facility with code {data.facility_code}.")
        if data.role == "pharmacist" and (
                data.pharmacy_id is None or not await db.pharmacy_exists(conn, data.pharmacy_id)):
            raise InvalidInput("body.pharmacy_id", "A pharmacist needs the id of an existing pharmacy.")
        try:
            account_id = await db.insert_staff_account(conn, data.role, data.username, password_hash, data.full_name)
            if facility_id is not None and data.licence_number is not None:
                await db.insert_doctor(conn, account_id, facility_id, data.title, data.licence_number)
            if data.role == "pharmacist" and data.pharmacy_id is not None:
                await db.insert_pharmacist(conn, account_id, data.pharmacy_id, data.has_pharmacist_degree)
        except asyncpg.UniqueViolationError as exc:
            if "licence" in str(exc.constraint_name):
                raise Conflict("Another doctor already has this licence number.") from None
            raise UsernameTaken(f"The username {data.username!r} is taken.") from None
        if totp_secret is not None:
            sealed = seal(settings.data_key, totp_secret.encode(), account_id.bytes)
            await db.set_confirmed_totp(conn, account_id, sealed)
        await audit.record(conn, ctx, "account.created", target_type="account", target_id=account_id,
                           details={"role": data.role, "username": data.username})
    return StaffAccount(account_id=account_id, role=data.role, username=data.username)
