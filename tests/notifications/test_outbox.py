"""The outbox contract: rows exist exactly when the caller's transaction commits, once per key, recipient and
channel; reminders never become due in quiet hours (Asia/Ho_Chi_Minh)."""

from __future__ import annotations

from datetime import UTC, datetime
from uuid import UUID

import asyncpg
import pytest

from api.settings import Settings
from notifications.outbox import Notification, cancel_subject, enqueue, in_quiet_hours, next_send_time


def vn(text: str) -> datetime:
    """A Vietnam wall-clock time ('2026-12-01 21:30') as an aware UTC datetime."""
    return datetime.fromisoformat(text + "+07:00").astimezone(UTC)


async def patient(pool: asyncpg.Pool, phone: str, name: str = "Nguyễn Văn An") -> tuple[UUID, UUID]:
    account_id = await pool.fetchval(
        "INSERT INTO accounts (role, phone, full_name) VALUES ('patient', $1, $2) RETURNING id", phone, name)
    patient_id = await pool.fetchval(
        "INSERT INTO patients (account_id, full_name) VALUES ($1, $2) RETURNING id", account_id, name)
    return account_id, patient_id


def reminder(**changes: object) -> Notification:
    fields: dict[str, object] = {
        "kind": "appointment_reminder_24h", "category": "appointment", "subject": "consultation:x",
        "idempotency_key": "consultation:x:reminder_24h",
        "params": {"consultation_id": "x", "doctor_name": "BS. Lan", "starts_at": "09:00 02/12/2026"}}
    fields.update(changes)
    return Notification(**fields)  # type: ignore[arg-type]


@pytest.mark.parametrize(("wall_clock", "quiet"), [
    ("2026-12-01 07:59", True), ("2026-12-01 08:00", False), ("2026-12-01 19:59", False),
    ("2026-12-01 20:00", True), ("2026-12-01 23:30", True), ("2026-12-02 00:10", True),
])
def test_quiet_hours_are_20_to_8_vietnam_time(wall_clock: str, quiet: bool) -> None:
    assert in_quiet_hours(vn(wall_clock), Settings()) is quiet


@pytest.mark.parametrize(("wall_clock", "kind", "expected"), [
    ("2026-12-01 21:30", "vaccination_due_soon", "2026-12-02 08:00"),  # a reminder in the evening -> next morning
    ("2026-12-02 05:00", "appointment_reminder_24h", "2026-12-02 08:00"),  # early morning -> same morning
    ("2026-12-01 10:00", "vaccination_overdue", "2026-12-01 10:00"),  # daytime: as is
    ("2026-12-01 23:00", "call_started", "2026-12-01 23:00"),  # "your doctor is calling" is never held back
    ("2026-12-01 23:00", "appointment_booked", "2026-12-01 23:00"),  # nor the answer to what the user just did
    ("2026-12-01 23:00", "appointment_cancelled_by_doctor", "2026-12-01 23:00"),  # nor news needed before morning
])
def test_next_send_time_moves_only_reminders_out_of_quiet_hours(wall_clock: str, kind: str, expected: str) -> None:
    assert next_send_time(vn(wall_clock), kind, Settings()) == vn(expected)


async def test_rows_exist_only_if_the_callers_transaction_commits(pool: asyncpg.Pool, settings: Settings) -> None:
    account_id, _ = await patient(pool, "+84912000001")
    async with pool.acquire() as conn:
        with pytest.raises(RuntimeError):
            async with conn.transaction():
                assert await enqueue(conn, reminder(account_id=account_id), settings)
                raise RuntimeError("the booking failed after queuing its reminder")
        assert await conn.fetchval("SELECT count(*) FROM notification_outbox") == 0
        async with conn.transaction():
            await enqueue(conn, reminder(account_id=account_id), settings)
    assert await pool.fetchval("SELECT count(*) FROM notification_outbox") == 1


async def test_same_key_is_queued_once_per_recipient_and_channel(pool: asyncpg.Pool, settings: Settings) -> None:
    account_id, _ = await patient(pool, "+84912000002")
    async with pool.acquire() as conn:
        first = await enqueue(conn, reminder(account_id=account_id, channels=("push", "sms")), settings)
        again = await enqueue(conn, reminder(account_id=account_id, channels=("push", "sms")), settings)
    assert len(first) == 2
    assert again == []
    rows = await pool.fetch("SELECT channel, idempotency_key FROM notification_outbox ORDER BY channel")
    assert [r["channel"] for r in rows] == ["push", "sms"]
    assert rows[0]["idempotency_key"] == f"consultation:x:reminder_24h:{account_id}:push"


async def test_a_childs_notice_goes_to_every_guardian(pool: asyncpg.Pool, settings: Settings) -> None:
    mother, mother_patient = await patient(pool, "+84912000003", "Trần Thị Mai")
    father, father_patient = await patient(pool, "+84912000004", "Lê Văn Hùng")
    child = await pool.fetchval("INSERT INTO patients (full_name) VALUES ('Lê Gia Bảo') RETURNING id")
    for guardian in (mother_patient, father_patient):
        await pool.execute("INSERT INTO guardianships (guardian_id, dependent_id, relationship) "
                           "VALUES ($1, $2, 'parent')", guardian, child)
    async with pool.acquire() as conn:
        await enqueue(conn, reminder(patient_id=child), settings)
    recipients = {r["account_id"] for r in await pool.fetch("SELECT account_id FROM notification_outbox")}
    assert recipients == {mother, father}


async def test_evening_enqueue_of_a_reminder_waits_for_morning(pool: asyncpg.Pool, settings: Settings) -> None:
    account_id, _ = await patient(pool, "+84912000005")
    async with pool.acquire() as conn:
        await enqueue(conn, reminder(account_id=account_id), settings, now=vn("2026-12-01 22:15"))
        await enqueue(conn, reminder(account_id=account_id, kind="call_started", category="call",
                                     idempotency_key="call"), settings, now=vn("2026-12-01 22:15"))
    due = dict(await pool.fetch("SELECT kind, available_at FROM notification_outbox"))
    assert due["appointment_reminder_24h"] == vn("2026-12-02 08:00")
    assert due["call_started"] == vn("2026-12-01 22:15")


async def test_cancel_subject_drops_only_unsent_rows_of_that_subject(pool: asyncpg.Pool, settings: Settings) -> None:
    account_id, _ = await patient(pool, "+84912000006")
    async with pool.acquire() as conn:
        for key in ("a", "b"):
            await enqueue(conn, reminder(account_id=account_id, idempotency_key=key), settings)
        await enqueue(conn, reminder(account_id=account_id, idempotency_key="c", subject="consultation:y"), settings)
        await conn.execute("UPDATE notification_outbox SET status = 'sent', sent_at = now() "
                           "WHERE idempotency_key LIKE 'a:%'")
        assert await cancel_subject(conn, "consultation:x") == 1
    statuses = dict(await pool.fetch("SELECT left(idempotency_key, 1), status FROM notification_outbox"))
    assert statuses == {"a": "sent", "b": "cancelled", "c": "pending"}


async def test_a_notification_needs_exactly_one_recipient(pool: asyncpg.Pool, settings: Settings) -> None:
    async with pool.acquire() as conn:
        with pytest.raises(ValueError, match="account or to a patient"):
            await enqueue(conn, reminder(), settings)
