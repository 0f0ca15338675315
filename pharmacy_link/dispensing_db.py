"""SQL of verifying and dispensing: the prescription as a pharmacy sees it, dispenses, holds, events."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime
from typing import Any
from uuid import UUID

import msgspec

from api.audit import AuditContext
from api.db import Conn


class RxLine(msgspec.Struct):
    position: int
    drug_id: UUID
    drug_name: str
    strength: str
    dosage_form: str
    route: str
    control_class: str
    ingredients: list[str]
    dose_per_time: float
    dose_unit: str
    times_per_day: int
    days: int
    quantity: int
    quantity_unit: str
    usage: str
    dispensed_quantity: int


class RxAtPharmacy(msgspec.Struct):
    id: UUID
    code: str
    status: str
    rx_type: str
    issued_at: datetime
    valid_until: datetime
    holder_pharmacy_id: UUID | None
    hold_expires_at: datetime | None
    signed_content: bytes
    signature: bytes
    signing_key_id: UUID
    public_key: bytes
    patient_id: UUID
    patient_name: str
    date_of_birth: date | None
    sex: str | None
    citizen_id: str | None
    address: str
    weight_kg: float | None
    doctor_name: str
    licence_number: str
    facility_code: str
    facility_name: str
    lines: list[RxLine]


_LOAD = """
    SELECT p.id, p.code, p.status, p.rx_type, p.issued_at, p.valid_until, p.holder_pharmacy_id, p.hold_expires_at,
           p.signed_content, p.signature, p.signing_key_id, k.public_key, p.patient_id,
           pt.full_name AS patient_name, pt.date_of_birth,
           pt.sex, pt.citizen_id, pt.address, pt.weight_kg::float8 AS weight_kg, a.full_name AS doctor_name,
           d.licence_number, f.code AS facility_code, f.name AS facility_name,
           (SELECT json_agg(json_build_object(
               'position', l.position, 'drug_id', l.drug_id, 'drug_name', l.drug_name, 'strength', l.strength,
               'dosage_form', l.dosage_form, 'route', l.route, 'control_class', dr.control_class,
               'ingredients', dr.ingredients, 'dose_per_time', l.dose_per_time::float8, 'dose_unit', l.dose_unit,
               'times_per_day', l.times_per_day, 'days', l.days, 'quantity', l.quantity,
               'quantity_unit', l.quantity_unit, 'usage', l.usage, 'dispensed_quantity', l.dispensed_quantity)
               ORDER BY l.position)
            FROM prescription_lines l JOIN drugs dr ON dr.id = l.drug_id WHERE l.prescription_id = p.id) AS lines
    FROM prescriptions p JOIN patients pt ON pt.id = p.patient_id JOIN accounts a ON a.id = p.doctor_id
    JOIN doctors d ON d.account_id = p.doctor_id JOIN facilities f ON f.id = p.facility_id
    JOIN doctor_signing_keys k ON k.id = p.signing_key_id
    WHERE p.code = $1 AND p.status <> 'draft'"""


def _loaded(row: Any) -> RxAtPharmacy:
    values = dict(row)
    values["lines"] = msgspec.json.decode(values["lines"])
    return msgspec.convert(values, RxAtPharmacy)


async def load_for_update(conn: Conn, code: str) -> RxAtPharmacy | None:
    """The prescription, row-locked: every dispense, hold and void of one prescription takes turns here (PH-10).

    Two statements on purpose. A single SELECT ... FOR UPDATE that waited for the lock re-reads the locked row but
    reads its lines from the snapshot taken before waiting, so it would see dispensed quantities as they were before
    the sale it waited for (the race test caught exactly that). The second statement takes a fresh snapshot."""
    locked = await conn.fetchval("SELECT id FROM prescriptions WHERE code = $1 AND status <> 'draft' FOR UPDATE",
                                 code)
    if locked is None:
        return None
    row = await conn.fetchrow(_LOAD, code)
    return None if row is None else _loaded(row)


async def load_and_audit(conn: Conn, code: str, ctx: AuditContext, details: dict[str, Any]) -> RxAtPharmacy | None:
    """Verify's one round trip: the prescription, and the audit row of this look-up written by the same statement."""
    row = await conn.fetchrow(
        f"""WITH found AS ({_LOAD}),
                 logged AS (
                   INSERT INTO audit_log (actor_account_id, actor_role, action, target_type, target_id,
                                          subject_patient_id, client_ip, user_agent, request_id, details)
                   SELECT $2, $3, 'prescription.verified', 'prescription', found.id::text, found.patient_id,
                          $4::inet, $5, $6, $7 FROM found)
            SELECT * FROM found""",  # noqa: S608 - a constant query text
        code, ctx.actor_account_id, ctx.actor_role, ctx.client_ip, ctx.user_agent, ctx.request_id, details)
    return None if row is None else _loaded(row)


class ExistingDispense(msgspec.Struct):
    id: UUID
    prescription_id: UUID
    request_hash: bytes


async def by_idempotency_key(conn: Conn, pharmacy_id: UUID, key: str) -> ExistingDispense | None:
    row = await conn.fetchrow(
        """SELECT id, prescription_id, request_hash FROM dispenses WHERE pharmacy_id = $1 AND idempotency_key = $2""",
        pharmacy_id, key)
    return None if row is None else msgspec.convert(dict(row), ExistingDispense)


class SubstituteFacts(msgspec.Struct):
    id: UUID
    ingredients: list[str]
    route: str
    strength_fold: str
    active: bool
    is_medicine: bool
    control_class: str


async def drug_facts(conn: Conn, ids: Sequence[UUID]) -> dict[UUID, SubstituteFacts]:
    rows = await conn.fetch(
        """SELECT id, ingredients, route, regexp_replace(search_fold(strength), '\\s+', '', 'g') AS strength_fold,
                  active, is_medicine, control_class FROM drugs WHERE id = ANY($1::uuid[])""", list(set(ids)))
    return {r["id"]: msgspec.convert(dict(r), SubstituteFacts) for r in rows}


async def active_pharmacy_name(conn: Conn, pharmacy_id: UUID) -> str | None:
    """The pharmacy's name, or None when it is deactivated (or unknown)."""
    name: str | None = await conn.fetchval("SELECT name FROM pharmacies WHERE id = $1 AND active", pharmacy_id)
    return name


async def has_pharmacist_degree(conn: Conn, account_id: UUID) -> bool:
    found: bool | None = await conn.fetchval(
        "SELECT has_pharmacist_degree FROM pharmacists WHERE account_id = $1", account_id)
    return bool(found)


async def insert_dispense(conn: Conn, *, prescription_id: UUID, pharmacy_id: UUID, pharmacist_id: UUID,
                          idempotency_key: str, request_hash: bytes, invoice_number: str, recipient_name: str,
                          recipient_id_number: str | None, total_vnd: int, snapshot: dict[str, Any],
                          lines: Sequence[tuple[Any, ...]]) -> UUID:
    dispense_id: UUID = await conn.fetchval(
        """INSERT INTO dispenses (prescription_id, pharmacy_id, pharmacist_id, idempotency_key, request_hash,
                                  invoice_number, recipient_name, recipient_id_number, total_vnd, snapshot)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING id""",
        prescription_id, pharmacy_id, pharmacist_id, idempotency_key, request_hash, invoice_number, recipient_name,
        recipient_id_number, total_vnd, snapshot)
    await conn.executemany(
        """INSERT INTO dispense_lines (dispense_id, position, prescribed_drug_id, drug_id, substituted, buyer_consent,
                                       quantity, lot_number, expiry_date, origin, unit_price_vnd)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)""",
        [(dispense_id, *line) for line in lines])
    return dispense_id


async def add_dispensed(conn: Conn, prescription_id: UUID, quantities: dict[int, int]) -> None:
    """Adds (or, negative, returns) quantities per line; the CHECK keeps 0 ≤ dispensed ≤ prescribed."""
    await conn.execute(
        """UPDATE prescription_lines l SET dispensed_quantity = l.dispensed_quantity + q.quantity
           FROM unnest($2::smallint[], $3::int[]) AS q (position, quantity)
           WHERE l.prescription_id = $1 AND l.position = q.position""",
        prescription_id, list(quantities), list(quantities.values()))


async def set_state(conn: Conn, prescription_id: UUID, status: str, holder: UUID | None,
                    hold_expires_at: datetime | None, *, cancelled: bool = False) -> None:
    await conn.execute(
        """UPDATE prescriptions SET status = $2, holder_pharmacy_id = $3, hold_expires_at = $4, updated_at = now(),
                  cancelled_at = CASE WHEN $5 THEN now() ELSE cancelled_at END
           WHERE id = $1""", prescription_id, status, holder, hold_expires_at, cancelled)


async def event(conn: Conn, prescription_id: UUID, kind: str, pharmacy_id: UUID | None,
                dispense_id: UUID | None = None) -> None:
    await conn.execute(
        "INSERT INTO prescription_events (prescription_id, kind, pharmacy_id, dispense_id) VALUES ($1, $2, $3, $4)",
        prescription_id, kind, pharmacy_id, dispense_id)


class DispenseRow(msgspec.Struct):
    id: UUID
    prescription_id: UUID
    code: str
    pharmacy_id: UUID
    invoice_number: str
    total_vnd: int
    created_at: datetime
    voided_at: datetime | None
    status: str
    lines: list[dict[str, Any]]
    remaining: list[dict[str, int]]


async def dispense(conn: Conn, dispense_id: UUID) -> DispenseRow | None:
    row = await conn.fetchrow(
        """SELECT d.id, d.prescription_id, p.code, d.pharmacy_id, d.invoice_number, d.total_vnd, d.created_at,
                  d.voided_at, p.status,
                  (SELECT json_agg(json_build_object(
                      'position', l.position, 'prescribed_drug_id', l.prescribed_drug_id, 'drug_id', l.drug_id,
                      'substituted', l.substituted, 'quantity', l.quantity, 'lot_number', l.lot_number,
                      'expiry_date', l.expiry_date, 'origin', l.origin, 'unit_price_vnd', l.unit_price_vnd)
                      ORDER BY l.position) FROM dispense_lines l WHERE l.dispense_id = d.id) AS lines,
                  (SELECT json_agg(json_build_object('position', pl.position,
                                                     'remaining', pl.quantity - pl.dispensed_quantity)
                      ORDER BY pl.position) FROM prescription_lines pl WHERE pl.prescription_id = d.prescription_id)
                    AS remaining
           FROM dispenses d JOIN prescriptions p ON p.id = d.prescription_id WHERE d.id = $1""", dispense_id)
    if row is None:
        return None
    values = dict(row)
    values["lines"] = msgspec.json.decode(values["lines"])
    values["remaining"] = msgspec.json.decode(values["remaining"])
    return msgspec.convert(values, DispenseRow)


class VoidFacts(msgspec.Struct):
    id: UUID
    prescription_id: UUID
    code: str
    pharmacy_id: UUID
    created_at: datetime
    voided_at: datetime | None
    quantities: dict[int, int]


async def void_facts(conn: Conn, dispense_id: UUID) -> VoidFacts | None:
    row = await conn.fetchrow(
        """SELECT d.id, d.prescription_id, p.code, d.pharmacy_id, d.created_at, d.voided_at,
                  (SELECT json_object_agg(l.position, l.quantity) FROM dispense_lines l WHERE l.dispense_id = d.id)
                    AS quantities
           FROM dispenses d JOIN prescriptions p ON p.id = d.prescription_id WHERE d.id = $1""", dispense_id)
    if row is None:
        return None
    values = dict(row)
    values["quantities"] = {int(k): v for k, v in msgspec.json.decode(values["quantities"]).items()}
    return msgspec.convert(values, VoidFacts)


async def mark_voided(conn: Conn, dispense_id: UUID, account_id: UUID, reason: str) -> None:
    await conn.execute("UPDATE dispenses SET voided_at = now(), voided_by = $2, void_reason = $3 WHERE id = $1",
                       dispense_id, account_id, reason)
