"""The SQL of video calls: join tokens, room presence, chat, quality samples and the signaling outbox."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Literal
from uuid import UUID

import msgspec

from api.db import Conn, record_to
from rtc.schemas import CallRole, ChatMessage, QualitySample

PresenceState = Literal["connected", "away"]


class JoinTokenRow(msgspec.Struct, frozen=True):
    jti: UUID
    secret_sha256: bytes
    consultation_id: UUID
    account_id: UUID
    role: CallRole
    expires_at: datetime
    consumed_at: datetime | None


class Presence(msgspec.Struct, frozen=True):
    role: CallRole
    account_id: UUID
    session_id: str
    instance_id: str
    state: PresenceState


# ---- join tokens -----------------------------------------------------------------------------------------------

async def insert_join_token(conn: Conn, jti: UUID, secret_sha256: bytes, consultation_id: UUID, account_id: UUID,
                            role: CallRole, ttl_s: int) -> datetime:
    expires_at: datetime = await conn.fetchval(
        """INSERT INTO call_join_tokens (jti, secret_sha256, consultation_id, account_id, role, issued_at, expires_at)
           VALUES ($1, $2, $3, $4, $5, now(), now() + make_interval(secs => $6))
           RETURNING expires_at""",
        jti, secret_sha256, consultation_id, account_id, role, ttl_s)
    return expires_at


async def lock_join_token(conn: Conn, jti: UUID) -> JoinTokenRow | None:
    """The token row, locked: of two sockets presenting the same token at once, the second waits and finds it
    consumed."""
    row = await conn.fetchrow(
        """SELECT jti, secret_sha256, consultation_id, account_id, role, expires_at, consumed_at
           FROM call_join_tokens WHERE jti = $1 FOR UPDATE""", jti)
    return None if row is None else record_to(JoinTokenRow, row)


async def consume_join_token(conn: Conn, jti: UUID) -> None:
    await conn.execute("UPDATE call_join_tokens SET consumed_at = now() WHERE jti = $1", jti)


async def purge_join_tokens(conn: Conn) -> None:
    """Dead tokens are kept a day for investigations (the audit log keeps who asked for them for good)."""
    await conn.execute("DELETE FROM call_join_tokens WHERE expires_at < now() - interval '1 day'")


# ---- presence --------------------------------------------------------------------------------------------------

async def room(conn: Conn, consultation_id: UUID) -> dict[CallRole, Presence]:
    rows = await conn.fetch(
        """SELECT role, account_id, session_id, instance_id, state FROM rtc_presence
           WHERE consultation_id = $1""", consultation_id)
    found = [record_to(Presence, r) for r in rows]
    return {p.role: p for p in found}


async def put_presence(conn: Conn, consultation_id: UUID, role: CallRole, account_id: UUID, session_id: str,
                       instance_id: str) -> None:
    await conn.execute(
        """INSERT INTO rtc_presence (consultation_id, role, account_id, session_id, instance_id, state)
           VALUES ($1, $2, $3, $4, $5, 'connected')
           ON CONFLICT (consultation_id, role) DO UPDATE
             SET account_id = EXCLUDED.account_id, session_id = EXCLUDED.session_id,
                 instance_id = EXCLUDED.instance_id, state = 'connected', joined_at = now(), away_since = NULL""",
        consultation_id, role, account_id, session_id, instance_id)


async def mark_away(conn: Conn, consultation_id: UUID, role: CallRole, session_id: str) -> bool:
    """The socket of this session dropped; false when a newer session already took its place."""
    status: str = await conn.execute(
        """UPDATE rtc_presence SET state = 'away', away_since = now()
           WHERE consultation_id = $1 AND role = $2 AND session_id = $3 AND state = 'connected'""",
        consultation_id, role, session_id)
    return status == "UPDATE 1"


async def remove_presence(conn: Conn, consultation_id: UUID, role: CallRole, session_id: str) -> bool:
    """The participant left; false when a newer session already took its place."""
    status: str = await conn.execute(
        "DELETE FROM rtc_presence WHERE consultation_id = $1 AND role = $2 AND session_id = $3",
        consultation_id, role, session_id)
    return status == "DELETE 1"


async def clear_room(conn: Conn, consultation_id: UUID) -> None:
    await conn.execute("DELETE FROM rtc_presence WHERE consultation_id = $1", consultation_id)


class Absent(msgspec.Struct, frozen=True):
    consultation_id: UUID
    patient_id: UUID
    role: CallRole
    account_id: UUID


async def expire_away(conn: Conn, grace_s: float) -> list[Absent]:
    """Participants away longer than the grace period leave the room. Any instance may run this; DELETE ...
    RETURNING hands each row to exactly one of them."""
    rows = await conn.fetch(
        """DELETE FROM rtc_presence p USING consultations c
           WHERE c.id = p.consultation_id AND p.state = 'away'
             AND p.away_since < now() - make_interval(secs => $1)
           RETURNING p.consultation_id, c.patient_id, p.role, p.account_id""", grace_s)
    return [record_to(Absent, r) for r in rows]


# ---- chat and quality ------------------------------------------------------------------------------------------

async def insert_chat(conn: Conn, consultation_id: UUID, role: CallRole, account_id: UUID,
                      text: str) -> ChatMessage:
    row = await conn.fetchrow(
        """INSERT INTO call_chat_messages (consultation_id, sender_role, sender_account_id, body)
           VALUES ($1, $2, $3, $4) RETURNING id, sender_role AS "from", body AS text, sent_at AS at""",
        consultation_id, role, account_id, text)
    assert row is not None
    message: ChatMessage = record_to(ChatMessage, row)
    return message


async def recent_chat(conn: Conn, consultation_id: UUID, limit: int) -> list[ChatMessage]:
    """The last ``limit`` messages, oldest first."""
    rows = await conn.fetch(
        """SELECT id, sender_role AS "from", body AS text, sent_at AS at FROM (
             SELECT * FROM call_chat_messages WHERE consultation_id = $1 ORDER BY id DESC LIMIT $2) last
           ORDER BY id""", consultation_id, limit)
    return [record_to(ChatMessage, r) for r in rows]


async def insert_quality(conn: Conn, consultation_id: UUID, role: CallRole, sample: QualitySample) -> None:
    await conn.execute(
        """INSERT INTO call_quality_samples (consultation_id, role, rtt_ms, jitter_ms, loss_pct, out_kbps, in_kbps,
                                             quality_limitation)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8)""",
        consultation_id, role, sample.rtt_ms, sample.jitter_ms, sample.loss_pct, sample.out_kbps, sample.in_kbps,
        sample.quality_limitation)


# ---- the signaling outbox --------------------------------------------------------------------------------------

async def notify(conn: Conn, channel: str, payload: str) -> None:
    await conn.execute("SELECT pg_notify($1, $2)", channel, payload)


async def notify_via_outbox(conn: Conn, channel: str, body: str, pointer_prefix: str) -> None:
    """Store ``body`` and NOTIFY its id, in one statement: the notification is delivered at commit, when the row is
    already visible to the listener that fetches it."""
    await conn.execute(
        """WITH stored AS (INSERT INTO rtc_signal_outbox (body) VALUES ($2) RETURNING id)
           SELECT pg_notify($1, $3 || stored.id::text) FROM stored""", channel, body, pointer_prefix)


async def outbox_body(conn: Conn, outbox_id: int) -> str | None:
    body: str | None = await conn.fetchval("SELECT body FROM rtc_signal_outbox WHERE id = $1", outbox_id)
    return body


async def announce_instance(conn: Conn, instance_id: str) -> None:
    await conn.execute(
        """INSERT INTO rtc_instances (instance_id) VALUES ($1)
           ON CONFLICT (instance_id) DO UPDATE SET seen_at = now()""", instance_id)


async def retire_instance(conn: Conn, instance_id: str) -> None:
    await conn.execute("DELETE FROM rtc_instances WHERE instance_id = $1", instance_id)


class Orphan(Absent, frozen=True):
    session_id: str
    instance_id: str


async def mark_orphans_away(conn: Conn, stale_s: float) -> list[Orphan]:
    """Participants held by an instance that has not announced itself for ``stale_s`` become away, as if their
    socket had dropped. Concurrent sweeps by several instances mark each row once (the row lock, then the state)."""
    rows = await conn.fetch(
        """UPDATE rtc_presence p SET state = 'away', away_since = now()
           FROM consultations c
           WHERE c.id = p.consultation_id AND p.state = 'connected'
             AND NOT EXISTS (SELECT 1 FROM rtc_instances i WHERE i.instance_id = p.instance_id
                               AND i.seen_at > now() - make_interval(secs => $1))
           RETURNING p.consultation_id, c.patient_id, p.role, p.account_id, p.session_id, p.instance_id""", stale_s)
    return [record_to(Orphan, r) for r in rows]


async def reclaim_live(conn: Conn, instance_id: str, sessions: Sequence[str]) -> list[tuple[UUID, CallRole]]:
    """Sessions of this instance that are still open but were marked away by another instance's sweep (this one was
    too slow to announce itself): connected again. Returns their (consultation, role)."""
    rows = await conn.fetch(
        """UPDATE rtc_presence SET state = 'connected', away_since = NULL
           WHERE instance_id = $1 AND state = 'away' AND session_id = ANY($2::text[])
           RETURNING consultation_id, role""", instance_id, list(sessions))
    return [(r["consultation_id"], r["role"]) for r in rows]


async def purge_instances(conn: Conn) -> None:
    await conn.execute("DELETE FROM rtc_instances WHERE seen_at < now() - interval '1 day'")


async def purge_outbox(conn: Conn) -> None:
    """Every instance reads each row once within milliseconds; a minute is ample."""
    await conn.execute("DELETE FROM rtc_signal_outbox WHERE created_at < now() - interval '1 minute'")
