"""The daily vaccination reminder scheduler writes the outbox rows of spec §2.2 for fixed dates, once."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, date, datetime
from itertools import count
from uuid import UUID

import asyncpg
import pytest

from api.audit import SYSTEM
from api.auth.principal import Principal
from api.settings import Settings
from notifications import vaccination_service
from notifications.vaccination_reminders import given_name, schedule_vaccination_reminders
from notifications.vaccination_schemas import DoseIn

DOB = date(2025, 1, 15)  # DTP and OPV dose 1 due 15/03/2025
_phones = count(1)


class Family:
    def __init__(self, child: UUID, guardians: list[tuple[UUID, UUID]]) -> None:
        self.child = child
        self.guardians = guardians  # (account id, patient id)


async def make_family(pool: asyncpg.Pool, dob: date = DOB, *, guardians: int = 1,
                      doses: tuple[tuple[str, int, date], ...] = ()) -> Family:
    child = await pool.fetchval(
        "INSERT INTO patients (full_name, date_of_birth) VALUES ('Nguyễn Minh An', $1) RETURNING id", dob)
    made = []
    for _ in range(guardians):
        account = await pool.fetchval(
            "INSERT INTO accounts (role, phone, full_name) VALUES ('patient', $1, 'Phụ huynh') RETURNING id",
            f"+8491{next(_phones):07d}")
        patient = await pool.fetchval(
            "INSERT INTO patients (account_id, full_name) VALUES ($1, 'Phụ huynh') RETURNING id", account)
        await pool.execute(
            "INSERT INTO guardianships (guardian_id, dependent_id, relationship) VALUES ($1, $2, 'parent')",
            patient, child)
        made.append((account, patient))
    for vaccine, number, given_on in doses:
        await pool.execute(
            """INSERT INTO vaccination_doses (patient_id, vaccine, dose_number, given_on, source, recorded_by)
               VALUES ($1, $2, $3, $4, 'guardian', $5)""", child, vaccine, number, given_on, made[0][0])
    return Family(child, made)


def morning(day: date) -> datetime:
    """07:30 in Vietnam: the scheduler's run before the 08:00 send time."""
    return datetime(day.year, day.month, day.day, 0, 30, tzinfo=UTC)


async def run(pool: asyncpg.Pool, settings: Settings, day: date) -> int:
    return await schedule_vaccination_reminders(pool, settings, today=day, now=morning(day))


async def rows(pool: asyncpg.Pool) -> list[asyncpg.Record]:
    return await pool.fetch(
        """SELECT account_id, kind, category, channel, subject, params, status, available_at, expires_at,
                  idempotency_key FROM notification_outbox ORDER BY subject, kind, channel""")


def test_given_name_is_the_last_word() -> None:
    assert given_name("Trần Gia Bảo") == "Bảo"


async def test_d_minus_7_push_for_each_dose_due(pool: asyncpg.Pool, settings: Settings) -> None:
    family = await make_family(pool)
    assert await run(pool, settings, date(2025, 3, 8)) == 2
    found = await rows(pool)
    assert [(r["kind"], r["channel"], r["subject"]) for r in found] == [
        ("vaccination_due_soon", "push", f"vaccination:{family.child}:DTP_HEPB_HIB:1"),
        ("vaccination_due_soon", "push", f"vaccination:{family.child}:OPV:1"),
    ]
    first = found[0]
    assert first["account_id"] == family.guardians[0][0]
    assert first["category"] == "vaccination" and first["status"] == "pending"
    assert first["params"] == {"child_id": str(family.child), "child_name": "An", "vaccine_name": "5 trong 1",
                               "due_date": "15/03/2025"}
    assert first["available_at"] == datetime(2025, 3, 8, 1, 0, tzinfo=UTC)  # 08:00 in Vietnam
    assert first["expires_at"] == datetime(2025, 3, 8, 17, 0, tzinfo=UTC)  # end of the send day in Vietnam
    assert first["idempotency_key"] == (
        f"vx:{family.child}:DTP_HEPB_HIB:1:2025-03-15:-7:{family.guardians[0][0]}:push")


async def test_running_twice_enqueues_nothing_new(pool: asyncpg.Pool, settings: Settings) -> None:
    await make_family(pool)
    assert await run(pool, settings, date(2025, 3, 14)) == 4
    assert await run(pool, settings, date(2025, 3, 14)) == 0
    assert await pool.fetchval("SELECT count(*) FROM notification_outbox") == 4


# the send day -> what is enqueued for the two doses due 15/03/2025 (DTP and OPV dose 1)
TIMELINE = [
    (date(2025, 3, 7), {}),  # D-8
    (date(2025, 3, 8), {("vaccination_due_soon", "push"): 2}),
    (date(2025, 3, 9), {}),  # D-7 messages expire with their day: only recalls are caught up the next day
    (date(2025, 3, 14), {("vaccination_due_tomorrow", "push"): 2, ("vaccination_due_tomorrow", "sms"): 2}),
    (date(2025, 3, 15), {("vaccination_due_today", "push"): 2}),  # yesterday's D-1 has expired: not caught up
    (date(2025, 3, 22), {("vaccination_overdue", "push"): 2, ("vaccination_overdue", "sms"): 2}),
    (date(2025, 4, 14), {("vaccination_overdue", "push"): 2, ("vaccination_overdue", "sms"): 2}),
    (date(2025, 4, 15), {("vaccination_overdue", "push"): 2, ("vaccination_overdue", "sms"): 2}),  # missed D+30
    (date(2025, 4, 16), {}),  # two days late: not sent any more
    (date(2025, 5, 14), {}),  # after D+30 recalls stop
]


@pytest.mark.parametrize(("day", "expected"), TIMELINE, ids=[str(day) for day, _ in TIMELINE])
async def test_offsets(pool: asyncpg.Pool, settings: Settings, day: date,
                       expected: dict[tuple[str, str], int]) -> None:
    await make_family(pool)
    # BCG (due at birth) would add its own recalls on 22/01 and 14/02; none of these days is one of them
    await run(pool, settings, day)
    assert Counter((r["kind"], r["channel"]) for r in await rows(pool)) == Counter(expected)


async def test_every_guardian_gets_the_reminder(pool: asyncpg.Pool, settings: Settings) -> None:
    family = await make_family(pool, guardians=2)
    assert await run(pool, settings, date(2025, 3, 8)) == 4
    accounts = {r["account_id"] for r in await rows(pool)}
    assert accounts == {account for account, _ in family.guardians}


async def test_recording_the_dose_cancels_its_pending_reminders(pool: asyncpg.Pool, settings: Settings) -> None:
    family = await make_family(pool)
    await run(pool, settings, date(2025, 3, 14))
    account, patient = family.guardians[0]
    guardian = Principal(account_id=account, role="patient", patient_id=patient)
    recorded = await vaccination_service.record_dose(
        pool, guardian, family.child, DoseIn(vaccine="DTP_HEPB_HIB", dose_number=1, given_on=date(2025, 3, 15)),
        SYSTEM, today=date(2025, 3, 15))
    assert recorded.warnings == []
    status = {(r["subject"].split(":")[2], r["channel"]): r["status"] for r in await rows(pool)}
    assert status == {("DTP_HEPB_HIB", "push"): "cancelled", ("DTP_HEPB_HIB", "sms"): "cancelled",
                      ("OPV", "push"): "pending", ("OPV", "sms"): "pending"}
    # the next run does not bring them back: dose 2 is not due for a month
    assert await run(pool, settings, date(2025, 3, 15)) == 1  # OPV's D0 push only


async def test_rotavirus_cutoff_stops_recalls(pool: asyncpg.Pool, settings: Settings) -> None:
    # dose 2 due 14/07/2025, the last day before 6 months of age: D-1 is sent, the D+7 recall never is
    await make_family(pool, doses=(("ROTA", 1, date(2025, 6, 16)),))
    await run(pool, settings, date(2025, 7, 13))
    assert {r["subject"].split(":")[2] for r in await rows(pool)} == {"ROTA"}
    await pool.execute("DELETE FROM notification_outbox")
    assert await run(pool, settings, date(2025, 7, 21)) == 0


async def test_target_group_bound_stops_recalls(pool: asyncpg.Pool, settings: Settings) -> None:
    # DTP dose 2 due 25/12/2024; the free programme covers it until the first birthday (10/01/2025)
    await make_family(pool, dob=date(2024, 1, 10), doses=(("DTP_HEPB_HIB", 1, date(2024, 11, 25)),
                                                          ("OPV", 1, date(2024, 11, 25))))
    assert await run(pool, settings, date(2025, 1, 1)) == 4  # D+7 recall, push + SMS, DTP and OPV
    await pool.execute("DELETE FROM notification_outbox")
    assert await run(pool, settings, date(2025, 1, 24)) == 0  # D+30 falls after the bound: ask a clinician


async def test_children_without_an_active_guardian_account_get_nothing(pool: asyncpg.Pool,
                                                                       settings: Settings) -> None:
    family = await make_family(pool)
    await pool.execute("UPDATE accounts SET status = 'disabled' WHERE id = $1", family.guardians[0][0])
    assert await run(pool, settings, date(2025, 3, 8)) == 0
