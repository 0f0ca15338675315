"""SQL of patients, guardianships, consents and the access-log view."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import asyncpg
import msgspec

from api.db import Conn
from api.patients.schemas import AccessLogEntry, ConsentDocument, ConsentRecord, Me, PatientProfile

_PROFILE_COLUMNS = """p.id, p.full_name, p.date_of_birth, p.sex, p.citizen_id, p.address, p.health_insurance_number,
    p.allergies, p.weight_kg::float8 AS weight_kg, p.account_id IS NULL AS is_dependent, p.updated_at"""


def _profile(row: asyncpg.Record) -> PatientProfile:
    return msgspec.convert(dict(row), PatientProfile)


async def profile(conn: Conn, patient_id: UUID) -> PatientProfile | None:
    row = await conn.fetchrow(f"SELECT {_PROFILE_COLUMNS} FROM patients p WHERE p.id = $1", patient_id)  # noqa: S608
    return _profile(row) if row else None


async def me(conn: Conn, account_id: UUID) -> Me:
    row = await conn.fetchrow(
        """SELECT a.id AS account_id, a.role, a.full_name, a.phone, a.username::text AS username,
                  p.id AS patient_id, d.facility_id, ph.pharmacy_id
           FROM accounts a LEFT JOIN patients p ON p.account_id = a.id
           LEFT JOIN doctors d ON d.account_id = a.id LEFT JOIN pharmacists ph ON ph.account_id = a.id
           WHERE a.id = $1""", account_id)
    assert row is not None
    fields = dict(row)
    patient_id = fields.pop("patient_id")
    fields["patient"] = await profile(conn, patient_id) if patient_id else None
    return msgspec.convert(fields, Me)


async def is_guardian(conn: Conn, guardian_id: UUID, dependent_id: UUID) -> bool:
    found: bool = await conn.fetchval(
        "SELECT EXISTS (SELECT 1 FROM guardianships WHERE guardian_id = $1 AND dependent_id = $2)",
        guardian_id, dependent_id)
    return found


async def dependents(conn: Conn, guardian_id: UUID) -> list[PatientProfile]:
    rows = await conn.fetch(
        f"""SELECT {_PROFILE_COLUMNS} FROM patients p JOIN guardianships g ON g.dependent_id = p.id
            WHERE g.guardian_id = $1 ORDER BY p.date_of_birth, p.full_name""", guardian_id)  # noqa: S608
    return [_profile(r) for r in rows]


async def create_dependent(conn: Conn, guardian_id: UUID, values: dict[str, Any],
                           relationship: str) -> UUID:
    patient_id: UUID = await conn.fetchval(
        """INSERT INTO patients (full_name, date_of_birth, sex, citizen_id, weight_kg, allergies)
           VALUES ($1, $2, $3, $4, $5, $6) RETURNING id""",
        values["full_name"], values["date_of_birth"], values["sex"], values["citizen_id"], values["weight_kg"],
        values["allergies"])
    await conn.execute(
        "INSERT INTO guardianships (guardian_id, dependent_id, relationship) VALUES ($1, $2, $3)",
        guardian_id, patient_id, relationship)
    return patient_id


_PATCHABLE = ("full_name", "date_of_birth", "sex", "citizen_id", "address", "health_insurance_number", "allergies",
              "weight_kg")


async def update_profile(conn: Conn, patient_id: UUID, changes: dict[str, Any]) -> None:
    # Column names come from the fixed whitelist above, never from the client.
    columns = [c for c in _PATCHABLE if c in changes]
    if not columns:
        return
    assignments = ", ".join(f"{c} = ${i}" for i, c in enumerate(columns, start=2))
    await conn.execute(f"UPDATE patients SET {assignments}, updated_at = now() WHERE id = $1",  # noqa: S608
                       patient_id, *(changes[c] for c in columns))
    if "full_name" in changes:
        await conn.execute(
            "UPDATE accounts SET full_name = $2 FROM patients p WHERE p.id = $1 AND accounts.id = p.account_id",
            patient_id, changes["full_name"])


async def current_consent_documents(conn: Conn) -> list[ConsentDocument]:
    rows = await conn.fetch(
        """SELECT DISTINCT ON (kind) kind, version, title, body, effective_at FROM consent_documents
           WHERE effective_at <= now() ORDER BY kind, effective_at DESC""")
    return [msgspec.convert(dict(r), ConsentDocument) for r in rows]


async def consent_document_exists(conn: Conn, kind: str, version: str) -> bool:
    found: bool = await conn.fetchval(
        "SELECT EXISTS (SELECT 1 FROM consent_documents WHERE kind = $1 AND version = $2 AND effective_at <= now())",
        kind, version)
    return found


_CONSENT_STATE = """
    SELECT DISTINCT ON (c.patient_id, c.kind) c.id, c.patient_id, c.kind, c.version, c.granted, c.recorded_at,
           (c.granted AND c.version = cur.version) AS current
    FROM consents c
    JOIN (SELECT DISTINCT ON (kind) kind, version FROM consent_documents WHERE effective_at <= now()
          ORDER BY kind, effective_at DESC) cur ON cur.kind = c.kind
    WHERE c.patient_id = ANY($1::uuid[])
    ORDER BY c.patient_id, c.kind, c.recorded_at DESC, c.id"""


async def consent_state(conn: Conn, patient_ids: list[UUID]) -> list[ConsentRecord]:
    rows = await conn.fetch(_CONSENT_STATE, patient_ids)
    return [msgspec.convert(dict(r), ConsentRecord) for r in rows]


async def insert_consent(conn: Conn, patient_id: UUID, kind: str, version: str, granted: bool,
                         recorded_by: UUID, client_ip: str | None, user_agent: str | None) -> None:
    await conn.execute(
        """INSERT INTO consents (patient_id, kind, version, granted, recorded_by, client_ip, user_agent)
           VALUES ($1, $2, $3, $4, $5, $6::inet, $7)""",
        patient_id, kind, version, granted, recorded_by, client_ip, user_agent)


async def has_current_consent(conn: Conn, patient_id: UUID, kind: str) -> bool:
    """True when the patient's latest decision on ``kind`` grants the version in force now."""
    rows = await conn.fetch(_CONSENT_STATE, [patient_id])
    return any(r["kind"] == kind and r["current"] for r in rows)


async def access_log(conn: Conn, viewer_account_id: UUID, patient_ids: list[UUID], limit: int,
                     before_id: int | None) -> list[tuple[int, AccessLogEntry]]:
    rows = await conn.fetch(
        """SELECT l.id, l.at, l.action, l.actor_role, a.full_name AS actor_name, l.subject_patient_id AS patient_id,
                  l.actor_account_id IS NOT DISTINCT FROM $1 AS by_you
           FROM audit_log l LEFT JOIN accounts a ON a.id = l.actor_account_id
           WHERE l.subject_patient_id = ANY($2::uuid[]) AND ($4::bigint IS NULL OR l.id < $4)
           ORDER BY l.id DESC LIMIT $3""", viewer_account_id, patient_ids, limit, before_id)
    return [(r["id"], msgspec.convert({k: v for k, v in r.items() if k != "id"}, AccessLogEntry)) for r in rows]
