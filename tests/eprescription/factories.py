"""Prescriptions put straight into the database, for tests about what happens around an issued prescription
(active medications for the clinical checks, the national outbox, pharmacy lookups).

These rows skip the prescribing rules and carry a placeholder signature on purpose; prescribing and signing
themselves are tested through the API.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import NamedTuple
from uuid import UUID

import asyncpg

from api import db
from eprescription.codes import new_code


class RxLine(NamedTuple):
    drug_id: UUID
    days: int = 5
    quantity: int = 10
    times_per_day: int = 2
    dose_per_time: float = 1


async def drug_id(pool: asyncpg.Pool, inn: str, strength: str | None = None) -> UUID:
    """A seed drug by INN (and strength when the INN has several rows)."""
    found: UUID | None = await pool.fetchval(
        """SELECT id FROM drugs WHERE inn = $1 AND ($2::text IS NULL OR strength = $2)
           ORDER BY strength LIMIT 1""", inn, strength)
    assert found is not None, f"no seed drug {inn} {strength or ''}"
    return found


async def insert_issued_prescription(pool: asyncpg.Pool, consultation_id: UUID, lines: Sequence[RxLine], *,
                                     issued_at: datetime | None = None, status: str = "issued",
                                     rx_type: str = "c") -> UUID:
    """An issued prescription of the consultation's doctor for its patient, with ``lines``."""
    issued = issued_at or datetime.now(UTC)
    async with pool.acquire() as conn, conn.transaction():
        c = await conn.fetchrow(
            """SELECT c.doctor_id, c.patient_id, d.facility_id, f.code AS facility_code
               FROM consultations c JOIN doctors d ON d.account_id = c.doctor_id
               JOIN facilities f ON f.id = d.facility_id WHERE c.id = $1""", consultation_id)
        assert c is not None, "no such consultation"
        key_id = await conn.fetchval(
            """INSERT INTO doctor_signing_keys (doctor_id, public_key, private_key_enc, retired_at)
               VALUES ($1, $2, '\\x00', now()) RETURNING id""", c["doctor_id"], secrets.token_bytes(32))
        rx_id: UUID = await conn.fetchval(
            """INSERT INTO prescriptions (consultation_id, patient_id, doctor_id, facility_id, diagnoses)
               VALUES ($1, $2, $3, $4, '[{"code": "J00", "name": "Viêm mũi họng cấp", "conclusion": ""}]')
               RETURNING id""", consultation_id, c["patient_id"], c["doctor_id"], c["facility_id"])
        for position, line in enumerate(lines, start=1):
            await conn.execute(
                """INSERT INTO prescription_lines (prescription_id, position, drug_id, drug_name, strength,
                                                   dosage_form, dose_per_time, dose_unit, times_per_day, days,
                                                   quantity, quantity_unit, route)
                   SELECT $1, $2, d.id, d.inn, d.strength, d.dosage_form, $3, 'viên', $4, $5, $6, 'viên', d.route
                   FROM drugs d WHERE d.id = $7""",
                rx_id, position, line.dose_per_time, line.times_per_day, line.days, line.quantity, line.drug_id)
        code = str(new_code(c["facility_code"], rx_type))  # type: ignore[arg-type]
        await conn.execute(
            """UPDATE prescriptions SET status = $2, rx_type = $3, code = $4, signed_content = '\\x7b7d',
                      signature = $5, signing_key_id = $6, issued_at = $7,
                      valid_until = $7::timestamptz + interval '5 days'
               WHERE id = $1""",
            rx_id, status, rx_type, code, bytes(64), key_id, issued)
    return rx_id


def days_ago(n: float) -> datetime:
    return datetime.now(UTC) - timedelta(days=n)


async def behind_the_apps_back(database: db.DatabaseTarget, table: str, sql: str, *args: object) -> None:
    """Run ``sql`` as the schema owner with ``table``'s triggers off: what someone with database rights could do,
    which the application role cannot (tests use it to move a clock or forge a tampered row)."""
    conn = await asyncpg.connect(database.admin_dsn)
    try:
        async with conn.transaction():
            await conn.execute(f"ALTER TABLE {table} DISABLE TRIGGER USER")
            await conn.execute(sql, *args)
            await conn.execute(f"ALTER TABLE {table} ENABLE TRIGGER USER")
    finally:
        await conn.close()
