"""SQL of doctors' profiles and schedules, consultations, their events and records."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

import msgspec

from api.db import Conn
from consultations.schemas import (
    AvailabilityRule,
    CallQuality,
    Consultation,
    Diagnosis,
    DoctorSummary,
    HistoryPatient,
    Icd10,
    PastConsultation,
    PastPrescription,
    QueueEntry,
    ScheduleException,
)
from consultations.slots import Range, WeeklyRule

_DOCTOR_COLUMNS = """d.account_id AS id, a.full_name, d.title, dp.specialty_code, s.name_vi AS specialty_name,
    f.name AS facility_name, dp.languages, dp.fee_vnd, dp.slot_minutes, dp.accepts_bookings"""
_DOCTOR_FROM = """doctor_profiles dp JOIN doctors d ON d.account_id = dp.account_id
    JOIN accounts a ON a.id = d.account_id JOIN specialties s ON s.code = dp.specialty_code
    JOIN facilities f ON f.id = d.facility_id"""


async def search_doctors(conn: Conn, folded_query: str | None, specialty: str | None, limit: int,
                         offset: int) -> tuple[list[DoctorSummary], int]:
    # Substring match on the folded text catches prefixes ("nhi kh"); trigram similarity catches typos.
    rows = await conn.fetch(
        f"""SELECT {_DOCTOR_COLUMNS}, count(*) OVER () AS total
            FROM {_DOCTOR_FROM}
            WHERE a.status = 'active'
              AND ($1::text IS NULL OR dp.search_doc LIKE '%' || $1 || '%' OR $1 <% dp.search_doc)
              AND ($2::text IS NULL OR dp.specialty_code = $2)
            ORDER BY CASE WHEN $1::text IS NULL THEN 0 ELSE word_similarity($1, dp.search_doc) END DESC,
                     a.full_name
            LIMIT $3 OFFSET $4""",  # noqa: S608 - fixed fragments, parameters for values
        folded_query, specialty, limit, offset)
    total = rows[0]["total"] if rows else 0
    return [msgspec.convert({k: v for k, v in r.items() if k != "total"}, DoctorSummary) for r in rows], total


async def doctor(conn: Conn, doctor_id: UUID) -> DoctorSummary | None:
    row = await conn.fetchrow(f"SELECT {_DOCTOR_COLUMNS} FROM {_DOCTOR_FROM} WHERE d.account_id = $1",  # noqa: S608
                              doctor_id)
    return msgspec.convert(dict(row), DoctorSummary) if row else None


async def ensure_profile(conn: Conn, doctor_id: UUID, default_specialty: str) -> None:
    await conn.execute(
        """INSERT INTO doctor_profiles (account_id, specialty_code) VALUES ($1, $2)
           ON CONFLICT (account_id) DO NOTHING""", doctor_id, default_specialty)


async def update_profile(conn: Conn, doctor_id: UUID, changes: dict[str, Any]) -> None:
    columns = [c for c in ("specialty_code", "bio", "languages", "fee_vnd", "slot_minutes", "accepts_bookings")
               if c in changes]
    if columns:
        assignments = ", ".join(f"{c} = ${i}" for i, c in enumerate(columns, start=2))
        await conn.execute(f"UPDATE doctor_profiles SET {assignments}, updated_at = now() WHERE account_id = $1",  # noqa: S608
                           doctor_id, *(changes[c] for c in columns))
    await refresh_search_doc(conn, doctor_id)


async def refresh_search_doc(conn: Conn, doctor_id: UUID) -> None:
    await conn.execute(
        """UPDATE doctor_profiles dp SET search_doc = search_fold(
               concat_ws(' ', a.full_name, d.title, s.name_vi, s.name_en, f.name, dp.bio))
           FROM doctors d JOIN accounts a ON a.id = d.account_id JOIN facilities f ON f.id = d.facility_id,
                specialties s
           WHERE dp.account_id = $1 AND d.account_id = dp.account_id AND s.code = dp.specialty_code""", doctor_id)


async def weekly_rules(conn: Conn, doctor_id: UUID) -> list[WeeklyRule]:
    rows = await conn.fetch(
        """SELECT weekday, start_time, end_time, valid_from, valid_until FROM availability_rules
           WHERE doctor_id = $1 ORDER BY weekday, start_time""", doctor_id)
    return [WeeklyRule(**dict(r)) for r in rows]


async def replace_rules(conn: Conn, doctor_id: UUID, rules: list[AvailabilityRule]) -> None:
    await conn.execute("DELETE FROM availability_rules WHERE doctor_id = $1", doctor_id)
    await conn.executemany(
        """INSERT INTO availability_rules (doctor_id, weekday, start_time, end_time, valid_from, valid_until)
           VALUES ($1, $2, $3, $4, coalesce($5, '2000-01-01'::date), $6)""",
        [(doctor_id, r.weekday, r.start_time, r.end_time, r.valid_from, r.valid_until) for r in rules])


async def exceptions(conn: Conn, doctor_id: UUID, during: Range | None = None) -> list[ScheduleException]:
    rows = await conn.fetch(
        """SELECT id, kind, lower(during) AS starts_at, upper(during) AS ends_at, reason
           FROM availability_exceptions
           WHERE doctor_id = $1 AND ($2::timestamptz IS NULL OR during && tstzrange($2, $3))
           ORDER BY lower(during)""",
        doctor_id, during[0] if during else None, during[1] if during else None)
    return [msgspec.convert(dict(r), ScheduleException) for r in rows]


async def add_exception(conn: Conn, doctor_id: UUID, kind: str, starts_at: datetime, ends_at: datetime,
                        reason: str) -> UUID:
    exception_id: UUID = await conn.fetchval(
        """INSERT INTO availability_exceptions (doctor_id, kind, during, reason)
           VALUES ($1, $2, tstzrange($3, $4), $5) RETURNING id""", doctor_id, kind, starts_at, ends_at, reason)
    return exception_id


async def delete_exception(conn: Conn, doctor_id: UUID, exception_id: UUID) -> bool:
    deleted: UUID | None = await conn.fetchval(
        "DELETE FROM availability_exceptions WHERE id = $1 AND doctor_id = $2 RETURNING id", exception_id, doctor_id)
    return deleted is not None


async def taken_ranges(conn: Conn, doctor_id: UUID, during: Range) -> list[Range]:
    rows = await conn.fetch(
        """SELECT lower(slot) AS s, upper(slot) AS e FROM consultations
           WHERE doctor_id = $1 AND slot && tstzrange($2, $3)
             AND status NOT IN ('cancelled_by_patient', 'cancelled_by_doctor', 'payment_expired')""",
        doctor_id, during[0], during[1])
    return [(r["s"], r["e"]) for r in rows]


async def booking_terms(conn: Conn, doctor_id: UUID) -> tuple[int, int, bool] | None:
    """(fee, slot minutes, accepts bookings) of an active doctor."""
    row = await conn.fetchrow(
        """SELECT dp.fee_vnd, dp.slot_minutes, dp.accepts_bookings FROM doctor_profiles dp
           JOIN accounts a ON a.id = dp.account_id WHERE dp.account_id = $1 AND a.status = 'active'""", doctor_id)
    return (row["fee_vnd"], row["slot_minutes"], row["accepts_bookings"]) if row else None


async def icd10_allowed_for_telemedicine(conn: Conn, code: str) -> bool | None:
    """None when the code is unknown."""
    allowed: bool | None = await conn.fetchval("SELECT telemedicine_tt30 FROM icd10_codes WHERE code = $1", code)
    return allowed


async def insert_consultation(conn: Conn, doctor_id: UUID, patient_id: UUID, booked_by: UUID, starts_at: datetime,
                              ends_at: datetime, reason: str, icd10: str | None, fee_vnd: int,
                              payment_due_at: datetime | None) -> UUID:
    """A paid booking (``payment_due_at`` set) starts awaiting its payment; a free one is booked at once."""
    consultation_id: UUID = await conn.fetchval(
        """INSERT INTO consultations (doctor_id, patient_id, booked_by, slot, reason, telemedicine_icd10, fee_vnd,
                                      status, payment_due_at)
           VALUES ($1, $2, $3, tstzrange($4, $5), $6, $7, $8,
                   CASE WHEN $9::timestamptz IS NULL THEN 'booked' ELSE 'awaiting_payment' END, $9) RETURNING id""",
        doctor_id, patient_id, booked_by, starts_at, ends_at, reason, icd10, fee_vnd, payment_due_at)
    return consultation_id


async def unpaid_past_deadline(conn: Conn, now: datetime, limit: int) -> list[UUID]:
    """Bookings whose payment deadline passed with no payment attempt still open (an open attempt may yet succeed:
    reconciliation settles it first, spec P12)."""
    rows = await conn.fetch(
        """SELECT c.id FROM consultations c
           WHERE c.status = 'awaiting_payment' AND c.payment_due_at < $1
             AND NOT EXISTS (SELECT 1 FROM payments p WHERE p.consultation_id = c.id AND p.status = 'pending')
           ORDER BY c.payment_due_at LIMIT $2 FOR UPDATE OF c SKIP LOCKED""", now, limit)
    return [r["id"] for r in rows]


_CONSULTATION = """SELECT c.id, c.doctor_id, da.full_name AS doctor_name, c.patient_id, p.full_name AS patient_name,
    c.booked_by, lower(c.slot) AS starts_at, upper(c.slot) AS ends_at, c.status, c.reason, c.telemedicine_icd10,
    c.fee_vnd, c.checked_in_at, c.call_started_at, c.call_ended_at, c.cancelled_at, c.cancel_reason,
    c.late_cancellation, c.refund_due, c.payment_due_at
    FROM consultations c JOIN accounts da ON da.id = c.doctor_id JOIN patients p ON p.id = c.patient_id"""


async def consultation(conn: Conn, consultation_id: UUID, *, for_update: bool = False) -> Consultation | None:
    lock = " FOR UPDATE OF c" if for_update else ""
    row = await conn.fetchrow(f"{_CONSULTATION} WHERE c.id = $1{lock}", consultation_id)
    return msgspec.convert(dict(row), Consultation) if row else None


async def consultations_of_accounts(conn: Conn, booked_by: UUID, limit: int) -> list[Consultation]:
    rows = await conn.fetch(f"{_CONSULTATION} WHERE c.booked_by = $1 ORDER BY lower(c.slot) DESC LIMIT $2",
                            booked_by, limit)
    return [msgspec.convert(dict(r), Consultation) for r in rows]


async def set_status(conn: Conn, consultation_id: UUID, status: str, **columns: Any) -> None:
    # column names come from the service's fixed vocabulary, never from a client
    names = list(columns)
    assignments = "".join(f", {n} = ${i}" for i, n in enumerate(names, start=3))
    await conn.execute(f"UPDATE consultations SET status = $2, updated_at = now(){assignments} WHERE id = $1",  # noqa: S608
                       consultation_id, status, *columns.values())


async def record_event(conn: Conn, consultation_id: UUID, kind: str, actor_account_id: UUID | None,
                       details: dict[str, Any]) -> None:
    await conn.execute(
        """INSERT INTO consultation_events (consultation_id, kind, actor_account_id, details)
           VALUES ($1, $2, $3, $4)""", consultation_id, kind, actor_account_id, details)


async def queue(conn: Conn, doctor_id: UUID, day_start: datetime, day_end: datetime) -> list[QueueEntry]:
    rows = await conn.fetch(
        """SELECT c.id AS consultation_id, lower(c.slot) AS starts_at, upper(c.slot) AS ends_at, c.status,
                  c.patient_id, p.full_name AS patient_name, p.date_of_birth AS patient_date_of_birth, c.reason,
                  c.checked_in_at AS waiting_since, c.call_started_at
           FROM consultations c JOIN patients p ON p.id = c.patient_id
           WHERE c.doctor_id = $1 AND c.slot && tstzrange($2, $3)
           ORDER BY lower(c.slot)""", doctor_id, day_start, day_end)
    return [msgspec.convert(dict(r), QueueEntry) for r in rows]


async def due_no_shows(conn: Conn, patient_absent_before: datetime, limit: int) -> list[UUID]:
    rows = await conn.fetch(
        """SELECT id FROM consultations WHERE status = 'booked' AND lower(slot) < $1
           ORDER BY lower(slot) LIMIT $2 FOR UPDATE SKIP LOCKED""", patient_absent_before, limit)
    return [r["id"] for r in rows]


async def due_doctor_no_shows(conn: Conn, now: datetime, limit: int) -> list[UUID]:
    rows = await conn.fetch(
        """SELECT id FROM consultations WHERE status = 'waiting' AND upper(slot) < $1
           ORDER BY lower(slot) LIMIT $2 FOR UPDATE SKIP LOCKED""", now, limit)
    return [r["id"] for r in rows]


async def search_icd10(conn: Conn, folded_query: str, telemedicine_only: bool, limit: int) -> list[Icd10]:
    rows = await conn.fetch(
        """SELECT code, title_vi, title_en, telemedicine_tt30 FROM icd10_codes
           WHERE (search_doc LIKE '%' || $1 || '%' OR $1 <% search_doc) AND (NOT $2 OR telemedicine_tt30)
           ORDER BY (lower(code) LIKE $1 || '%') DESC, word_similarity($1, search_doc) DESC, code
           LIMIT $3""", folded_query, telemedicine_only, limit)
    return [msgspec.convert(dict(r), Icd10) for r in rows]


async def icd10_names(conn: Conn, codes: list[str]) -> dict[str, str]:
    rows = await conn.fetch("SELECT code, title_vi FROM icd10_codes WHERE code = ANY($1::text[])", codes)
    return {r["code"]: r["title_vi"] for r in rows}


async def save_record(conn: Conn, consultation_id: UUID, fields: dict[str, Any],
                      diagnoses: list[tuple[str, str, bool]]) -> None:
    await conn.execute(
        """INSERT INTO consultation_records (consultation_id, subjective, objective, assessment, plan, advice,
                                             follow_up_days)
           VALUES ($1, $2, $3, $4, $5, $6, $7)
           ON CONFLICT (consultation_id) DO UPDATE SET subjective = $2, objective = $3, assessment = $4, plan = $5,
               advice = $6, follow_up_days = $7, updated_at = now()""",
        consultation_id, fields["subjective"], fields["objective"], fields["assessment"], fields["plan"],
        fields["advice"], fields["follow_up_days"])
    await conn.execute("DELETE FROM consultation_diagnoses WHERE consultation_id = $1", consultation_id)
    await conn.executemany(
        """INSERT INTO consultation_diagnoses (consultation_id, position, code, name, is_principal)
           VALUES ($1, $2, $3, $4, $5)""",
        [(consultation_id, i, code, name, principal) for i, (code, name, principal) in enumerate(diagnoses, 1)])


async def record(conn: Conn, consultation_id: UUID) -> tuple[dict[str, Any] | None, list[Diagnosis], CallQuality]:
    row = await conn.fetchrow(
        """SELECT subjective, objective, assessment, plan, advice, follow_up_days, updated_at
           FROM consultation_records WHERE consultation_id = $1""", consultation_id)
    diagnoses = await conn.fetch(
        """SELECT code, name, is_principal FROM consultation_diagnoses WHERE consultation_id = $1
           ORDER BY position""", consultation_id)
    quality = await conn.fetchrow(
        """SELECT count(*) AS samples, avg(rtt_ms)::float8 AS avg_rtt_ms, max(loss_pct)::float8 AS max_loss_pct,
                  avg(jitter_ms)::float8 AS avg_jitter_ms, avg(in_kbps)::float8 AS avg_in_kbps
           FROM call_quality_samples WHERE consultation_id = $1""", consultation_id)
    assert quality is not None
    return (dict(row) if row else None, [msgspec.convert(dict(d), Diagnosis) for d in diagnoses],
            msgspec.convert(dict(quality), CallQuality))



async def history_patient(conn: Conn, patient_id: UUID) -> HistoryPatient:
    row = await conn.fetchrow(
        """SELECT id, full_name, date_of_birth, sex, weight_kg::float8 AS weight_kg, allergies
           FROM patients WHERE id = $1""", patient_id)
    assert row is not None
    return msgspec.convert(dict(row), HistoryPatient)


async def past_consultations(conn: Conn, patient_id: UUID, except_id: UUID, limit: int) -> list[PastConsultation]:
    rows = await conn.fetch(
        """SELECT c.id, lower(c.slot) AS starts_at, c.status, a.full_name AS doctor_name, c.reason,
                  coalesce(r.advice, '') AS advice,
                  coalesce((SELECT jsonb_agg(jsonb_build_object('code', d.code, 'name', d.name,
                                                                'is_principal', d.is_principal) ORDER BY d.position)
                            FROM consultation_diagnoses d WHERE d.consultation_id = c.id), '[]') AS diagnoses
           FROM consultations c JOIN accounts a ON a.id = c.doctor_id
           LEFT JOIN consultation_records r ON r.consultation_id = c.id
           WHERE c.patient_id = $1 AND c.id <> $2 AND c.status IN ('in_call', 'completed', 'no_show')
           ORDER BY lower(c.slot) DESC LIMIT $3""", patient_id, except_id, limit)
    return [msgspec.convert(dict(r), PastConsultation) for r in rows]


async def past_prescriptions(conn: Conn, patient_id: UUID, limit: int) -> list[PastPrescription]:
    rows = await conn.fetch(
        # the status as eprescription reads it: past its validity a prescription still open is expired
        """SELECT rx.id, rx.code,
                  CASE WHEN rx.status IN ('issued', 'with_dispenser', 'partially_dispensed')
                            AND rx.valid_until < now() THEN 'expired'
                       WHEN rx.status = 'with_dispenser' AND rx.hold_expires_at <= now() THEN 'issued'
                       ELSE rx.status END AS status,
                  rx.issued_at, a.full_name AS doctor_name,
                  coalesce((SELECT jsonb_agg(d->>'code') FROM jsonb_array_elements(rx.diagnoses) d), '[]')
                      AS diagnoses,
                  coalesce((SELECT jsonb_agg(jsonb_build_object(
                                'drug_name', l.drug_name, 'strength', l.strength,
                                'dose_per_time', l.dose_per_time, 'dose_unit', l.dose_unit,
                                'times_per_day', l.times_per_day, 'days', l.days, 'quantity', l.quantity,
                                'quantity_unit', l.quantity_unit) ORDER BY l.position)
                            FROM prescription_lines l WHERE l.prescription_id = rx.id), '[]') AS lines
           FROM prescriptions rx JOIN accounts a ON a.id = rx.doctor_id
           WHERE rx.patient_id = $1 AND rx.status <> 'draft'
           ORDER BY rx.issued_at DESC NULLS LAST LIMIT $2""", patient_id, limit)
    return [msgspec.convert(dict(r), PastPrescription) for r in rows]
