"""The daily vaccination reminder scheduler: children's next doses become outbox rows on the days spec §2.2 names.

For each dose due: D-7 push, D-1 push + SMS, D0 push, then recalls at D+7 and D+30 (push + SMS), then nothing more
(the child is on the clinic's overdue list, ``status = overdue`` in the plan). Series past a hard cutoff (rotavirus),
past the free programme's target group (``ask_clinician``), optional or complete get nothing.

Restart-safe and idempotent. A run enqueues the reminders whose send day is today, or yesterday so that a run
missed for a day catches up once; in practice that is the recalls, since D-7/D-1/D0 messages expire with their day
("tomorrow" is wrong a day later). Idempotency keys ``vx:{child}:{vaccine}:{dose}:{due_date}:{offset}`` make a
second run enqueue nothing; the outbox appends the recipient account and channel, and sends to every guardian's
account (``outbox.Notification.patient_id``). Recording a dose cancels its reminders through their subject
``vaccination:{child}:{vaccine}:{dose}`` in the same transaction (``notifications.vaccination_service``).

Parameters are the child's given name, the vaccine's short Vietnamese name, the due date (dd/mm/yyyy) and the
child's id for the app link, nothing more (spec §2.3). The templates (``notifications.templates``) must word them
as "đưa bé đi khám sàng lọc trước tiêm" (pre-vaccination screening, QĐ 1575/QĐ-BYT), never as "bé đủ điều kiện
tiêm": only the screening decides.
"""

from __future__ import annotations

import logging
from datetime import UTC, date, datetime, time, timedelta
from uuid import UUID

import asyncpg
import msgspec

from api.settings import Settings
from notifications import outbox
from notifications import vaccination as vx
from notifications import vaccination_db as db

log = logging.getLogger("lienthong.vaccination")

SEND_HOUR = 8  # local; the outbox also moves a message out of quiet hours
CATCH_UP_DAYS = 1
RECALL_EXPIRY_DAYS = 7  # a recall still waiting (daily cap, outage) a week later is dropped, not sent stale
MAX_CHILD_AGE_YEARS = 16  # older dependents have nothing left in the schedule
PAGE = 500


class Offset(msgspec.Struct, frozen=True):
    days: int  # send day = due date + days
    kind: str
    channels: tuple[outbox.Channel, ...]
    recall: bool


OFFSETS: tuple[Offset, ...] = (
    Offset(-7, "vaccination_due_soon", ("push",), recall=False),
    Offset(-1, "vaccination_due_tomorrow", ("push", "sms"), recall=False),
    Offset(0, "vaccination_due_today", ("push",), recall=False),
    Offset(7, "vaccination_overdue", ("push", "sms"), recall=True),
    Offset(30, "vaccination_overdue", ("push", "sms"), recall=True),
)


def given_name(full_name: str) -> str:
    """Vietnamese names put the given name last: "Trần Gia Bảo" -> "Bảo"."""
    parts = full_name.split()
    return parts[-1] if parts else full_name


def _local(day: date, at: time) -> datetime:
    return datetime.combine(day, at, outbox.VIETNAM).astimezone(UTC)


def reminders_for(child: db.Child, catalogue: vx.Catalogue, given: list[vx.GivenDose], today: date,
                  now: datetime) -> list[outbox.Notification]:
    """The outbox messages this child's plan calls for today (pure: no database, clock injected)."""
    vaccines = {v.code: v for v in catalogue.vaccines}
    out = []
    for entry in vx.plan(child.date_of_birth, catalogue, given, today):
        nxt = entry.next
        if nxt is None or entry.status not in vx.REMINDED:
            continue
        for offset in OFFSETS:
            send_day = nxt.due_date + timedelta(days=offset.days)
            if not today - timedelta(days=CATCH_UP_DAYS) <= send_day <= today:
                continue
            if nxt.latest_date is not None and send_day > nxt.latest_date:
                continue  # the dose can no longer be given (or the programme no longer covers it)
            expires_day = send_day + timedelta(days=RECALL_EXPIRY_DAYS if offset.recall else 0)
            expires_at = _local(expires_day + timedelta(days=1), time(0))
            if expires_at <= now:
                continue
            params: dict[str, str | int] = {
                "child_id": str(child.id),  # the app link; an id, not health data
                "child_name": given_name(child.full_name),
                "vaccine_name": vaccines[nxt.vaccine].short_name_vi,
                "due_date": f"{nxt.due_date:%d/%m/%Y}",
            }
            out.append(outbox.Notification(
                patient_id=child.id, kind=offset.kind, category="vaccination",
                subject=vx.reminder_subject(child.id, nxt.vaccine, nxt.dose_number),
                idempotency_key=f"vx:{child.id}:{nxt.vaccine}:{nxt.dose_number}:{nxt.due_date.isoformat()}"
                                f":{offset.days:+d}",
                params=params, channels=offset.channels, not_before=_local(send_day, time(SEND_HOUR)),
                expires_at=expires_at))
    return out


async def schedule_vaccination_reminders(pool: asyncpg.Pool, settings: Settings, *, today: date | None = None,
                                         now: datetime | None = None) -> int:
    """Enqueue today's vaccination reminders for every child with a guardian account; return the rows created."""
    now = now or datetime.now(UTC)
    today = today or now.astimezone(outbox.VIETNAM).date()
    born_after = vx.add_months(today, -12 * MAX_CHILD_AGE_YEARS)
    async with pool.acquire() as conn:
        catalogue = await db.catalogue(conn)
    created = 0
    after: UUID | None = None
    while True:
        async with pool.acquire() as conn:
            children = await db.children_page(conn, born_after, after, PAGE)
            doses = await db.counted_doses_of(conn, [c.id for c in children])
        for child in children:
            messages = reminders_for(child, catalogue, doses.get(child.id, []), today, now)
            if not messages:
                continue
            async with pool.acquire() as conn, conn.transaction():
                for message in messages:
                    created += len(await outbox.enqueue(conn, message, settings, now=now))
        if len(children) < PAGE:
            break
        after = children[-1].id
    if created:
        log.info("vaccination reminders enqueued: %d", created)
    return created
