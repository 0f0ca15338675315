"""HTTP endpoints of the pharmacy registry. Who may call: see each handler's guards."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from litestar import Controller, Request, get
from litestar.params import FromPath

from api.auth.principal import Principal, requires_role
from api.deps import Pool
from pharmacy_link import service
from pharmacy_link.schemas import PharmacyStaffMember


class PharmacyController(Controller):
    path = "/pharmacies"
    tags = ["pharmacies"]

    @get("/{pharmacy_id:uuid}/pharmacists", guards=[requires_role("pharmacist", "admin")],
         summary="Pharmacist of this pharmacy, or admin: the pharmacy's staff")
    async def staff(self, pharmacy_id: FromPath[UUID], request: Request[Principal, Any, Any],
                    pool: Pool) -> list[PharmacyStaffMember]:
        return await service.staff(pool, request.user, pharmacy_id)
