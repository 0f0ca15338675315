"""Consultations put straight into the database, for tests about what happens after booking (calls, notes...).

Booking itself is tested through the API in test_booking.py; these rows skip its rules on purpose.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import UUID

import asyncpg


async def make_consultation(pool: asyncpg.Pool, *, doctor_username: str = "bs.lan",
                            patient_phone: str = "+84912345678", starts_in: timedelta = timedelta(minutes=5),
                            minutes: int = 20, status: str = "booked", for_child: bool = False,
                            fee_vnd: int = 150_000) -> UUID:
    """A consultation of a demo doctor with a demo patient (or that patient's child), starting ``starts_in`` from
    now. Needs the ``demo`` fixture."""
    start = datetime.now(UTC) + starts_in
    row = await pool.fetchrow(
        """SELECT a.id AS account_id, p.id AS patient_id FROM accounts a JOIN patients p ON p.account_id = a.id
           WHERE a.phone = $1""", patient_phone)
    assert row is not None, f"no demo patient {patient_phone}"
    patient_id = row["patient_id"]
    if for_child:
        patient_id = await pool.fetchval(
            "SELECT dependent_id FROM guardianships WHERE guardian_id = $1 LIMIT 1", patient_id)
    consultation_id: UUID = await pool.fetchval(
        """INSERT INTO consultations (doctor_id, patient_id, booked_by, slot, status, reason, fee_vnd,
                                      checked_in_at, call_started_at)
           SELECT d.account_id, $2, $3, tstzrange($4::timestamptz, $4::timestamptz + make_interval(mins => $5)),
                  $6, 'Khám từ xa', $7,
                  CASE WHEN $6 IN ('waiting', 'in_call') THEN now() END,
                  CASE WHEN $6 = 'in_call' THEN now() END
           FROM doctors d JOIN accounts a ON a.id = d.account_id WHERE a.username = $1
           RETURNING id""",
        doctor_username, patient_id, row["account_id"], start, minutes, status, fee_vnd)
    return consultation_id
