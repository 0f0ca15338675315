"""Pharmacy registry rules: administrators onboard pharmacies and their pharmacists, anyone may read a pharmacy's
public facts, and a pharmacist acts only for their own pharmacy."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any
from uuid import UUID
from zoneinfo import ZoneInfo

import asyncpg
import msgspec

from api import audit
from api.audit import AuditContext
from api.auth.accounts import StaffAccount, StaffAccountIn, create_staff_account
from api.auth.principal import Principal
from api.db import Conn
from api.errors import Conflict, Forbidden, InvalidInput, NotFound
from api.settings import Settings
from pharmacy_link import db
from pharmacy_link.schemas import PharmacistIn, Pharmacy, PharmacyIn, PharmacyPatch, PharmacyStaffMember

# Opening hours are in Vietnam local time (no daylight saving), whatever the server's clock zone.
VN = ZoneInfo("Asia/Ho_Chi_Minh")
_PHONE_NOISE = re.compile(r"[ .()-]")
_DOMESTIC_PHONE = re.compile(r"^[0-9]{8,12}$")


class OtherPharmacy(Forbidden):
    slug, title = "other-pharmacy", "Not your pharmacy"


class PharmacyNotFound(NotFound):
    slug, title = "pharmacy-not-found", "Pharmacy not found"


class PharmacyIdentifierTaken(Conflict):
    slug, title = "pharmacy-identifier-taken", "Identifier already registered"


def require_own_pharmacy(principal: Principal, pharmacy_id: UUID) -> None:
    if principal.role == "pharmacist" and principal.pharmacy_id != pharmacy_id:
        raise OtherPharmacy("Pharmacists can only act for the pharmacy they belong to.")


def minute_of_week(at: datetime | None = None) -> int:
    """Minutes since Monday 00:00, Vietnam time: what opening hours are compared with."""
    local = (at or datetime.now(VN)).astimezone(VN)
    return (local.isoweekday() - 1) * 1440 + local.hour * 60 + local.minute


def domestic_phone(raw: str, path: str) -> str:
    """API-7 wants at most 12 digits: "+84 28 3855 1234" and "028.3855.1234" both become "02838551234"."""
    digits = _PHONE_NOISE.sub("", raw)
    if digits.startswith("+84"):
        digits = "0" + digits[3:]
    if not _DOMESTIC_PHONE.match(digits):
        raise InvalidInput(path, "A Vietnamese phone number of 8 to 12 digits in domestic form, e.g. 028 3855 1234.")
    return digits


def _identifier_taken(exc: asyncpg.UniqueViolationError) -> PharmacyIdentifierTaken:
    which = "national outlet id" if "national_outlet_id" in str(exc.constraint_name) else "GPP certificate number"
    return PharmacyIdentifierTaken(f"Another pharmacy is registered with this {which}.")


async def _view(conn: Conn, pharmacy_id: UUID) -> Pharmacy:
    found = await db.pharmacy(conn, pharmacy_id, minute_of_week())
    if found is None:
        raise PharmacyNotFound("No such pharmacy.")
    return found


async def get_pharmacy(pool: asyncpg.Pool, pharmacy_id: UUID) -> Pharmacy:
    async with pool.acquire() as conn:
        return await _view(conn, pharmacy_id)


async def create_pharmacy(pool: asyncpg.Pool, data: PharmacyIn, ctx: AuditContext) -> Pharmacy:
    stored = msgspec.structs.replace(data, phone=domestic_phone(data.phone, "body.phone"))
    async with pool.acquire() as conn, conn.transaction():
        try:
            pharmacy_id = await db.insert_pharmacy(conn, stored)
        except asyncpg.UniqueViolationError as exc:
            raise _identifier_taken(exc) from None
        await audit.record(conn, ctx, "pharmacy.created", target_type="pharmacy", target_id=pharmacy_id,
                           details={"name": data.name, "gpp_certificate_number": data.gpp_certificate_number})
        return await _view(conn, pharmacy_id)


async def update_pharmacy(pool: asyncpg.Pool, pharmacy_id: UUID, patch: PharmacyPatch,
                          ctx: AuditContext) -> Pharmacy:
    changes: dict[str, Any] = {f: getattr(patch, f) for f in patch.__struct_fields__
                               if getattr(patch, f) is not msgspec.UNSET}
    if ("latitude" in changes) != ("longitude" in changes):
        missing = "longitude" if "latitude" in changes else "latitude"
        raise InvalidInput(f"body.{missing}", "Send latitude and longitude together.")
    if "phone" in changes:
        changes["phone"] = domestic_phone(changes["phone"], "body.phone")
    async with pool.acquire() as conn, conn.transaction():
        active = await db.pharmacy_active_for_update(conn, pharmacy_id)
        if active is None:
            raise PharmacyNotFound("No such pharmacy.")
        try:
            await db.update_pharmacy(conn, pharmacy_id, changes)
        except asyncpg.UniqueViolationError as exc:
            raise _identifier_taken(exc) from None
        action = "pharmacy.updated"
        if changes.get("active", active) != active:
            action = "pharmacy.reactivated" if changes["active"] else "pharmacy.deactivated"
        await audit.record(conn, ctx, action, target_type="pharmacy", target_id=pharmacy_id,
                           details={"fields": sorted(changes)})
        return await _view(conn, pharmacy_id)


async def add_pharmacist(pool: asyncpg.Pool, settings: Settings, pharmacy_id: UUID, data: PharmacistIn,
                         ctx: AuditContext) -> StaffAccount:
    async with pool.acquire() as conn:
        if not await db.pharmacy_exists(conn, pharmacy_id):
            raise PharmacyNotFound("No such pharmacy.")
    account = StaffAccountIn(role="pharmacist", username=data.username, password=data.password,
                             full_name=data.full_name, pharmacy_id=pharmacy_id,
                             has_pharmacist_degree=data.has_pharmacist_degree)
    return await create_staff_account(pool, settings, account, ctx)


async def staff(pool: asyncpg.Pool, principal: Principal, pharmacy_id: UUID) -> list[PharmacyStaffMember]:
    require_own_pharmacy(principal, pharmacy_id)
    async with pool.acquire() as conn:
        return await db.staff(conn, pharmacy_id)
