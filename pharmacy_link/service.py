"""Pharmacy registry rules: a pharmacist acts only for their own pharmacy."""

from __future__ import annotations

from uuid import UUID

import asyncpg
import msgspec

from api.auth.principal import Principal
from api.errors import Forbidden
from pharmacy_link.schemas import PharmacyStaffMember


class OtherPharmacy(Forbidden):
    slug, title = "other-pharmacy", "Not your pharmacy"


def require_own_pharmacy(principal: Principal, pharmacy_id: UUID) -> None:
    if principal.role == "pharmacist" and principal.pharmacy_id != pharmacy_id:
        raise OtherPharmacy("Pharmacists can only act for the pharmacy they belong to.")


async def staff(pool: asyncpg.Pool, principal: Principal, pharmacy_id: UUID) -> list[PharmacyStaffMember]:
    require_own_pharmacy(principal, pharmacy_id)
    rows = await pool.fetch(
        """SELECT a.id AS account_id, a.full_name, p.has_pharmacist_degree
           FROM pharmacists p JOIN accounts a ON a.id = p.account_id
           WHERE p.pharmacy_id = $1 ORDER BY a.full_name""", pharmacy_id)
    return [msgspec.convert(dict(r), PharmacyStaffMember) for r in rows]
