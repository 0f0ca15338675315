"""Shared arrangements of the delivery tests: accounts with devices, queued notifications, a dispatcher wired to the
local FCM and SMS sandboxes through the real clients (firebase-admin over HTTP, requests)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, time, timedelta
from uuid import UUID

import asyncpg

from api.app import sms_gateway_for
from api.settings import Settings
from notifications.dispatcher import Dispatcher
from notifications.fcm import push_sender_for
from notifications.outbox import VIETNAM, Notification, enqueue


def _last_vietnam_morning() -> datetime:
    """10:00 Vietnam time today, or yesterday when that is still ahead: a daytime instant in the past, so tests
    queue and send outside the quiet hours whenever they run, and the rows are due at once."""
    now = datetime.now(UTC)
    morning = datetime.combine(now.astimezone(VIETNAM).date(), time(10), VIETNAM).astimezone(UTC)
    return morning if morning <= now else morning - timedelta(days=1)


DAYTIME = _last_vietnam_morning()


async def account_with_phone(pool: asyncpg.Pool, phone: str, name: str = "Phạm Thu Hà") -> UUID:
    account_id: UUID = await pool.fetchval(
        "INSERT INTO accounts (role, phone, full_name) VALUES ('patient', $1, $2) RETURNING id", phone, name)
    await pool.execute("INSERT INTO patients (account_id, full_name) VALUES ($1, $2)", account_id, name)
    return account_id


async def add_device(pool: asyncpg.Pool, account_id: UUID, target: str, platform: str = "android") -> None:
    await pool.execute(
        "INSERT INTO push_devices (account_id, target_kind, target, platform) VALUES ($1, 'fid', $2, $3)",
        account_id, target, platform)


def vaccination_notice(account_id: UUID, key: str = "vx:1", *, kind: str = "vaccination_due_soon",
                       channels: tuple[str, ...] = ("push",), **changes: object) -> Notification:
    fields: dict[str, object] = {
        "account_id": account_id, "kind": kind, "category": "vaccination", "subject": f"vaccination:{key}",
        "idempotency_key": key, "channels": channels,
        "params": {"child_id": "c1", "child_name": "Bảo", "vaccine_name": "Sởi – Rubella (MR)",
                   "due_date": "18/11/2025"}}
    fields.update(changes)
    return Notification(**fields)  # type: ignore[arg-type]


async def queue(pool: asyncpg.Pool, settings: Settings, *notices: Notification, now: datetime = DAYTIME) -> None:
    async with pool.acquire() as conn, conn.transaction():
        for notice in notices:
            await enqueue(conn, notice, settings, now=now)


@contextlib.asynccontextmanager
async def dispatcher(pool: asyncpg.Pool, settings: Settings,
                     clock: Callable[[], datetime] = lambda: DAYTIME) -> AsyncIterator[Dispatcher]:
    push = push_sender_for(settings)
    sms = sms_gateway_for(settings)
    try:
        yield Dispatcher(pool, settings, push, sms, clock=clock)
    finally:
        await push.close()
        sms.close()


async def statuses(pool: asyncpg.Pool) -> dict[str, str]:
    """channel -> status, for tests that queue one notice."""
    return dict(await pool.fetch("SELECT channel, status FROM notification_outbox ORDER BY created_at"))
