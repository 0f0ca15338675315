"""The no-extra-work baselines the verify benchmark compares with (issue 8), served by the same stack as the API
(Litestar, msgspec, asyncpg, uvicorn) so the ratios measure only what verify adds:

* ``GET /ping``: no database, a constant body.
* ``GET /rx/{code}``: reads the same rows verify reads (one round trip, the same SQL without the audit insert) and
  returns them as they come, with no checks, no signature verification, no authentication.
* ``POST /rx``: writes the rows that writing and signing a prescription in one request leave behind (the
  prescription, issued with its content and a signature-sized value, its lines, the national outbox row, the
  patient's push notice, the audit row, the doctor's spent TOTP step) in one round trip, taking everything from the
  request: no authentication, no rules or clinical checks, no TOTP check, no signing.

    uvicorn --factory load_tests.baseline_app:create_app   (DATABASE_URL: the platform's app DSN)

Never part of the product: it exists for benchmarks only.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any
from uuid import UUID, uuid4

import asyncpg
import msgspec
from litestar import Litestar, Request, Response, get, post
from litestar.datastructures import State

from api import db
from api.settings import load_settings
from pharmacy_link.dispensing_db import _LOAD


@get("/ping")
async def ping() -> dict[str, str]:
    return {"status": "ok"}


@get("/rx/{code:str}")
async def read_row(code: str, state: State) -> Response[Any]:
    pool: asyncpg.Pool = state.pool
    row = await pool.fetchrow(_LOAD, code)
    if row is None:
        return Response({"error": "not found"}, status_code=404)
    values = dict(row)
    values["signed_content"] = values["signed_content"].decode()
    values["signature"] = values["signature"].hex()
    values["public_key"] = values["public_key"].hex()
    return Response(values)


class MinimalLine(msgspec.Struct):
    drug_id: UUID
    drug_name: str
    strength: str
    dosage_form: str
    route: str
    dose_per_time: float
    dose_unit: str
    times_per_day: int
    days: int
    quantity: int
    quantity_unit: str
    usage: str


class MinimalPrescription(msgspec.Struct):
    code: Annotated[str, msgspec.Meta(pattern=r"^[0-9A-Z]{5}[0-9a-z]{7}-[cnh]$")]
    consultation_id: UUID
    patient_id: UUID
    doctor_id: UUID
    facility_id: UUID
    patient_account_id: UUID
    signing_key_id: UUID
    diagnoses: list[dict[str, str]]
    lines: list[MinimalLine]


def _literal(value: object) -> str:
    """A SQL string literal (standard_conforming_strings is on: only quotes need doubling). Used because the two
    statements below travel as one simple-protocol script, which takes no parameters; ids and the code are already
    validated by their types."""
    return "'" + str(value).replace("'", "''") + "'"


def _script(rx_id: UUID, rx: MinimalPrescription, body: bytes) -> str:
    # The lines of a signed prescription are immutable (a trigger), so like the product the rows are written as a
    # draft and then issued: two statements, sent together in one round trip.
    lines = _literal(msgspec.json.encode(rx.lines).decode())
    return f"""BEGIN;
WITH rx AS (
  INSERT INTO prescriptions (id, consultation_id, patient_id, doctor_id, facility_id, diagnoses)
  VALUES ({_literal(rx_id)}, {_literal(rx.consultation_id)}, {_literal(rx.patient_id)}, {_literal(rx.doctor_id)},
          {_literal(rx.facility_id)}, {_literal(msgspec.json.encode(rx.diagnoses).decode())})
  RETURNING id)
INSERT INTO prescription_lines (prescription_id, position, drug_id, drug_name, strength, dosage_form, route,
                                dose_per_time, dose_unit, times_per_day, days, quantity, quantity_unit, usage)
SELECT rx.id, l.position, l.drug_id, l.drug_name, l.strength, l.dosage_form, l.route, l.dose_per_time, l.dose_unit,
       l.times_per_day, l.days, l.quantity, l.quantity_unit, l.usage
FROM rx, ROWS FROM (jsonb_to_recordset({lines}::jsonb) AS (
  drug_id uuid, drug_name text, strength text, dosage_form text, route text, dose_per_time numeric, dose_unit text,
  times_per_day smallint, days smallint, quantity integer, quantity_unit text, usage text))
WITH ORDINALITY AS l(drug_id, drug_name, strength, dosage_form, route, dose_per_time, dose_unit, times_per_day, days,
                     quantity, quantity_unit, usage, position);
WITH rx AS (
  UPDATE prescriptions SET status = 'issued', rx_type = 'c', code = {_literal(rx.code)},
         signed_content = decode({_literal(body.hex())}, 'hex'), signature = decode(repeat('00', 64), 'hex'),
         signing_key_id = {_literal(rx.signing_key_id)}, issued_at = now(), valid_until = now() + interval '5 days'
  WHERE id = {_literal(rx_id)} RETURNING id),
national AS (
  INSERT INTO national_rx_outbox (prescription_id, payload) SELECT id, jsonb_build_object('code', {_literal(rx.code)})
  FROM rx),
notice AS (
  INSERT INTO notification_outbox (idempotency_key, account_id, kind, category, channel, params, subject, expires_at,
                                   max_attempts)
  SELECT 'prescription:' || {_literal(rx.code)} || ':issued', {_literal(rx.patient_account_id)}, 'prescription_issued',
         'prescription', 'push', jsonb_build_object('code', {_literal(rx.code)}), 'prescription:' || rx.id,
         now() + interval '5 days', 6
  FROM rx),
step AS (
  UPDATE accounts SET totp_last_step = totp_last_step + 1 WHERE id = {_literal(rx.doctor_id)})
INSERT INTO audit_log (actor_account_id, actor_role, action, target_type, target_id, subject_patient_id)
SELECT {_literal(rx.doctor_id)}, 'doctor', 'prescription.signed', 'prescription', rx.id::text, {_literal(rx.patient_id)}
FROM rx;
COMMIT;"""  # noqa: S608 - literals quoted by _literal; ids and code validated by their types


@post("/rx", status_code=201)
async def insert_rows(request: Request[Any, Any, Any], state: State) -> Response[Any]:
    body = await request.body()
    rx = msgspec.json.decode(body, type=MinimalPrescription)
    rx_id = uuid4()
    pool: asyncpg.Pool = state.pool
    async with pool.acquire() as conn:
        await conn.execute(_script(rx_id, rx, body))
    return Response({"id": str(rx_id), "code": rx.code}, status_code=201)


def create_app() -> Litestar:
    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        settings = load_settings()  # the same variables as the API: same pool, codecs and role
        pool = await db.create_pool(db.DatabaseTarget(os.environ["DATABASE_URL"], "", None), settings)
        app.state.pool = pool
        try:
            yield
        finally:
            await pool.close()

    return Litestar(route_handlers=[ping, read_row, insert_rows], lifespan=[lifespan], debug=False, logging_config=None)
