"""SQL of the vaccination record and schedule; rows leave as Structs."""

from __future__ import annotations

from datetime import date
from uuid import UUID

import asyncpg
import msgspec

from api.db import Conn
from notifications.vaccination import Catalogue, GivenDose, ScheduleDose, Series, Span, Vaccine
from notifications.vaccination_schemas import Dose, DoseIn, DoseSource


class Child(msgspec.Struct, frozen=True):
    """A dependent with a date of birth whose reminders have someone to go to."""

    id: UUID
    full_name: str
    date_of_birth: date


def _span(months: int | None, days: int | None) -> Span | None:
    return None if months is None or days is None else Span(months, days)


def _schedule_dose(r: asyncpg.Record) -> ScheduleDose:
    return ScheduleDose(
        series=r["series"], dose_number=r["dose_number"], vaccine=r["vaccine"],
        rec_age=Span(r["rec_age_months"], r["rec_age_days"]), min_age=Span(r["min_age_months"], r["min_age_days"]),
        min_interval_days=r["min_interval_days"], rec_interval=_span(r["rec_interval_months"], r["rec_interval_days"]),
        max_age=_span(r["max_age_months"], r["max_age_days"]), hard_cutoff=r["hard_cutoff"],
        program_scope=r["program_scope"], legal_basis=r["legal_basis"], source=r["source"],
        confidence=r["confidence"], note=r["note"], valid_from=r["valid_from"], valid_to=r["valid_to"])


async def catalogue(conn: Conn) -> Catalogue:
    series = await conn.fetch(
        """SELECT code, name_vi, program, program_scope, for_children, overlaps_with, note
           FROM vaccine_series ORDER BY code""")
    vaccines = await conn.fetch(
        "SELECT code, name_vi, short_name_vi, series, program, live, route, note FROM vaccines ORDER BY code")
    doses = await conn.fetch("SELECT * FROM vaccine_schedule_doses ORDER BY series, dose_number, valid_from")
    return Catalogue(
        series=[msgspec.convert({**dict(r), "overlaps_with": tuple(r["overlaps_with"])}, Series) for r in series],
        vaccines=[msgspec.convert(dict(r), Vaccine) for r in vaccines],
        doses=[_schedule_dose(r) for r in doses])


async def date_of_birth(conn: Conn, patient_id: UUID) -> tuple[bool, date | None]:
    """(whether the patient exists, their date of birth)."""
    row = await conn.fetchrow("SELECT date_of_birth FROM patients WHERE id = $1", patient_id)
    return (False, None) if row is None else (True, row["date_of_birth"])


async def treats(conn: Conn, doctor_id: UUID, patient_id: UUID) -> bool:
    """The doctor has a consultation (not cancelled) with the patient: what makes them a treating doctor here."""
    found: bool = await conn.fetchval(
        """SELECT EXISTS (SELECT 1 FROM consultations WHERE doctor_id = $1 AND patient_id = $2
                          AND status NOT IN ('cancelled_by_patient', 'cancelled_by_doctor'))""", doctor_id, patient_id)
    return found


_DOSE = """SELECT d.id, d.patient_id, d.vaccine, v.name_vi AS vaccine_name, v.series, d.dose_number, d.given_on,
                  d.place, d.lot, d.source, d.recorded_by, d.created_at AS recorded_at, d.entered_in_error_at,
                  d.entered_in_error_reason
           FROM vaccination_doses d JOIN vaccines v ON v.code = d.vaccine"""


def _dose(r: asyncpg.Record) -> Dose:
    return msgspec.convert(dict(r), Dose)


async def doses(conn: Conn, patient_id: UUID) -> list[Dose]:
    rows = await conn.fetch(f"{_DOSE} WHERE d.patient_id = $1 ORDER BY d.given_on, v.series, d.dose_number, d.id",
                            patient_id)
    return [_dose(r) for r in rows]


async def dose(conn: Conn, dose_id: UUID, *, for_update: bool = False) -> tuple[Dose, UUID] | None:
    """The dose and its patient id."""
    row = await conn.fetchrow(
        f"{_DOSE} WHERE d.id = $1 {'FOR UPDATE OF d' if for_update else ''}", dose_id)
    if row is None:
        return None
    return _dose(row), row["patient_id"]


async def insert_dose(conn: Conn, patient_id: UUID, data: DoseIn, source: DoseSource, recorded_by: UUID) -> Dose:
    """Raises asyncpg.UniqueViolationError when this dose number of this vaccine is already recorded."""
    dose_id = await conn.fetchval(
        """INSERT INTO vaccination_doses (patient_id, vaccine, dose_number, given_on, place, lot, source, recorded_by)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id""",
        patient_id, data.vaccine, data.dose_number, data.given_on, data.place, data.lot, source, recorded_by)
    found = await dose(conn, dose_id)
    assert found is not None
    return found[0]


async def mark_entered_in_error(conn: Conn, dose_id: UUID, by: UUID, reason: str) -> None:
    await conn.execute(
        """UPDATE vaccination_doses SET entered_in_error_at = now(), entered_in_error_by = $2,
                  entered_in_error_reason = $3 WHERE id = $1""", dose_id, by, reason)


def counted(records: list[Dose]) -> list[GivenDose]:
    return [GivenDose(vaccine=d.vaccine, dose_number=d.dose_number, given_on=d.given_on) for d in records
            if d.entered_in_error_at is None]


async def children_page(conn: Conn, born_after: date, after_id: UUID | None, limit: int) -> list[Child]:
    """Dependents born after ``born_after`` with at least one guardian holding an active account, by id."""
    rows = await conn.fetch(
        """SELECT p.id, p.full_name, p.date_of_birth FROM patients p
           WHERE p.date_of_birth > $1 AND ($2::uuid IS NULL OR p.id > $2)
             AND EXISTS (SELECT 1 FROM guardianships g JOIN patients gp ON gp.id = g.guardian_id
                         JOIN accounts a ON a.id = gp.account_id
                         WHERE g.dependent_id = p.id AND a.status = 'active')
           ORDER BY p.id LIMIT $3""", born_after, after_id, limit)
    return [msgspec.convert(dict(r), Child) for r in rows]


async def counted_doses_of(conn: Conn, patient_ids: list[UUID]) -> dict[UUID, list[GivenDose]]:
    rows = await conn.fetch(
        """SELECT patient_id, vaccine, dose_number, given_on FROM vaccination_doses
           WHERE patient_id = ANY($1::uuid[]) AND entered_in_error_at IS NULL""", patient_ids)
    out: dict[UUID, list[GivenDose]] = {}
    for r in rows:
        out.setdefault(r["patient_id"], []).append(
            GivenDose(vaccine=r["vaccine"], dose_number=r["dose_number"], given_on=r["given_on"]))
    return out
