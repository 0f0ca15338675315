"""Append-only audit log: who did what to whom, written in the same transaction as the change it records."""

from __future__ import annotations

import ipaddress
from typing import Any
from uuid import UUID

import msgspec
from litestar import Request

from api.auth.principal import Principal
from api.db import Conn


class AuditContext(msgspec.Struct, frozen=True):
    """The request facts every audit row carries."""

    actor_account_id: UUID | None
    actor_role: str | None
    client_ip: str | None
    user_agent: str | None
    request_id: str | None

    def as_actor(self, account_id: UUID, role: str) -> AuditContext:
        """The same request, attributed to an account that just proved who it is (sign-in)."""
        return msgspec.structs.replace(self, actor_account_id=account_id, actor_role=role)


# The actor of background work (worker jobs, outboxes): no account, no request.
SYSTEM = AuditContext(actor_account_id=None, actor_role="system", client_ip=None, user_agent="lienthong worker",
                      request_id=None)


def audit_context(request: Request[Any, Any, Any]) -> AuditContext:
    user = request.scope.get("user")
    principal = user if isinstance(user, Principal) else None
    client = request.client
    client_ip = client.host if client else None
    try:
        ipaddress.ip_address(client_ip or "")
    except ValueError:
        client_ip = None  # test clients and unix sockets report non-IP hosts
    return AuditContext(
        actor_account_id=principal.account_id if principal else None,
        actor_role=principal.role if principal else None,
        client_ip=client_ip,
        user_agent=(request.headers.get("user-agent") or "")[:300] or None,
        request_id=request.scope.get("state", {}).get("request_id"),
    )


async def record(conn: Conn, ctx: AuditContext, action: str, *, target_type: str | None = None,
                 target_id: object | None = None, subject_patient_id: UUID | None = None,
                 details: dict[str, Any] | None = None) -> None:
    await conn.execute(
        """INSERT INTO audit_log (actor_account_id, actor_role, action, target_type, target_id,
                                  subject_patient_id, client_ip, user_agent, request_id, details)
           VALUES ($1, $2, $3, $4, $5, $6, $7::inet, $8, $9, $10)""",
        ctx.actor_account_id, ctx.actor_role, action, target_type,
        None if target_id is None else str(target_id), subject_patient_id, ctx.client_ip, ctx.user_agent,
        ctx.request_id, details or {},
    )
