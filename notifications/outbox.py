"""The notification outbox: the one way any module asks for a message to be sent.

Callers pass their own connection, inside the transaction that makes the change the message is about (a booking,
a signature, a dispense): the message exists exactly when the change committed (transactional outbox). Rows are
unique by idempotency key, so re-running a scheduler or retrying a request never enqueues twice. Dispatchers
(``notifications.dispatcher``) deliver after commit and are woken by the NOTIFY sent here.

Nothing secret goes in: ``params`` are template parameters readable by administrators. That is why OTPs are not
sent through the outbox (``api.auth.service`` sends them directly and keeps only a hash).
"""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from typing import Literal
from uuid import UUID
from zoneinfo import ZoneInfo

import asyncpg
import msgspec

from api.settings import Settings
from notifications.templates import is_reminder

VIETNAM = ZoneInfo("Asia/Ho_Chi_Minh")
WAKE_CHANNEL = "notification_outbox"

Category = Literal["security", "call", "appointment", "prescription", "payment", "vaccination"]
Channel = Literal["push", "sms"]



class Notification(msgspec.Struct, frozen=True, kw_only=True):
    """A message to an account, or to a patient: then to their account and every guardian's (a child has none)."""

    account_id: UUID | None = None
    patient_id: UUID | None = None
    kind: str  # a template name in notifications.templates
    category: Category
    subject: str  # what it is about, e.g. "consultation:<id>"; cancel_subject() drops its pending rows
    idempotency_key: str  # stable for the same logical message; the channel is appended per row
    params: dict[str, str | int] = {}
    channels: tuple[Channel, ...] = ("push",)
    not_before: datetime | None = None  # UTC; None = now (a reminder is then moved out of quiet hours)
    expires_at: datetime | None = None  # past this the message is pointless and is dropped, not sent late


def in_quiet_hours(at: datetime, settings: Settings) -> bool:
    hour = at.astimezone(VIETNAM).hour
    start, end = settings.notification_quiet_start_hour, settings.notification_quiet_end_hour
    if start == end:
        return False
    return (start <= hour or hour < end) if start > end else (start <= hour < end)


def next_send_time(at: datetime, kind: str, settings: Settings) -> datetime:
    """``at`` itself, or for a reminder the end of the quiet hours it falls in (Asia/Ho_Chi_Minh).

    Only reminders wait for the morning (templates.is_reminder). The answer to something that just happened (your
    booking, your prescription, your doctor cancelled, your doctor is calling, a sign-in) is sent at once, at any
    hour: the user is awake and waiting for it, or needs it before the morning."""
    if not is_reminder(kind) or not in_quiet_hours(at, settings):
        return at
    local = at.astimezone(VIETNAM)
    morning = datetime.combine(local.date(), time(settings.notification_quiet_end_hour), VIETNAM)
    if morning <= local:
        morning += timedelta(days=1)
    return morning.astimezone(UTC)


_ENQUEUE = """
-- recipients: the account, or the patient's account and every guardian's (SQL function, migration 0019)
WITH inserted AS (
  INSERT INTO notification_outbox (idempotency_key, account_id, kind, category, channel, params, subject,
                                   available_at, expires_at, max_attempts)
  SELECT $1 || ':' || r.account_id || ':' || c.channel, r.account_id, $4, $5, c.channel, $6, $7, $8, $9, $10
  FROM notification_recipients($2, $3) AS r (account_id) CROSS JOIN unnest($11::text[]) AS c (channel)
  ON CONFLICT (idempotency_key) DO NOTHING
  RETURNING id)
-- NOTIFY is delivered at commit, and only if the transaction commits
SELECT coalesce(array_agg(id), '{}'::uuid[]) AS ids, pg_notify('notification_outbox', '') FROM inserted
"""


async def enqueue(conn: asyncpg.Connection | asyncpg.pool.PoolConnectionProxy, notification: Notification,
                  settings: Settings, *, now: datetime | None = None) -> list[UUID]:
    """Queue one row per recipient account and channel, in the caller's transaction (one round trip); return the
    ids of rows created (none when the key was queued before, or a patient has no account and no guardian)."""
    if (notification.account_id is None) == (notification.patient_id is None):
        raise ValueError("a notification goes to an account or to a patient")
    now = now or datetime.now(UTC)
    when = next_send_time(max(notification.not_before or now, now), notification.kind, settings)
    row = await conn.fetchrow(
        _ENQUEUE, notification.idempotency_key, notification.account_id, notification.patient_id,
        notification.kind, notification.category, notification.params, notification.subject, when,
        notification.expires_at, settings.notification_max_attempts, list(dict.fromkeys(notification.channels)))
    assert row is not None
    return list(row["ids"])


async def cancel_subject(conn: asyncpg.Connection | asyncpg.pool.PoolConnectionProxy, subject: str, *,
                        kinds: tuple[str, ...] | None = None) -> int:
    """Cancel the not-yet-sent rows of a subject (e.g. the reminders of a dose just recorded); return how many."""
    return int(await conn.fetchval(
        """WITH cancelled AS (
             UPDATE notification_outbox SET status = 'cancelled', updated_at = now()
             WHERE subject = $1 AND status IN ('pending', 'retry') AND ($2::text[] IS NULL OR kind = ANY($2))
             RETURNING id)
           SELECT count(*) FROM cancelled""",
        subject, list(kinds) if kinds is not None else None))
