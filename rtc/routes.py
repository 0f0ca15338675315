"""Video-call endpoints: the join token and quality samples over REST, and the signaling WebSocket."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from litestar import Controller, Request, post, websocket
from litestar.connection import WebSocket
from litestar.datastructures import State
from litestar.di import NamedDependency, Provide
from litestar.params import FromPath, JSONBody
from litestar.status_codes import HTTP_201_CREATED, HTTP_204_NO_CONTENT

from api.audit import audit_context
from api.auth.principal import Principal, requires_role
from api.deps import AppSettings, Pool
from consultations.errors import ConsultationNotFound, IllegalTransition
from consultations.service import lock_consultation, participant_role
from rtc import db, tokens
from rtc.hub import Hub
from rtc.schemas import JoinToken, QualitySample

PARTICIPANTS = requires_role("patient", "doctor")


class CallController(Controller):
    path = "/consultations/{consultation_id:uuid}"
    tags = ["video calls"]

    @post("/join-token", status_code=HTTP_201_CREATED, guards=[PARTICIPANTS],
          summary="Its patient/guardian or treating doctor, in the join window: a one-minute, single-use token "
                  "for the call's WebSocket")
    async def join_token(self, consultation_id: FromPath[UUID], request: Request[Principal, Any, Any], pool: Pool,
                         settings: AppSettings) -> JoinToken:
        return await tokens.issue(pool, settings, request.user, consultation_id, audit_context(request))

    @post("/quality", status_code=HTTP_204_NO_CONTENT, guards=[PARTICIPANTS],
          summary="Its patient/guardian or treating doctor, while the call can run: one getStats sample "
                  "(the WebSocket's quality frame does the same)")
    async def quality(self, consultation_id: FromPath[UUID], data: JSONBody[QualitySample],
                      request: Request[Principal, Any, Any], pool: Pool) -> None:
        async with pool.acquire() as conn, conn.transaction():
            try:
                c = await lock_consultation(conn, consultation_id)
            except ConsultationNotFound:
                c = None
            role = participant_role(c, request.user.account_id) if c else None
            if c is None or role is None:
                raise ConsultationNotFound("No such consultation, or you are not part of it.")
            if c.status not in tokens.JOINABLE:
                raise IllegalTransition(f"A consultation that is {c.status} takes no more call samples.",
                                        extra={"current_status": c.status})
            await db.insert_quality(conn, consultation_id, role, data)


def _provide_hub(state: State) -> Hub:
    hub: Hub = state.rtc_hub
    return hub


@websocket("/ws/consultations/{consultation_id:uuid}", opt={"public": True},
           dependencies={"hub": Provide(_provide_hub, sync_to_thread=False)})
async def signaling(socket: WebSocket[Any, Any, Any], consultation_id: FromPath[UUID],
                    hub: NamedDependency[Hub]) -> None:
    """Signaling for one participant (rtc.md §2). Public at the HTTP level: the join token in the first frame
    authenticates, because browsers cannot set headers on a WebSocket and URLs end up in proxy logs."""
    await hub.serve(socket, consultation_id)
