"""Rules of the vaccination record: who may read or add to a child's doses, and keeping reminders in step with it.

A patient sees their own record and their dependents'; a doctor sees a patient they have a consultation with.
Everyone else gets the same 404 as for an unknown id (as in ``api.patients.service``).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime
from uuid import UUID

import asyncpg

from api import audit
from api.audit import AuditContext
from api.auth.principal import Principal
from api.db import Conn
from api.errors import Conflict, DomainError, FieldError, Forbidden, NotFound
from api.patients import db as patients_db
from notifications import outbox
from notifications import vaccination as vx
from notifications import vaccination_db as db
from notifications.vaccination_schemas import DoseIn, DoseRecorded, DoseSource, VaccinationRecord


class InvalidDose(DomainError):
    status, slug, title = 422, "validation-error", "Invalid input"

    def __init__(self, problems: Sequence[vx.DoseProblem]) -> None:
        super().__init__("; ".join(f"{p.path}: {p.message}" for p in problems),
                         errors=[FieldError(p.path, p.message) for p in problems])


class DoseAlreadyRecorded(Conflict):
    slug, title = "vaccination-dose-exists", "Dose already recorded"


class DoseAlreadyEnteredInError(Conflict):
    slug, title = "vaccination-dose-entered-in-error", "Dose already marked entered in error"


class DoseNotFound(NotFound):
    slug, title = "vaccination-dose-not-found", "Dose not found"


def local_today() -> date:
    return datetime.now(outbox.VIETNAM).date()


async def catalogue(pool: asyncpg.Pool) -> vx.Catalogue:
    async with pool.acquire() as conn:
        return await db.catalogue(conn)


async def _access(conn: Conn, principal: Principal, patient_id: UUID) -> DoseSource:
    """Who the caller is to this patient, which is also who vouches for a dose they record."""
    if principal.role == "patient" and principal.patient_id is not None:
        if patient_id == principal.patient_id:
            return "patient"
        if await patients_db.is_guardian(conn, principal.patient_id, patient_id):
            return "guardian"
    elif principal.role == "doctor" and await db.treats(conn, principal.account_id, patient_id):
        return "clinician"
    raise NotFound("No such patient, or it is not yours to see.")


async def _record(conn: Conn, catalogue: vx.Catalogue, patient_id: UUID, dob: date | None,
                  today: date) -> VaccinationRecord:
    doses = await db.doses(conn, patient_id)
    plan = vx.plan(dob, catalogue, db.counted(doses), today) if dob is not None else []
    return VaccinationRecord(patient_id=patient_id, date_of_birth=dob, as_of=today, doses=doses, plan=plan)


async def _cancel_stale_reminders(conn: Conn, catalogue: vx.Catalogue, patient_id: UUID, vaccine: str) -> int:
    """Pending reminders of every dose of the series this change touches: the next run of the scheduler enqueues
    those of the new plan."""
    cancelled = 0
    for subject in vx.series_subjects(catalogue, patient_id, vx.affected_series(catalogue, vaccine)):
        cancelled += await outbox.cancel_subject(conn, subject)
    return cancelled


async def view_record(pool: asyncpg.Pool, principal: Principal, patient_id: UUID, ctx: AuditContext,
                      today: date | None = None) -> VaccinationRecord:
    today = today or local_today()
    async with pool.acquire() as conn, conn.transaction():
        await _access(conn, principal, patient_id)
        _, dob = await db.date_of_birth(conn, patient_id)
        record = await _record(conn, await db.catalogue(conn), patient_id, dob, today)
        await audit.record(conn, ctx, "vaccination.view", target_type="patient", target_id=patient_id,
                           subject_patient_id=patient_id)
        return record


async def record_dose(pool: asyncpg.Pool, principal: Principal, patient_id: UUID, data: DoseIn, ctx: AuditContext,
                      today: date | None = None) -> DoseRecorded:
    today = today or local_today()
    async with pool.acquire() as conn, conn.transaction():
        source = await _access(conn, principal, patient_id)
        # one writer per patient at a time, so the sequence checks see each other's doses
        dob = await conn.fetchval("SELECT date_of_birth FROM patients WHERE id = $1 FOR NO KEY UPDATE", patient_id)
        catalogue = await db.catalogue(conn)
        check = vx.check_dose(dob, catalogue, db.counted(await db.doses(conn, patient_id)), data.vaccine,
                              data.dose_number, data.given_on, today)
        if check.problems:
            raise InvalidDose(check.problems)
        try:
            dose = await db.insert_dose(conn, patient_id, data, source, principal.account_id)
        except asyncpg.UniqueViolationError:
            raise DoseAlreadyRecorded(
                f"Dose {data.dose_number} of {data.vaccine} is already recorded for this patient; mark it entered "
                "in error first if it is wrong.") from None
        await _cancel_stale_reminders(conn, catalogue, patient_id, data.vaccine)
        await audit.record(conn, ctx, "vaccination.record", target_type="vaccination_dose", target_id=dose.id,
                           subject_patient_id=patient_id,
                           details={"vaccine": data.vaccine, "dose_number": data.dose_number, "source": source,
                                    "warnings": [w.code for w in check.warnings]})
        record = await _record(conn, catalogue, patient_id, dob, today)
        return DoseRecorded(dose=dose, warnings=check.warnings, record=record)


async def enter_in_error(pool: asyncpg.Pool, principal: Principal, patient_id: UUID, dose_id: UUID, reason: str,
                         ctx: AuditContext, today: date | None = None) -> VaccinationRecord:
    """Only the account that recorded the dose, or a treating doctor, may withdraw it."""
    today = today or local_today()
    async with pool.acquire() as conn, conn.transaction():
        relation = await _access(conn, principal, patient_id)
        found = await db.dose(conn, dose_id, for_update=True)
        if found is None or found[1] != patient_id:
            raise DoseNotFound("No such dose in this patient's record.")
        dose, _ = found
        if dose.entered_in_error_at is not None:
            raise DoseAlreadyEnteredInError("This dose is already marked entered in error.")
        if dose.recorded_by != principal.account_id and relation != "clinician":
            raise Forbidden("Only whoever recorded this dose, or a treating doctor, may mark it entered in error.")
        await db.mark_entered_in_error(conn, dose_id, principal.account_id, reason)
        catalogue = await db.catalogue(conn)
        await _cancel_stale_reminders(conn, catalogue, patient_id, dose.vaccine)
        await audit.record(conn, ctx, "vaccination.entered_in_error", target_type="vaccination_dose",
                           target_id=dose_id, subject_patient_id=patient_id,
                           details={"vaccine": dose.vaccine, "dose_number": dose.dose_number, "reason": reason})
        _, dob = await db.date_of_birth(conn, patient_id)
        return await _record(conn, catalogue, patient_id, dob, today)
