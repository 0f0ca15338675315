"""Booking and consultation rules: who may book what and when, the lifecycle, the doctor's queue and the record.

Lifecycle (Asia/Ho_Chi_Minh for everything shown; UTC stored):

    awaiting_payment ──paid (payments)──▶ booked ──check-in──▶ waiting ──call starts──▶ in_call ──▶ completed
      │                                     │                    │
      └─ payment_expired (unpaid by         ├─ cancelled_by_patient (free until LIENTHONG_FREE_CANCELLATION_HOURS
         payment_due_at, once VNPay         │    before the start, "late" after)
         confirms nothing was paid)         ├─ cancelled_by_doctor  (what was paid is refunded in the same transaction)
                                            └─ no_show              (patient never checked in, N minutes after start)

A free doctor's booking starts as booked.

A patient who checked in but whose doctor never started the call by the end of the slot is a doctor no-show:
the booking becomes cancelled_by_doctor and its payment is refunded. Every transition locks the consultation row,
so racing requests (check-in against cancel, two ends) settle in the database; an illegal transition is a 409.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any, Literal
from uuid import UUID

import asyncpg
import msgspec

from api import audit
from api.audit import AuditContext
from api.auth.principal import Principal
from api.db import Conn
from api.errors import InvalidInput, NotFound
from api.patients import db as patients_db
from api.settings import Settings
from consultations import db, notices, slots
from consultations.errors import (
    ConsentRequired,
    ConsultationNotFound,
    DoctorNotFound,
    IllegalTransition,
    NotTreatingDoctor,
    OutsideWindow,
    PatientDoubleBooked,
    SlotTaken,
    SlotUnavailable,
)
from consultations.schemas import (
    AvailabilityRule,
    BookingIn,
    Consultation,
    ConsultationRecord,
    ConsultationSummary,
    DoctorPage,
    DoctorProfilePatch,
    DoctorSummary,
    Icd10,
    PatientHistory,
    QueueEntry,
    RecordIn,
    Schedule,
    ScheduleException,
    ScheduleExceptionIn,
    Slot,
    WeeklySchedule,
)
from notifications.text import strip_diacritics
from payments import refunds

Role = Literal["patient", "doctor"]
LIVE = ("booked", "waiting", "in_call")
MAX_SLOT_DAYS = 14


def fold(text: str) -> str:
    """The same folding as the database's search_fold(): lower case, no diacritics, đ → d."""
    return " ".join(strip_diacritics(text).lower().split())


def _now() -> datetime:
    return datetime.now(UTC)


# ---------------------------------------------------------------- doctors and schedules

async def search_doctors(pool: asyncpg.Pool, query: str | None, specialty: str | None, limit: int,
                         offset: int) -> DoctorPage:
    async with pool.acquire() as conn:
        items, total = await db.search_doctors(conn, fold(query) if query and query.strip() else None, specialty,
                                               limit, offset)
    return DoctorPage(items=items, total=total)


async def get_doctor(pool: asyncpg.Pool, doctor_id: UUID) -> DoctorSummary:
    async with pool.acquire() as conn:
        found = await db.doctor(conn, doctor_id)
    if found is None:
        raise DoctorNotFound("No such doctor.")
    return found


async def update_profile(pool: asyncpg.Pool, principal: Principal, patch: DoctorProfilePatch,
                         ctx: AuditContext) -> DoctorSummary:
    changes = {f: getattr(patch, f) for f in patch.__struct_fields__ if getattr(patch, f) is not msgspec.UNSET}
    async with pool.acquire() as conn, conn.transaction():
        await db.ensure_profile(conn, principal.account_id, changes.get("specialty_code", "y_hoc_gia_dinh"))
        try:
            await db.update_profile(conn, principal.account_id, changes)
        except asyncpg.ForeignKeyViolationError:
            raise InvalidInput("body.specialty_code", "Unknown specialty code.") from None
        await audit.record(conn, ctx, "doctor.profile_updated", target_type="doctor", target_id=principal.account_id,
                           details={"fields": sorted(changes)})
        found = await db.doctor(conn, principal.account_id)
    assert found is not None
    return found


async def schedule(pool: asyncpg.Pool, doctor_id: UUID) -> Schedule:
    async with pool.acquire() as conn:
        rules = await db.weekly_rules(conn, doctor_id)
        exceptions = await db.exceptions(conn, doctor_id)
    return Schedule(rules=[_rule_out(r) for r in rules],
                    exceptions=[msgspec.structs.replace(e, starts_at=e.starts_at.astimezone(slots.VN),
                                                        ends_at=e.ends_at.astimezone(slots.VN)) for e in exceptions])


def _rule_out(rule: slots.WeeklyRule) -> AvailabilityRule:
    return AvailabilityRule(weekday=rule.weekday, start_time=rule.start_time, end_time=rule.end_time,
                            valid_from=rule.valid_from, valid_until=rule.valid_until)


async def replace_weekly_schedule(pool: asyncpg.Pool, principal: Principal, data: WeeklySchedule,
                                  ctx: AuditContext) -> Schedule:
    for i, rule in enumerate(data.rules):
        if rule.start_time >= rule.end_time:
            raise InvalidInput(f"body.rules[{i}].end_time", "The end time must be after the start time.")
        if rule.valid_from and rule.valid_until and rule.valid_until < rule.valid_from:
            raise InvalidInput(f"body.rules[{i}].valid_until", "valid_until must not be before valid_from.")
    async with pool.acquire() as conn, conn.transaction():
        await db.replace_rules(conn, principal.account_id, data.rules)
        await audit.record(conn, ctx, "doctor.schedule_replaced", target_type="doctor",
                           target_id=principal.account_id, details={"rules": len(data.rules)})
    return await schedule(pool, principal.account_id)


async def add_exception(pool: asyncpg.Pool, principal: Principal, data: ScheduleExceptionIn,
                        ctx: AuditContext) -> ScheduleException:
    if data.starts_at.tzinfo is None or data.ends_at.tzinfo is None:
        raise InvalidInput("body.starts_at", "Times need a UTC offset, e.g. 2026-12-01T08:00:00+07:00.")
    if data.ends_at <= data.starts_at:
        raise InvalidInput("body.ends_at", "The end must be after the start.")
    async with pool.acquire() as conn, conn.transaction():
        exception_id = await db.add_exception(conn, principal.account_id, data.kind, data.starts_at, data.ends_at,
                                              data.reason)
        await audit.record(conn, ctx, "doctor.schedule_exception_added", target_type="doctor",
                           target_id=principal.account_id, details={"kind": data.kind})
    return ScheduleException(id=exception_id, kind=data.kind, starts_at=data.starts_at.astimezone(slots.VN),
                             ends_at=data.ends_at.astimezone(slots.VN), reason=data.reason)


async def delete_exception(pool: asyncpg.Pool, principal: Principal, exception_id: UUID, ctx: AuditContext) -> None:
    async with pool.acquire() as conn, conn.transaction():
        if not await db.delete_exception(conn, principal.account_id, exception_id):
            raise NotFound("No such schedule exception.")
        await audit.record(conn, ctx, "doctor.schedule_exception_removed", target_type="doctor",
                           target_id=principal.account_id)


async def _bookable(conn: Conn, doctor_id: UUID, slot_minutes: int, first_day: date, days: int,
                    settings: Settings, *, skip_taken: bool) -> list[slots.Range]:
    rules = await db.weekly_rules(conn, doctor_id)
    period = (slots.local_day(first_day)[0], slots.local_day(first_day + timedelta(days=days - 1))[1])
    exceptions = await db.exceptions(conn, doctor_id, period)
    windows = slots.working_windows(
        rules, [(e.starts_at, e.ends_at) for e in exceptions if e.kind == "extra"],
        [(e.starts_at, e.ends_at) for e in exceptions if e.kind == "leave"], first_day, days)
    taken = [] if skip_taken else await db.taken_ranges(conn, doctor_id, period)
    now = _now()
    return slots.free_slots(windows, slot_minutes, taken, now + timedelta(minutes=settings.booking_lead_min),
                            now + timedelta(days=settings.booking_horizon_days))


async def free_slots(pool: asyncpg.Pool, settings: Settings, doctor_id: UUID, first_day: date | None,
                     days: int) -> list[Slot]:
    today = _now().astimezone(slots.VN).date()
    first_day = first_day or today
    async with pool.acquire() as conn:
        terms = await db.booking_terms(conn, doctor_id)
        if terms is None:
            raise DoctorNotFound("No such doctor.")
        _, slot_minutes, accepts = terms
        # Free slots lie between now and the booking horizon; a range that misses it has none (and dates near year
        # 1 or 9999 would overflow the day arithmetic).
        horizon = today + timedelta(days=settings.booking_horizon_days)
        if not accepts or first_day > horizon or first_day + timedelta(days=MAX_SLOT_DAYS) < today:
            return []
        free = await _bookable(conn, doctor_id, slot_minutes, first_day, days, settings, skip_taken=False)
    return [Slot(starts_at=s.astimezone(slots.VN), ends_at=e.astimezone(slots.VN)) for s, e in free]


# ---------------------------------------------------------------- booking

async def _attending_patient(conn: Conn, principal: Principal, patient_id: UUID | None) -> UUID:
    """The patient being treated: the caller, or a child the caller is guardian of."""
    assert principal.patient_id is not None
    if patient_id is None or patient_id == principal.patient_id:
        return principal.patient_id
    if not await patients_db.is_guardian(conn, principal.patient_id, patient_id):
        raise NotFound("No such patient, or it is not yours to book for.")
    return patient_id


async def book(pool: asyncpg.Pool, settings: Settings, principal: Principal, data: BookingIn,
               ctx: AuditContext) -> Consultation:
    if data.starts_at.tzinfo is None:
        raise InvalidInput("body.starts_at", "Give the time with its UTC offset, e.g. 2026-12-01T09:00:00+07:00.")
    starts_at = data.starts_at.astimezone(UTC)
    async with pool.acquire() as conn:
        try:
            async with conn.transaction():
                patient_id = await _attending_patient(conn, principal, data.patient_id)
                terms = await db.booking_terms(conn, data.doctor_id)
                if terms is None:
                    raise DoctorNotFound("No such doctor.")
                fee_vnd, slot_minutes, accepts = terms
                if not await patients_db.has_current_consent(conn, patient_id, "telemedicine_terms"):
                    raise ConsentRequired(
                        "Accept the current telemedicine terms (POST /me/consents) before booking a video visit.")
                if data.telemedicine_icd10 is not None:
                    allowed = await db.icd10_allowed_for_telemedicine(conn, data.telemedicine_icd10)
                    if not allowed:
                        raise InvalidInput("body.telemedicine_icd10",
                                           "Not a condition that may be treated remotely (TT 30/2023, TM-1).")
                local_day = starts_at.astimezone(slots.VN).date()
                offered = await _bookable(conn, data.doctor_id, slot_minutes, local_day, 1, settings,
                                          skip_taken=True) if accepts else []
                match = next(((s, e) for s, e in offered if s == starts_at), None)
                if match is None:
                    raise SlotUnavailable("That time is not one of the doctor's bookable slots; list them with "
                                          "GET /doctors/{id}/slots.")
                # a paid booking holds the slot while the patient pays, never past the start
                payment_due_at = min(_now() + timedelta(minutes=settings.booking_payment_minutes),
                                     match[0]) if fee_vnd > 0 else None
                consultation_id = await db.insert_consultation(
                    conn, data.doctor_id, patient_id, principal.account_id, match[0], match[1], data.reason,
                    data.telemedicine_icd10, fee_vnd, payment_due_at)
                await db.record_event(conn, consultation_id, "booked", principal.account_id,
                                      {"starts_at": match[0].isoformat(), "fee_vnd": fee_vnd})
                await audit.record(conn, ctx, "consultation.booked", target_type="consultation",
                                   target_id=consultation_id, subject_patient_id=patient_id)
                found = await db.consultation(conn, consultation_id)
                assert found is not None
                if found.status == "booked":  # a paid booking is confirmed, and announced, when it is paid
                    await notices.booked(conn, found, settings)
        except asyncpg.ExclusionViolationError as exc:
            # The database settles races: of N simultaneous bookings of one slot exactly one commits.
            if exc.constraint_name == "consultations_doctor_no_overlap":
                raise SlotTaken("Someone booked this slot a moment ago; please choose another.") from None
            raise PatientDoubleBooked("You already have a consultation at that time.") from None
    return _local(found)


def _local(c: Consultation) -> Consultation:
    """Times shown to people are Vietnam time (the instant is unchanged)."""
    def vn(value: datetime | None) -> datetime | None:
        return value.astimezone(slots.VN) if value else None

    return msgspec.structs.replace(
        c, starts_at=c.starts_at.astimezone(slots.VN), ends_at=c.ends_at.astimezone(slots.VN),
        checked_in_at=vn(c.checked_in_at), call_started_at=vn(c.call_started_at),
        call_ended_at=vn(c.call_ended_at), cancelled_at=vn(c.cancelled_at), payment_due_at=vn(c.payment_due_at))


# ---------------------------------------------------------------- reading consultations

def participant_role(c: Consultation, account_id: UUID) -> Role | None:
    if account_id == c.booked_by:
        return "patient"
    if account_id == c.doctor_id:
        return "doctor"
    return None


async def lock_consultation(conn: Conn, consultation_id: UUID) -> Consultation:
    found = await db.consultation(conn, consultation_id, for_update=True)
    if found is None:
        raise ConsultationNotFound("No such consultation.")
    return found


async def _visible(conn: Conn, principal: Principal, consultation_id: UUID, *, lock: bool = False) -> Consultation:
    found = await db.consultation(conn, consultation_id, for_update=lock)
    if found is None or participant_role(found, principal.account_id) is None:
        # the same answer for "does not exist" and "not yours", so ids cannot be probed
        raise ConsultationNotFound("No such consultation, or you are not part of it.")
    return found


async def _as_treating_doctor(conn: Conn, principal: Principal, consultation_id: UUID, action: str, *,
                              lock: bool = False) -> Consultation:
    c = await _visible(conn, principal, consultation_id, lock=lock)
    if participant_role(c, principal.account_id) != "doctor":
        raise NotTreatingDoctor(f"Only the treating doctor may {action}.")
    return c


async def view(pool: asyncpg.Pool, principal: Principal, consultation_id: UUID, ctx: AuditContext) -> Consultation:
    async with pool.acquire() as conn, conn.transaction():
        found = await _visible(conn, principal, consultation_id)
        await audit.record(conn, ctx, "consultation.viewed", target_type="consultation", target_id=consultation_id,
                           subject_patient_id=found.patient_id)
    return _local(found)


async def mine(pool: asyncpg.Pool, principal: Principal, limit: int) -> list[Consultation]:
    async with pool.acquire() as conn:
        return [_local(c) for c in await db.consultations_of_accounts(conn, principal.account_id, limit)]


async def doctor_queue(pool: asyncpg.Pool, principal: Principal, day: date | None) -> list[QueueEntry]:
    day = day or _now().astimezone(slots.VN).date()
    start, end = slots.local_day(day)
    async with pool.acquire() as conn:
        entries = await db.queue(conn, principal.account_id, start, end)
    return [msgspec.structs.replace(
        e, starts_at=e.starts_at.astimezone(slots.VN), ends_at=e.ends_at.astimezone(slots.VN),
        waiting_since=e.waiting_since.astimezone(slots.VN) if e.waiting_since else None,
        call_started_at=e.call_started_at.astimezone(slots.VN) if e.call_started_at else None) for e in entries]


# ---------------------------------------------------------------- lifecycle

def _require(c: Consultation, allowed: tuple[str, ...], action: str) -> None:
    if c.status not in allowed:
        raise IllegalTransition(f"Cannot {action} a consultation that is {c.status}.",
                                extra={"current_status": c.status})


async def record_event(conn: Conn, consultation_id: UUID, kind: str, actor_account_id: UUID | None,
                       details: dict[str, Any]) -> None:
    await db.record_event(conn, consultation_id, kind, actor_account_id, details)


async def _transition(conn: Conn, c: Consultation, status: str, ctx: AuditContext, event: str,
                      details: dict[str, Any] | None = None, **columns: Any) -> Consultation:
    await db.set_status(conn, c.id, status, **columns)
    await db.record_event(conn, c.id, event, ctx.actor_account_id, details or {})
    await audit.record(conn, ctx, f"consultation.{event}", target_type="consultation", target_id=c.id,
                       subject_patient_id=c.patient_id, details=details)
    updated = await db.consultation(conn, c.id)
    assert updated is not None
    return updated


async def check_in(pool: asyncpg.Pool, settings: Settings, principal: Principal, consultation_id: UUID,
                   ctx: AuditContext) -> Consultation:
    async with pool.acquire() as conn, conn.transaction():
        c = await _visible(conn, principal, consultation_id, lock=True)
        if participant_role(c, principal.account_id) != "patient":
            raise NotTreatingDoctor("Only the patient (or guardian) checks in.")
        if c.status == "waiting":
            return _local(c)
        _require(c, ("booked",), "check in to")
        now = _now()
        if now < c.starts_at - timedelta(minutes=settings.join_open_before_min):
            raise OutsideWindow(f"Check-in opens {settings.join_open_before_min} minutes before the start.")
        if now >= c.ends_at:
            raise OutsideWindow("This consultation's time is over.")
        return _local(await _transition(conn, c, "waiting", ctx, "checked_in", checked_in_at=now))


async def start_call(conn: Conn, consultation_id: UUID, ctx: AuditContext) -> Consultation:
    """booked|waiting → in_call; repeating it is harmless (both participants joining both trigger it)."""
    c = await lock_consultation(conn, consultation_id)
    if c.status == "in_call":
        return c
    _require(c, ("booked", "waiting"), "start the call of")
    return await _transition(conn, c, "in_call", ctx, "call_started", call_started_at=_now(),
                             checked_in_at=c.checked_in_at or _now())


async def end_call(conn: Conn, consultation_id: UUID, ctx: AuditContext) -> Consultation:
    """in_call → completed; repeating it is harmless."""
    c = await lock_consultation(conn, consultation_id)
    if c.status == "completed":
        return c
    _require(c, ("in_call",), "end the call of")
    await notices.ended(conn, c)
    return await _transition(conn, c, "completed", ctx, "completed", call_ended_at=_now())


async def doctor_start(pool: asyncpg.Pool, settings: Settings, principal: Principal, consultation_id: UUID,
                       ctx: AuditContext) -> Consultation:
    async with pool.acquire() as conn, conn.transaction():
        before = await _as_treating_doctor(conn, principal, consultation_id, "start the call", lock=True)
        started = await start_call(conn, consultation_id, ctx)
        if before.status != "in_call":  # the patient may still be in another app: tell them the doctor is there
            await notices.call_started(conn, started, settings)
        return _local(started)


async def doctor_complete(pool: asyncpg.Pool, principal: Principal, consultation_id: UUID,
                          ctx: AuditContext) -> Consultation:
    async with pool.acquire() as conn, conn.transaction():
        await _as_treating_doctor(conn, principal, consultation_id, "end the consultation")
        return _local(await end_call(conn, consultation_id, ctx))


async def cancel(pool: asyncpg.Pool, settings: Settings, principal: Principal, consultation_id: UUID, reason: str,
                 ctx: AuditContext) -> Consultation:
    async with pool.acquire() as conn, conn.transaction():
        c = await _visible(conn, principal, consultation_id, lock=True)
        role = participant_role(c, principal.account_id)
        _require(c, ("awaiting_payment", "booked", "waiting"), "cancel")
        now = _now()
        if role == "patient":
            if now >= c.ends_at:
                raise OutsideWindow("This consultation's time is over.")
            late = now > c.starts_at - timedelta(hours=settings.free_cancellation_hours)
            updated = await _transition(conn, c, "cancelled_by_patient", ctx, "cancelled_by_patient",
                                        {"reason": reason, "late": late}, cancelled_at=now,
                                        cancelled_by=principal.account_id, cancel_reason=reason,
                                        late_cancellation=late)
            await notices.ended(conn, c)
        else:
            # The doctor cancelling is never the patient's fault: a paid booking is owed back in full.
            updated = await _transition(conn, c, "cancelled_by_doctor", ctx, "cancelled_by_doctor",
                                        {"reason": reason, "refund_due": c.fee_vnd > 0}, cancelled_at=now,
                                        cancelled_by=principal.account_id, cancel_reason=reason,
                                        refund_due=c.fee_vnd > 0)
            await notices.cancelled_by_doctor(conn, c, settings)
            await refunds.refund_paid(conn, consultation_id=c.id, reason="cancelled by the doctor")
        return _local(updated)


async def mark_no_show(pool: asyncpg.Pool, settings: Settings, principal: Principal, consultation_id: UUID,
                       ctx: AuditContext) -> Consultation:
    async with pool.acquire() as conn, conn.transaction():
        c = await _as_treating_doctor(conn, principal, consultation_id, "mark a no-show", lock=True)
        _require(c, ("booked",), "mark as no-show")
        if _now() < c.starts_at + timedelta(minutes=settings.no_show_after_min):
            raise OutsideWindow(f"A patient is a no-show only {settings.no_show_after_min} minutes after the start.")
        await notices.ended(conn, c)
        return _local(await _transition(conn, c, "no_show", ctx, "no_show", {"by": "doctor"}))


async def settle_no_shows(pool: asyncpg.Pool, settings: Settings) -> int:
    """Worker job: patients absent N minutes after the start become no-shows; patients left waiting by a doctor
    who never started are refunded. Safe to run in several processes (SKIP LOCKED)."""
    ctx = AuditContext(None, "system", None, "lienthong worker", None)
    settled = 0
    now = _now()
    async with pool.acquire() as conn, conn.transaction():
        for consultation_id in await db.due_no_shows(conn, now - timedelta(minutes=settings.no_show_after_min), 200):
            c = await lock_consultation(conn, consultation_id)
            await _transition(conn, c, "no_show", ctx, "no_show", {"by": "system"})
            await notices.ended(conn, c)
            settled += 1
        for consultation_id in await db.due_doctor_no_shows(conn, now, 200):
            c = await lock_consultation(conn, consultation_id)
            await _transition(conn, c, "cancelled_by_doctor", ctx, "cancelled_by_doctor",
                              {"reason": "doctor_no_show", "refund_due": c.fee_vnd > 0}, cancelled_at=now,
                              cancel_reason="doctor_no_show", refund_due=c.fee_vnd > 0)
            await notices.cancelled_by_doctor(conn, c, settings)
            await refunds.refund_paid(conn, consultation_id=c.id, reason="the doctor did not come")
            settled += 1
    return settled


async def confirm_payment(conn: Conn, consultation_id: UUID, settings: Settings) -> bool:
    """The fee was paid (payments settles it, in its transaction): an awaiting booking becomes booked and is
    announced. False when the booking is no longer waiting for it (cancelled, released): the caller refunds."""
    c = await lock_consultation(conn, consultation_id)
    if c.status != "awaiting_payment":
        return False
    ctx = AuditContext(None, "system", None, "lienthong payments", None)
    confirmed = await _transition(conn, c, "booked", ctx, "payment_confirmed", {"fee_vnd": c.fee_vnd})
    await notices.booked(conn, confirmed, settings)
    return True


async def release_unpaid(pool: asyncpg.Pool, settings: Settings) -> int:
    """Worker job: paid bookings not paid by their deadline give their slot back (payment_expired). Only once no
    payment attempt is open: an attempt that may still succeed is settled with VNPay first."""
    ctx = AuditContext(None, "system", None, "lienthong worker", None)
    released = 0
    async with pool.acquire() as conn, conn.transaction():
        for consultation_id in await db.unpaid_past_deadline(conn, _now(), 200):
            c = await lock_consultation(conn, consultation_id)
            await _transition(conn, c, "payment_expired", ctx, "payment_expired")
            released += 1
    return released


# ---------------------------------------------------------------- record

async def write_record(pool: asyncpg.Pool, principal: Principal, consultation_id: UUID, data: RecordIn,
                       ctx: AuditContext) -> ConsultationRecord:
    principals = [d for d in data.diagnoses if d.is_principal]
    if data.diagnoses and len(principals) != 1:
        raise InvalidInput("body.diagnoses", "Mark exactly one diagnosis as principal.")
    codes = [d.code for d in data.diagnoses]
    if len(set(codes)) != len(codes):
        raise InvalidInput("body.diagnoses", "A diagnosis is listed twice.")
    async with pool.acquire() as conn, conn.transaction():
        c = await _as_treating_doctor(conn, principal, consultation_id, "write the consultation record", lock=True)
        _require(c, ("in_call", "completed"), "write the record of")
        names = await db.icd10_names(conn, codes)
        unknown = [i for i, code in enumerate(codes) if code not in names]
        if unknown:
            raise InvalidInput(f"body.diagnoses[{unknown[0]}].code", f"Unknown ICD-10 code {codes[unknown[0]]}.")
        fields = msgspec.structs.asdict(data)
        await db.save_record(conn, consultation_id, fields,
                             [(d.code, names[d.code], d.is_principal) for d in data.diagnoses])
        await audit.record(conn, ctx, "consultation.record_written", target_type="consultation",
                           target_id=consultation_id, subject_patient_id=c.patient_id)
    return await read_record(pool, principal, consultation_id, ctx)


async def read_record(pool: asyncpg.Pool, principal: Principal, consultation_id: UUID,
                      ctx: AuditContext) -> ConsultationRecord:
    async with pool.acquire() as conn, conn.transaction():
        c = await _visible(conn, principal, consultation_id)
        if participant_role(c, principal.account_id) != "doctor":
            raise NotTreatingDoctor("Patients read the summary: GET /consultations/{id}/summary.")
        fields, diagnoses, quality = await db.record(conn, consultation_id)
        await audit.record(conn, ctx, "consultation.record_viewed", target_type="consultation",
                           target_id=consultation_id, subject_patient_id=c.patient_id)
    fields = fields or {"subjective": "", "objective": "", "assessment": "", "plan": "", "advice": "",
                        "follow_up_days": None, "updated_at": None}
    return ConsultationRecord(consultation_id=consultation_id, diagnoses=diagnoses, call_duration_s=_duration(c),
                              call_quality=quality, **fields)


async def read_summary(pool: asyncpg.Pool, principal: Principal, consultation_id: UUID,
                       ctx: AuditContext) -> ConsultationSummary:
    async with pool.acquire() as conn, conn.transaction():
        c = await _visible(conn, principal, consultation_id)
        fields, diagnoses, _ = await db.record(conn, consultation_id)
        await audit.record(conn, ctx, "consultation.summary_viewed", target_type="consultation",
                           target_id=consultation_id, subject_patient_id=c.patient_id)
    return ConsultationSummary(consultation_id=consultation_id, doctor_name=c.doctor_name, diagnoses=diagnoses,
                               advice=fields["advice"] if fields else "",
                               follow_up_days=fields["follow_up_days"] if fields else None,
                               call_duration_s=_duration(c))


HISTORY_LIMIT = 20


async def patient_history(pool: asyncpg.Pool, principal: Principal, consultation_id: UUID,
                          ctx: AuditContext) -> PatientHistory:
    """The consultation's patient as their treating doctor needs them: allergies, earlier visits, prescriptions."""
    async with pool.acquire() as conn, conn.transaction():
        c = await _as_treating_doctor(conn, principal, consultation_id, "read the patient's history")
        history = PatientHistory(
            patient=await db.history_patient(conn, c.patient_id),
            consultations=await db.past_consultations(conn, c.patient_id, c.id, HISTORY_LIMIT),
            prescriptions=await db.past_prescriptions(conn, c.patient_id, HISTORY_LIMIT))
        await audit.record(conn, ctx, "consultation.patient_history_viewed", target_type="consultation",
                           target_id=consultation_id, subject_patient_id=c.patient_id)
    return msgspec.structs.replace(
        history,
        consultations=[msgspec.structs.replace(p, starts_at=p.starts_at.astimezone(slots.VN))
                       for p in history.consultations],
        prescriptions=[msgspec.structs.replace(p, issued_at=p.issued_at.astimezone(slots.VN) if p.issued_at else None)
                       for p in history.prescriptions])


def _duration(c: Consultation) -> int | None:
    if c.call_started_at is None:
        return None
    end = c.call_ended_at or _now()
    return int((end - c.call_started_at).total_seconds())


async def search_icd10(pool: asyncpg.Pool, query: str, telemedicine_only: bool, limit: int) -> list[Icd10]:
    async with pool.acquire() as conn:
        return await db.search_icd10(conn, fold(query), telemedicine_only, limit)
