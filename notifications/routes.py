"""HTTP endpoints of notifications: one's own preferences and feed, and the administrators' outbox view.
Who may call: see each handler's guards. Device registration is in ``notifications.device_routes``."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal, get_args
from uuid import UUID

from litestar import Controller, Request, get, post, put
from litestar.params import FromPath, JSONBody, QueryParameter
from litestar.status_codes import HTTP_204_NO_CONTENT

from api.audit import audit_context, record
from api.auth.principal import ROLES, Principal, requires_role
from api.deps import Pool
from api.errors import InvalidInput, NotFound
from notifications import db
from notifications.schemas import (
    ChannelName,
    DeadLetter,
    FeedItem,
    OptionalCategory,
    OutboxCounts,
    Preference,
    Preferences,
    PreferencesIn,
)
from notifications.templates import render_push


def _each_pair_once(changes: list[Preference]) -> None:
    """One statement upserts the changes; a pair listed twice would be two contradicting (or pointless) changes."""
    first: dict[tuple[str, str], int] = {}
    for index, change in enumerate(changes):
        seen = first.setdefault((change.category, change.channel), index)
        if seen != index:
            raise InvalidInput(f"body.preferences[{index}]",
                               f"The same category and channel as preferences[{seen}]; list each pair once.")


def _all_preferences(saved: dict[tuple[str, str], bool]) -> Preferences:
    return Preferences(preferences=[
        Preference(category=category, channel=channel, enabled=saved.get((category, channel), True))
        for category in get_args(OptionalCategory) for channel in get_args(ChannelName)])


class NotificationController(Controller):
    path = "/notifications"
    tags = ["notifications"]
    guards = [requires_role(*ROLES)]

    @get("/preferences", summary="Any signed-in user: which reminders reach me by push and SMS")
    async def preferences(self, request: Request[Principal, Any, Any], pool: Pool) -> Preferences:
        async with pool.acquire() as conn:
            return _all_preferences(await db.preferences(conn, request.user.account_id))

    @put("/preferences", summary="Any signed-in user: turn reminder categories on or off per channel "
                                 "(security and call messages cannot be turned off)")
    async def save_preferences(self, data: JSONBody[PreferencesIn], request: Request[Principal, Any, Any],
                               pool: Pool) -> Preferences:
        _each_pair_once(data.preferences)
        async with pool.acquire() as conn, conn.transaction():
            await db.save_preferences(conn, request.user.account_id, data.preferences)
            await record(conn, audit_context(request), "notification.preferences_changed",
                         target_type="account", target_id=request.user.account_id,
                         details={"changes": [[p.category, p.channel, p.enabled] for p in data.preferences]})
            return _all_preferences(await db.preferences(conn, request.user.account_id))

    @get("/", summary="Any signed-in user: the pushes sent to me, newest first (the app's notification list)")
    async def feed(
        self, request: Request[Principal, Any, Any], pool: Pool,
        limit: Annotated[int, QueryParameter(ge=1, le=100)] = 30,
        before: Annotated[datetime | None, QueryParameter(description="sent_at of the last item of the previous "
                                                                        "page")] = None,
    ) -> list[FeedItem]:
        async with pool.acquire() as conn:
            rows = await db.sent_pushes(conn, request.user.account_id, before, limit)
        items = []
        for row in rows:
            title, body, link = render_push(row["kind"], row["params"])
            items.append(FeedItem(id=row["id"], kind=row["kind"], category=row["category"], title=title, body=body,
                                  link=link, sent_at=row["sent_at"], opened_at=row["opened_at"]))
        return items

    @post("/{notification_id:uuid}/opened", status_code=HTTP_204_NO_CONTENT,
          summary="Any signed-in user: the app showed or opened one of my notifications (stops the SMS fallback)")
    async def opened(self, notification_id: FromPath[UUID], request: Request[Principal, Any, Any],
                     pool: Pool) -> None:
        async with pool.acquire() as conn:
            if not await db.mark_opened(conn, request.user.account_id, notification_id):
                raise NotFound("No such notification of yours.")


class NotificationAdminController(Controller):
    path = "/admin/notifications"
    tags = ["admin"]
    guards = [requires_role("admin")]

    @get("/", summary="Admin: dead-lettered and permanently failed notifications with their attempt history")
    async def dead_letters(
        self, pool: Pool,
        status: Annotated[list[Literal["dead", "failed"]] | None, QueryParameter()] = None,
        limit: Annotated[int, QueryParameter(ge=1, le=500)] = 100,
    ) -> list[DeadLetter]:
        async with pool.acquire() as conn:
            return await db.dead_letters(conn, list(status or ["dead", "failed"]), limit)

    @get("/counts", summary="Admin: outbox rows per status and the dispatcher's lag")
    async def counts(self, pool: Pool) -> OutboxCounts:
        async with pool.acquire() as conn:
            return await db.counts(conn)

    @post("/{notification_id:uuid}/requeue", status_code=HTTP_204_NO_CONTENT,
          summary="Admin: send a dead or failed notification again (after fixing its cause)")
    async def requeue(self, notification_id: FromPath[UUID], request: Request[Principal, Any, Any],
                      pool: Pool) -> None:
        async with pool.acquire() as conn, conn.transaction():
            if not await db.requeue(conn, notification_id):
                raise NotFound("No dead or failed notification with this id.")
            await record(conn, audit_context(request), "notification.requeued", target_type="notification",
                         target_id=notification_id)
            await conn.execute("SELECT pg_notify('notification_outbox', '')")
