"""SQL of the notification endpoints: preferences, the user's feed and administrators' view of the outbox."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg
import msgspec

from notifications.schemas import DeadLetter, DeadLetterAttempt, OutboxCounts, Preference

Conn = asyncpg.Connection | asyncpg.pool.PoolConnectionProxy


async def preferences(conn: Conn, account_id: UUID) -> dict[tuple[str, str], bool]:
    rows = await conn.fetch(
        "SELECT category, channel, enabled FROM notification_preferences WHERE account_id = $1", account_id)
    return {(r["category"], r["channel"]): r["enabled"] for r in rows}


async def save_preferences(conn: Conn, account_id: UUID, changes: list[Preference]) -> None:
    await conn.execute(
        """INSERT INTO notification_preferences (account_id, category, channel, enabled)
           SELECT $1, * FROM unnest($2::text[], $3::text[], $4::bool[])
           ON CONFLICT (account_id, category, channel) DO UPDATE SET enabled = excluded.enabled, updated_at = now()""",
        account_id, [p.category for p in changes], [p.channel for p in changes], [p.enabled for p in changes])


async def sent_pushes(conn: Conn, account_id: UUID, before: datetime | None, limit: int) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        """SELECT id, kind, category, params, sent_at, opened_at FROM notification_outbox
           WHERE account_id = $1 AND channel = 'push' AND status = 'sent' AND ($2::timestamptz IS NULL OR sent_at < $2)
           ORDER BY sent_at DESC LIMIT $3""", account_id, before, limit)
    return [dict(r) for r in rows]


async def mark_opened(conn: Conn, account_id: UUID, notification_id: UUID) -> bool:
    """True when the notification is the account's (opening twice keeps the first time)."""
    found = await conn.fetchval(
        """UPDATE notification_outbox SET opened_at = coalesce(opened_at, now()), updated_at = now()
           WHERE id = $1 AND account_id = $2 RETURNING id""", notification_id, account_id)
    return found is not None


async def dead_letters(conn: Conn, statuses: list[str], limit: int) -> list[DeadLetter]:
    rows = await conn.fetch(
        """SELECT o.id, o.account_id, o.kind, o.category, o.channel, o.status, o.attempts, o.last_error,
                  o.created_at, o.updated_at,
                  coalesce((SELECT json_agg(json_build_object('attempt', a.attempt, 'outcome', a.outcome,
                                                              'error', a.error, 'at', a.at) ORDER BY a.id)
                            FROM notification_attempts a WHERE a.outbox_id = o.id), '[]') AS history
           FROM notification_outbox o WHERE o.status = ANY($1::text[])
           ORDER BY o.updated_at DESC LIMIT $2""", statuses, limit)
    return [DeadLetter(**{**dict(r), "history": msgspec.json.decode(r["history"], type=list[DeadLetterAttempt])})
            for r in rows]


async def requeue(conn: Conn, notification_id: UUID) -> bool:
    found = await conn.fetchval(
        """UPDATE notification_outbox SET status = 'pending', attempts = 0, available_at = now(), locked_until = NULL,
                  updated_at = now()
           WHERE id = $1 AND status IN ('dead', 'failed') RETURNING id""", notification_id)
    return found is not None


async def counts(conn: Conn) -> OutboxCounts:
    row = await conn.fetchrow(
        """SELECT (SELECT coalesce(json_object_agg(status, n), '{}') FROM
                    (SELECT status, count(*) AS n FROM notification_outbox GROUP BY status) s) AS by_status,
                  (SELECT extract(epoch FROM now() - min(available_at)) FROM notification_outbox
                   WHERE status IN ('pending', 'retry') AND available_at <= now()) AS lag""")
    assert row is not None
    lag = row["lag"]
    return OutboxCounts(by_status=msgspec.json.decode(row["by_status"], type=dict[str, int]),
                        oldest_due_seconds=float(lag) if lag is not None else None)
