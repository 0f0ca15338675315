"""SQL of the media-worker features: pre-call tests, recording consents and consultation recordings."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

import msgspec

from api.db import Conn
from rtc.media_schemas import ParticipantRole, PrecallReport, Recording, StopReason


class ConsultationRef(msgspec.Struct, frozen=True):
    """What the recording rules need to know about a consultation."""

    id: UUID
    doctor_id: UUID
    booked_by: UUID
    patient_id: UUID
    status: str
    ends_at: datetime


class PrecallRow(msgspec.Struct, frozen=True):
    id: UUID
    status: str
    report: PrecallReport | None


class LiveRecording(msgspec.Struct, frozen=True):
    id: UUID
    role: ParticipantRole
    status: str
    started_at: datetime


# ---------------------------------------------------------------- pre-call tests

async def lock_account(conn: Conn, account_id: UUID) -> None:
    """Serialises one account's pre-call starts, so two simultaneous requests cannot both pass the hourly limit.
    NO KEY UPDATE: it does not block inserts elsewhere that merely reference the account."""
    await conn.execute("SELECT 1 FROM accounts WHERE id = $1 FOR NO KEY UPDATE", account_id)


async def precall_usage(conn: Conn, account_id: UUID, since: datetime) -> tuple[int, datetime | None]:
    """Tests counted against the limit since ``since`` (refused ones are not), and when the oldest of them began."""
    row = await conn.fetchrow(
        """SELECT count(*) AS used, min(created_at) AS oldest FROM precall_tests
           WHERE account_id = $1 AND created_at > $2 AND status <> 'refused'""", account_id, since)
    assert row is not None
    return row["used"], row["oldest"]


async def insert_precall(conn: Conn, account_id: UUID) -> UUID:
    session_id: UUID = await conn.fetchval(
        "INSERT INTO precall_tests (account_id) VALUES ($1) RETURNING id", account_id)
    return session_id


async def set_precall_status(conn: Conn, session_id: UUID, status: str) -> None:
    await conn.execute("UPDATE precall_tests SET status = $2 WHERE id = $1", session_id, status)


async def precall(conn: Conn, session_id: UUID, account_id: UUID) -> PrecallRow | None:
    row = await conn.fetchrow(
        "SELECT id, status, report FROM precall_tests WHERE id = $1 AND account_id = $2", session_id, account_id)
    return msgspec.convert(dict(row), PrecallRow) if row else None


async def finish_precall(conn: Conn, session_id: UUID, report: PrecallReport) -> None:
    await conn.execute(
        """UPDATE precall_tests SET status = $2, report = $3, finished_at = now()
           WHERE id = $1 AND status IN ('starting', 'running')""",
        session_id, "finished" if report.state == "finished" else "failed", msgspec.to_builtins(report))


# ---------------------------------------------------------------- consultations as the recording rules see them

async def consultation(conn: Conn, consultation_id: UUID, *, for_update: bool = False) -> ConsultationRef | None:
    # The consultation row guards recording decisions: consent changes and recorder starts of one consultation
    # take turns on it, so "both consented" is never checked against a half-written decision.
    sql = """SELECT id, doctor_id, booked_by, patient_id, status, upper(slot) AS ends_at
             FROM consultations WHERE id = $1"""
    row = await conn.fetchrow(sql + (" FOR UPDATE" if for_update else ""), consultation_id)
    return msgspec.convert(dict(row), ConsultationRef) if row else None


# ---------------------------------------------------------------- consent

async def insert_consent(conn: Conn, consultation_id: UUID, role: ParticipantRole, account_id: UUID,
                         granted: bool) -> None:
    await conn.execute(
        """INSERT INTO recording_consents (consultation_id, role, account_id, granted)
           VALUES ($1, $2, $3, $4)""", consultation_id, role, account_id, granted)


async def consents(conn: Conn, consultation_id: UUID) -> dict[str, bool]:
    """The decision in force for each role that has decided; a role absent from the result never consented."""
    rows = await conn.fetch(
        """SELECT DISTINCT ON (role) role, granted FROM recording_consents
           WHERE consultation_id = $1 ORDER BY role, id DESC""", consultation_id)
    return {row["role"]: row["granted"] for row in rows}


# ---------------------------------------------------------------- recordings

async def next_seq(conn: Conn, consultation_id: UUID, role: ParticipantRole) -> int:
    seq: int = await conn.fetchval(
        "SELECT coalesce(max(seq), 0) + 1 FROM consultation_recordings WHERE consultation_id = $1 AND role = $2",
        consultation_id, role)
    return seq


async def insert_recording(conn: Conn, consultation_id: UUID, role: ParticipantRole, seq: int,
                           started_by: UUID) -> UUID:
    recording_id: UUID = await conn.fetchval(
        """INSERT INTO consultation_recordings (consultation_id, role, seq, started_by)
           VALUES ($1, $2, $3, $4) RETURNING id""", consultation_id, role, seq, started_by)
    return recording_id


async def mark_recording(conn: Conn, recording_id: UUID, file_path: str) -> None:
    await conn.execute(
        "UPDATE consultation_recordings SET status = 'recording', file_path = $2 WHERE id = $1 AND status = 'starting'",
        recording_id, file_path)


async def finish_recording(conn: Conn, recording_id: UUID, *, failed: bool, reason: StopReason,
                           duration_s: float | None = None, size_bytes: int | None = None,
                           file_path: str | None = None) -> bool:
    """Close a live row with the worker's final figures; False when it was already closed (nothing to audit)."""
    status = await conn.fetchval(
        """UPDATE consultation_recordings
           SET status = $2, ended_at = now(), stop_reason = $3, duration_s = $4, size_bytes = $5,
               file_path = coalesce($6, file_path)
           WHERE id = $1 AND status IN ('starting', 'recording') RETURNING status""",
        recording_id, "failed" if failed else "stopped", reason, duration_s, size_bytes, file_path)
    return status is not None


async def live_recordings(conn: Conn, consultation_id: UUID) -> list[LiveRecording]:
    rows = await conn.fetch(
        """SELECT id, role, status, started_at FROM consultation_recordings
           WHERE consultation_id = $1 AND status IN ('starting', 'recording')""", consultation_id)
    return [msgspec.convert(dict(r), LiveRecording) for r in rows]


async def recordings(conn: Conn, consultation_id: UUID) -> list[Recording]:
    rows = await conn.fetch(
        """SELECT id, role, seq, status, started_at, ended_at, duration_s, size_bytes, stop_reason,
                  CASE WHEN file_path IS NULL THEN NULL
                       ELSE consultation_id::text || '/' || regexp_replace(file_path, '^.*/', '') END AS file_name
           FROM consultation_recordings WHERE consultation_id = $1 ORDER BY started_at, role""", consultation_id)
    return [msgspec.convert(_floats(dict(r)), Recording) for r in rows]


def _floats(row: dict[str, Any]) -> dict[str, Any]:
    # real columns arrive as float32-rounded Python floats; two decimals is all a duration means
    if row["duration_s"] is not None:
        row["duration_s"] = round(row["duration_s"], 2)
    return row
