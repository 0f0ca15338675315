"""Administrator endpoints: onboarding staff accounts. Who may call: admin only."""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, post
from litestar.params import JSONBody
from litestar.status_codes import HTTP_201_CREATED

from api.audit import audit_context
from api.auth.accounts import StaffAccount, StaffAccountIn, create_staff_account
from api.auth.principal import Principal, requires_role
from api.deps import AppSettings, Pool


class AdminController(Controller):
    path = "/admin"
    tags = ["admin"]
    guards = [requires_role("admin")]

    @post("/accounts", status_code=HTTP_201_CREATED, summary="Admin: create a doctor, pharmacist or admin account")
    async def create_account(self, data: JSONBody[StaffAccountIn], request: Request[Principal, Any, Any], pool: Pool,
                             settings: AppSettings) -> StaffAccount:
        return await create_staff_account(pool, settings, data, audit_context(request))
