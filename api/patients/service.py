"""Rules for patient records: who may see or change a record, consents, the patient's view of the audit log."""

from __future__ import annotations

from datetime import date
from typing import Any
from uuid import UUID

import asyncpg
import msgspec

from api import audit
from api.audit import AuditContext
from api.auth.principal import Principal
from api.db import Conn
from api.errors import Conflict, InvalidInput, NotFound
from api.patients import db
from api.patients.schemas import (
    AccessLogEntry,
    ConsentIn,
    ConsentRecord,
    DependentIn,
    Me,
    PatientPatch,
    PatientProfile,
)


class CitizenIdTaken(Conflict):
    slug, title = "citizen-id-taken", "Citizen ID already registered"


async def _require_access(conn: Conn, principal: Principal, patient_id: UUID) -> None:
    """A patient sees their own record and their dependents'; nobody else does through these routes.

    Clinicians reach patient data through the consultation that makes them the treating doctor (consultations/).
    Unknown and forbidden ids get the same 404 so ids cannot be probed.
    """
    if principal.role == "patient" and principal.patient_id is not None and (
            patient_id == principal.patient_id or await db.is_guardian(conn, principal.patient_id, patient_id)):
        return
    raise NotFound("No such patient, or it is not yours to see.")


async def me(pool: asyncpg.Pool, principal: Principal) -> Me:
    async with pool.acquire() as conn:
        return await db.me(conn, principal.account_id)


async def view_patient(pool: asyncpg.Pool, principal: Principal, patient_id: UUID, ctx: AuditContext) -> PatientProfile:
    async with pool.acquire() as conn, conn.transaction():
        await _require_access(conn, principal, patient_id)
        found = await db.profile(conn, patient_id)
        if found is None:
            raise NotFound("No such patient, or it is not yours to see.")
        await audit.record(conn, ctx, "patient.viewed", target_type="patient", target_id=patient_id,
                           subject_patient_id=patient_id)
        return found


EARLIEST_BIRTH = date(1900, 1, 1)  # the patients table's CHECK


def _check_birth_date(born: date | None) -> None:
    if born is not None and born < EARLIEST_BIRTH:
        raise InvalidInput("body.date_of_birth", f"A date of birth is {EARLIEST_BIRTH.isoformat()} or later.")


def _changes(patch: PatientPatch) -> dict[str, Any]:
    changes = {f: getattr(patch, f) for f in patch.__struct_fields__ if getattr(patch, f) is not msgspec.UNSET}
    if "allergies" in changes:
        changes["allergies"] = msgspec.to_builtins(changes["allergies"])
    return changes


async def update_patient(pool: asyncpg.Pool, principal: Principal, patient_id: UUID, patch: PatientPatch,
                         ctx: AuditContext) -> PatientProfile:
    changes = _changes(patch)
    _check_birth_date(changes.get("date_of_birth"))
    async with pool.acquire() as conn, conn.transaction():
        await _require_access(conn, principal, patient_id)
        try:
            await db.update_profile(conn, patient_id, changes)
        except asyncpg.UniqueViolationError:
            raise CitizenIdTaken("Another patient record already has this citizen ID.") from None
        await audit.record(conn, ctx, "patient.updated", target_type="patient", target_id=patient_id,
                           subject_patient_id=patient_id, details={"fields": sorted(changes)})
        updated = await db.profile(conn, patient_id)
        assert updated is not None
        return updated


async def list_dependents(pool: asyncpg.Pool, principal: Principal) -> list[PatientProfile]:
    assert principal.patient_id is not None
    async with pool.acquire() as conn:
        return await db.dependents(conn, principal.patient_id)


async def add_dependent(pool: asyncpg.Pool, principal: Principal, data: DependentIn,
                        ctx: AuditContext) -> PatientProfile:
    assert principal.patient_id is not None
    _check_birth_date(data.date_of_birth)
    values = msgspec.to_builtins(data)
    values["date_of_birth"] = data.date_of_birth
    async with pool.acquire() as conn, conn.transaction():
        guardian = await db.profile(conn, principal.patient_id)
        if guardian and guardian.date_of_birth and data.date_of_birth <= guardian.date_of_birth:
            raise InvalidInput("body.date_of_birth", "A dependent must be younger than their guardian.")
        try:
            dependent_id = await db.create_dependent(conn, principal.patient_id, values, data.relationship)
        except asyncpg.UniqueViolationError:
            raise CitizenIdTaken("Another patient record already has this citizen ID.") from None
        await audit.record(conn, ctx, "patient.dependent_added", target_type="patient", target_id=dependent_id,
                           subject_patient_id=dependent_id)
        created = await db.profile(conn, dependent_id)
        assert created is not None
        return created


async def record_consent(pool: asyncpg.Pool, principal: Principal, data: ConsentIn,
                         ctx: AuditContext) -> ConsentRecord:
    assert principal.patient_id is not None
    patient_id = data.patient_id or principal.patient_id
    async with pool.acquire() as conn, conn.transaction():
        await _require_access(conn, principal, patient_id)
        if not await db.consent_document_exists(conn, data.kind, data.version):
            raise InvalidInput("body.version", f"There is no {data.kind} document version {data.version} in force.")
        await db.insert_consent(conn, patient_id, data.kind, data.version, data.granted, principal.account_id,
                                ctx.client_ip, ctx.user_agent)
        await audit.record(conn, ctx, "consent.granted" if data.granted else "consent.withdrawn",
                           target_type="consent", target_id=f"{data.kind}:{data.version}",
                           subject_patient_id=patient_id)
        state = await db.consent_state(conn, [patient_id])
        return next(c for c in state if c.kind == data.kind)


async def my_consents(pool: asyncpg.Pool, principal: Principal) -> list[ConsentRecord]:
    assert principal.patient_id is not None
    async with pool.acquire() as conn:
        ids = [principal.patient_id] + [d.id for d in await db.dependents(conn, principal.patient_id)]
        return await db.consent_state(conn, ids)


async def access_log(pool: asyncpg.Pool, principal: Principal, limit: int,
                     before: int | None) -> tuple[list[AccessLogEntry], int | None]:
    """Everything recorded about the patient's and their children's data, newest first, with a cursor."""
    assert principal.patient_id is not None
    async with pool.acquire() as conn:
        ids = [principal.patient_id] + [d.id for d in await db.dependents(conn, principal.patient_id)]
        rows = await db.access_log(conn, principal.account_id, ids, limit, before)
    next_cursor = rows[-1][0] if len(rows) == limit else None
    return [entry for _, entry in rows], next_cursor
