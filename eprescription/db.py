"""SQL of prescribing: drafts, the facts the rules and the signature need, signing, status changes, views."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime
from typing import Any
from uuid import UUID

import msgspec

from api.audit import AuditContext
from api.db import Conn
from eprescription.checks_db import CheckData
from eprescription.schemas import DraftIn, Finding, LineIn, SignedContent, SignedDiagnosis
from notifications.outbox import Notification


class ConsultationFacts(msgspec.Struct):
    id: UUID
    doctor_id: UUID
    patient_id: UUID
    status: str
    call_ended_at: datetime | None
    facility_id: UUID
    facility_code: str
    facility_name: str
    facility_address: str
    doctor_name: str
    doctor_title: str
    licence_number: str
    national_rx_code: str | None


class PatientFacts(msgspec.Struct):
    id: UUID
    full_name: str
    date_of_birth: date | None
    sex: str | None
    citizen_id: str | None
    health_insurance_number: str | None
    address: str
    phone: str | None
    weight_kg: float | None
    allergies: list[str]
    guardian_name: str | None
    guardian_phone: str | None
    guardian_address: str | None


class DrugFacts(msgspec.Struct):
    id: UUID
    inn: str
    trade_names: list[str]
    strength: str
    dosage_form: str
    route: str
    atc_code: str | None
    registration_number: str | None
    control_class: str
    is_medicine: bool
    active: bool


class DiagnosisRow(msgspec.Struct):
    code: str
    name: str
    telemedicine_tt30: bool


class _CatalogueFacts(msgspec.Struct):
    drugs: list[DrugFacts]
    diagnoses: list[DiagnosisRow]


class KeyRow(msgspec.Struct):
    id: UUID
    private_key_enc: bytes


class SignerRow(msgspec.Struct):
    """The signing doctor's TOTP state and their current signing key if they have one."""

    totp_secret_enc: bytes | None
    totp_last_step: int
    locked: bool
    key: KeyRow | None


class Facts(msgspec.Struct):
    """Everything prescribing reads about a consultation, in one round trip (SQL function prescribing_facts,
    migration 0019)."""

    consultation: ConsultationFacts
    patient: PatientFacts
    open_c_code: str | None  # VN-1.10: another open normal prescription of the consultation
    record_diagnoses: list[SignedDiagnosis] | None  # when no diagnoses were given: the consultation record's
    catalogue: _CatalogueFacts
    checks: CheckData | None  # when asked for
    signer: SignerRow | None  # when asked for

    @property
    def drugs(self) -> dict[UUID, DrugFacts]:
        return {d.id: d for d in self.catalogue.drugs}

    @property
    def icd(self) -> dict[str, DiagnosisRow]:
        return {d.code: d for d in self.catalogue.diagnoses}


_decode_facts = msgspec.json.Decoder(Facts).decode


async def facts(conn: Conn, consultation_id: UUID, *, drug_ids: Sequence[UUID] = (),
                diagnosis_codes: Sequence[str] | None = (), with_checks: bool = False,
                replacing: UUID | None = None, signer: UUID | None = None) -> Facts | None:
    """None when the consultation does not exist. ``diagnosis_codes`` None: the record's diagnoses are read and
    looked up. ``replacing``: the prescription an amendment replaces, which is not another open one (VN-1.10) and
    not an active medication (CDS-1, CDS-3)."""
    text: str | None = await conn.fetchval(
        "SELECT prescribing_facts($1, $2, $3, $4, $5, $6, $7)", consultation_id, replacing,
        list(dict.fromkeys(drug_ids)), None if diagnosis_codes is None else list(diagnosis_codes), with_checks,
        [replacing] if replacing else [], signer)
    return None if text is None else _decode_facts(text)


class DraftRow(msgspec.Struct):
    id: UUID
    consultation_id: UUID
    patient_id: UUID
    doctor_id: UUID
    facility_id: UUID
    status: str
    rx_type: str | None
    code: str | None
    diagnoses: list[SignedDiagnosis]
    advice: str
    note: str
    follow_up_days: int | None
    weight_kg: float | None
    pregnancy_status: str
    long_term: bool
    replaces_id: UUID | None
    valid_until: datetime | None
    signing_key_id: UUID | None
    signed_content: bytes | None
    signature: bytes | None
    holder_pharmacy_id: UUID | None
    hold_expires_at: datetime | None


class LineRow(msgspec.Struct):
    position: int
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
    dispensed_quantity: int


_DRAFT_COLUMNS = """id, consultation_id, patient_id, doctor_id, facility_id, status, rx_type, code, diagnoses, advice,
    note, follow_up_days, weight_kg::float8 AS weight_kg, pregnancy_status, long_term, replaces_id, valid_until,
    signing_key_id, signed_content, signature, holder_pharmacy_id, hold_expires_at"""


_LINE_COLUMNS = """position, drug_id, drug_name, strength, dosage_form, route, dose_per_time::float8 AS dose_per_time,
    dose_unit, times_per_day, days, quantity, quantity_unit, usage, dispensed_quantity"""


def _draft(row: Any) -> DraftRow:
    return msgspec.convert(dict(row), DraftRow)


async def prescription(conn: Conn, rx_id: UUID, *, for_update: bool = False) -> DraftRow | None:
    sql = f"SELECT {_DRAFT_COLUMNS} FROM prescriptions WHERE id = $1"  # noqa: S608 - constant column list
    row = await conn.fetchrow(sql + (" FOR UPDATE" if for_update else ""), rx_id)
    return None if row is None else _draft(row)


async def lines(conn: Conn, rx_id: UUID) -> list[LineRow]:
    rows = await conn.fetch(
        f"SELECT {_LINE_COLUMNS} FROM prescription_lines WHERE prescription_id = $1 ORDER BY position",  # noqa: S608
        rx_id)
    return [msgspec.convert(dict(r), LineRow) for r in rows]


async def insert_draft(conn: Conn, c: ConsultationFacts, *, diagnoses: Sequence[SignedDiagnosis], advice: str,
                       note: str, follow_up_days: int | None, weight_kg: float | None, pregnancy_status: str,
                       long_term: bool, replaces_id: UUID | None = None) -> DraftRow:
    row = await conn.fetchrow(
        f"""INSERT INTO prescriptions (consultation_id, patient_id, doctor_id, facility_id, diagnoses, advice, note,
                                       follow_up_days, weight_kg, pregnancy_status, long_term, replaces_id)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) RETURNING {_DRAFT_COLUMNS}""",  # noqa: S608
        c.id, c.patient_id, c.doctor_id, c.facility_id, list(diagnoses), advice, note,
        follow_up_days, weight_kg, pregnancy_status, long_term, replaces_id)
    return _draft(row)


async def update_draft(conn: Conn, rx_id: UUID, changes: dict[str, Any]) -> None:
    allowed = ("diagnoses", "advice", "note", "follow_up_days", "weight_kg", "pregnancy_status", "long_term")
    columns = [c for c in allowed if c in changes]
    if not columns:
        return
    values = [changes[c] for c in columns]
    assignments = ", ".join(f"{c} = ${i}" for i, c in enumerate(columns, 2))
    await conn.execute(f"UPDATE prescriptions SET {assignments}, updated_at = now() WHERE id = $1",  # noqa: S608
                       rx_id, *values)


async def insert_lines(conn: Conn, rx_id: UUID, new_lines: Sequence[LineIn]) -> list[LineRow]:
    """The draft's lines, numbered from 1, in one statement. Name, strength, form and route are copied from the
    catalogue so the prescription reads the same if the catalogue row is later edited; callers have checked that
    every drug exists."""
    rows = await conn.fetch(
        f"""INSERT INTO prescription_lines (prescription_id, position, drug_id, drug_name, strength, dosage_form,
                                            dose_per_time, dose_unit, times_per_day, days, quantity, quantity_unit,
                                            route, usage)
            SELECT $1, l.position, l.drug_id, d.inn, d.strength, d.dosage_form, l.dose_per_time, l.dose_unit,
                   l.times_per_day, l.days, l.quantity, l.quantity_unit, d.route, l.usage
            FROM unnest($2::uuid[], $3::float8[], $4::text[], $5::int[], $6::int[], $7::int[], $8::text[], $9::text[])
                 WITH ORDINALITY AS l (drug_id, dose_per_time, dose_unit, times_per_day, days, quantity,
                                       quantity_unit, usage, position)
            JOIN drugs d ON d.id = l.drug_id
            RETURNING {_LINE_COLUMNS}""",  # noqa: S608 - constant column list
        rx_id, [li.drug_id for li in new_lines], [li.dose_per_time for li in new_lines],
        [li.dose_unit for li in new_lines], [li.times_per_day for li in new_lines], [li.days for li in new_lines],
        [li.quantity for li in new_lines], [li.quantity_unit for li in new_lines], [li.usage for li in new_lines])
    assert len(rows) == len(new_lines), "every drug of the lines is in the catalogue"
    return sorted((msgspec.convert(dict(r), LineRow) for r in rows), key=lambda r: r.position)


async def replace_lines(conn: Conn, rx_id: UUID, new_lines: Sequence[LineIn]) -> None:
    """The draft's lines become ``new_lines``."""
    await conn.execute("DELETE FROM prescription_lines WHERE prescription_id = $1", rx_id)
    await insert_lines(conn, rx_id, new_lines)


async def delete_draft(conn: Conn, rx_id: UUID) -> None:
    await conn.execute("DELETE FROM prescriptions WHERE id = $1 AND status = 'draft'", rx_id)


async def current_key(conn: Conn, doctor_id: UUID) -> KeyRow | None:
    row = await conn.fetchrow(
        "SELECT id, private_key_enc FROM doctor_signing_keys WHERE doctor_id = $1 AND retired_at IS NULL", doctor_id)
    return None if row is None else msgspec.convert(dict(row), KeyRow)


async def insert_key(conn: Conn, key_id: UUID, doctor_id: UUID, public_key: bytes, sealed: bytes) -> bool:
    """False when another transaction created the doctor's current key first (the partial unique index)."""
    inserted = await conn.fetchval(
        """INSERT INTO doctor_signing_keys (id, doctor_id, public_key, private_key_enc) VALUES ($1, $2, $3, $4)
           ON CONFLICT (doctor_id) WHERE retired_at IS NULL DO NOTHING RETURNING id""",
        key_id, doctor_id, public_key, sealed)
    return inserted is not None


async def public_key(conn: Conn, key_id: UUID) -> bytes | None:
    key: bytes | None = await conn.fetchval("SELECT public_key FROM doctor_signing_keys WHERE id = $1", key_id)
    return key


async def signer_for_update(conn: Conn, account_id: UUID) -> SignerRow:
    """One round trip; the account row lock serialises the doctor's signatures (each TOTP step is accepted once)."""
    row = await conn.fetchrow(
        """SELECT a.totp_secret_enc, a.totp_last_step, coalesce(a.locked_until > now(), false) AS locked,
                  k.id AS key_id, k.private_key_enc
           FROM accounts a LEFT JOIN doctor_signing_keys k ON k.doctor_id = a.id AND k.retired_at IS NULL
           WHERE a.id = $1 FOR UPDATE OF a""", account_id)
    assert row is not None, "the caller's own account exists"
    key = None if row["key_id"] is None else KeyRow(id=row["key_id"], private_key_enc=row["private_key_enc"])
    return SignerRow(totp_secret_enc=row["totp_secret_enc"], totp_last_step=row["totp_last_step"],
                     locked=row["locked"], key=key)


async def issue(conn: Conn, rx_id: UUID, *, code: str, rx_type: str, findings: Sequence[Finding],
                signed_content: bytes, signature: bytes, key_id: UUID, issued_at: datetime,
                valid_until: datetime) -> bool:
    """Issue the (locked) draft under ``code``; False when the code's random part is already taken in the facility
    (VN-3.5), so the caller draws another without a savepoint round trip per attempt."""
    issued = await conn.fetchval(
        """UPDATE prescriptions SET status = 'issued', code = $2, rx_type = $3, findings = $4,
                  signed_content = $5, signature = $6, signing_key_id = $7, issued_at = $8, valid_until = $9,
                  updated_at = now()
           WHERE id = $1 AND status = 'draft'
             AND NOT EXISTS (SELECT 1 FROM prescriptions WHERE code IS NOT NULL AND left(code, 12) = left($2, 12))
           RETURNING true""",
        rx_id, code, rx_type, list(findings), signed_content, signature, key_id,
        issued_at, valid_until)
    return bool(issued)


_INSERT_SIGNED = """
WITH step AS (
  -- the TOTP step is spent here, re-checked under the row lock the UPDATE takes: of two signatures with one code
  -- only the first finds totp_last_step below it; a lock or a retired key since the read also refuses
  UPDATE accounts SET failed_logins = 0, locked_until = NULL, totp_last_step = $2
  WHERE id = $3 AND totp_last_step < $2 AND coalesce(locked_until <= now(), true)
    AND EXISTS (SELECT FROM doctor_signing_keys k WHERE k.id = $4 AND k.retired_at IS NULL)
  RETURNING id),
rx AS (
  INSERT INTO prescriptions (id, consultation_id, patient_id, doctor_id, facility_id, status, rx_type, code,
                             diagnoses, advice, note, follow_up_days, weight_kg, pregnancy_status, long_term,
                             findings, signed_content, signature, signing_key_id, issued_at, valid_until)
  SELECT $1, $5, $6, step.id, $7, 'issued', $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $4, $20, $21
  FROM step
  RETURNING id, created_at),
lines AS (
  INSERT INTO prescription_lines (prescription_id, position, drug_id, drug_name, strength, dosage_form, route,
                                  dose_per_time, dose_unit, times_per_day, days, quantity, quantity_unit, usage)
  SELECT rx.id, l.position, l.drug_id, l.drug_name, l.strength, l.dosage_form, l.route, l.dose_per_time,
         l.dose_unit, l.times_per_day, l.days, l.quantity, l.quantity_unit, l.usage
  FROM rx, unnest($22::uuid[], $23::text[], $24::text[], $25::text[], $26::text[], $27::float8[], $28::text[],
                  $29::int[], $30::int[], $31::int[], $32::text[], $33::text[])
       WITH ORDINALITY AS l (drug_id, drug_name, strength, dosage_form, route, dose_per_time, dose_unit,
                             times_per_day, days, quantity, quantity_unit, usage, position)),
national AS (
  INSERT INTO national_rx_outbox (prescription_id, payload) SELECT rx.id, $34 FROM rx),
notice AS (
  INSERT INTO notification_outbox (idempotency_key, account_id, kind, category, channel, params, subject,
                                   available_at, expires_at, max_attempts)
  SELECT $35 || ':' || r.account_id || ':' || c.channel, r.account_id, $36, $37, c.channel, $38, $39, $40, $41, $42
  FROM rx, notification_recipients(NULL, $6) AS r (account_id), unnest($43::text[]) AS c (channel)
  ON CONFLICT (idempotency_key) DO NOTHING),
audit AS (
  INSERT INTO audit_log (actor_account_id, actor_role, action, target_type, target_id, subject_patient_id,
                         client_ip, user_agent, request_id, details)
  SELECT $3, $44, 'prescription.signed', 'prescription', rx.id::text, $6, $45::inet, $46, $47, $48 FROM rx)
-- the dispatcher's wake-up, delivered at commit (outbox.enqueue does the same)
SELECT rx.created_at, pg_notify('notification_outbox', '') FROM rx"""


async def insert_signed(conn: Conn, content: SignedContent, *, step: int, findings: Sequence[Finding],
                        canonical: bytes, signature: bytes, draft: DraftIn, weight_kg: float | None,
                        lines: Sequence[LineRow],
                        national_payload: dict[str, Any], notice: Notification, notice_at: datetime,
                        max_attempts: int, ctx: AuditContext, audit_details: dict[str, Any]) -> datetime | None:
    """Insert the prescription already signed, with its lines, national outbox row, the patient's notice and the
    audit row, spending the signer's TOTP ``step``: one statement, so one round trip and its own transaction.
    Returns when it was created, or None when the step was spent meanwhile (or the account locked, or the key
    retired) and nothing was written. A unique violation (the code's random part taken, VN-1.10) writes nothing."""
    created: datetime | None = await conn.fetchval(
        _INSERT_SIGNED, content.prescription_id, step, content.doctor.id, content.signing_key_id,
        content.consultation_id, content.patient.id, content.facility.id, content.rx_type, content.code,
        list(content.diagnoses), draft.advice, draft.note, draft.follow_up_days, weight_kg,
        draft.pregnancy_status, draft.long_term, list(findings), canonical, signature, content.issued_at,
        content.valid_until,
        [r.drug_id for r in lines], [r.drug_name for r in lines], [r.strength for r in lines],
        [r.dosage_form for r in lines], [r.route for r in lines], [r.dose_per_time for r in lines],
        [r.dose_unit for r in lines], [r.times_per_day for r in lines], [r.days for r in lines],
        [r.quantity for r in lines], [r.quantity_unit for r in lines], [r.usage for r in lines],
        national_payload, notice.idempotency_key, notice.kind, notice.category, notice.params, notice.subject,
        notice_at, notice.expires_at, max_attempts, list(dict.fromkeys(notice.channels)),
        ctx.actor_role, ctx.client_ip, ctx.user_agent, ctx.request_id, audit_details)
    return created


async def set_status(conn: Conn, rx_id: UUID, status: str, expected: Sequence[str], **fields: Any) -> bool:
    """Guarded transition: only from one of ``expected`` (spec PH-10's "WHERE status = <expected>")."""
    extra = "".join(f", {name} = ${i}" for i, name in enumerate(fields, 4))
    done = await conn.fetchval(
        f"""UPDATE prescriptions SET status = $2, updated_at = now(){extra}
            WHERE id = $1 AND status = ANY($3::text[]) RETURNING true""",  # noqa: S608 - names are ours
        rx_id, status, list(expected), *fields.values())
    return bool(done)


async def expire_due(conn: Conn) -> list[UUID]:
    rows = await conn.fetch(
        """UPDATE prescriptions SET status = 'expired', holder_pharmacy_id = NULL, hold_expires_at = NULL,
                  updated_at = now()
           WHERE status IN ('issued', 'with_dispenser', 'partially_dispensed') AND valid_until < now()
           RETURNING id""")
    return [r["id"] for r in rows]


async def settle_lapsed_holds(conn: Conn) -> list[UUID]:
    """Holds that timed out end (NHS-4); a cancellation that was waiting for the holder's return completes
    (NHS-6), since nobody holds the prescription any more. Returns the prescriptions cancelled that way."""
    rows = await conn.fetch(
        """UPDATE prescriptions
           SET status = CASE status WHEN 'with_dispenser' THEN 'issued'
                                    WHEN 'pending_cancellation' THEN 'cancelled' ELSE status END,
               cancelled_at = CASE WHEN status = 'pending_cancellation' THEN now() ELSE cancelled_at END,
               holder_pharmacy_id = NULL, hold_expires_at = NULL, updated_at = now()
           WHERE hold_expires_at <= now()
           RETURNING id, status = 'cancelled' AS cancelled""")
    return [r["id"] for r in rows if r["cancelled"]]


_VIEW = """
    SELECT p.id, p.code, CASE WHEN p.status IN ('issued', 'with_dispenser', 'partially_dispensed')
                               AND p.valid_until < now() THEN 'expired'
                          WHEN p.status = 'with_dispenser' AND p.hold_expires_at <= now() THEN 'issued'
                          ELSE p.status END AS status,
           p.rx_type, p.consultation_id, p.patient_id, pt.full_name AS patient_name, p.doctor_id,
           da.full_name AS doctor_name, f.code AS facility_code, p.diagnoses, p.advice, p.note, p.follow_up_days,
           p.weight_kg::float8 AS weight_kg, p.pregnancy_status, p.long_term, p.replaces_id,
           (SELECT n.id FROM prescriptions n WHERE n.replaces_id = p.id) AS replaced_by_id, p.findings,
           p.issued_at, p.valid_until, p.cancel_reason, p.cancelled_at, p.created_at, p.updated_at,
           coalesce((SELECT json_agg(json_build_object(
               'position', l.position, 'drug_id', l.drug_id, 'drug_name', l.drug_name, 'strength', l.strength,
               'dosage_form', l.dosage_form, 'route', l.route, 'control_class', d.control_class,
               'dose_per_time', l.dose_per_time::float8, 'dose_unit', l.dose_unit,
               'times_per_day', l.times_per_day, 'days', l.days, 'quantity', l.quantity,
               'quantity_unit', l.quantity_unit, 'usage', l.usage, 'dispensed_quantity', l.dispensed_quantity,
               'remaining_quantity', l.quantity - l.dispensed_quantity, 'instructions', '') ORDER BY l.position)
             FROM prescription_lines l JOIN drugs d ON d.id = l.drug_id WHERE l.prescription_id = p.id), '[]')
             AS lines,
           o.status AS national_status, o.attempts AS national_attempts, o.sent_at AS national_sent_at,
           o.rejection AS national_rejection, o.last_error AS national_last_error
    FROM prescriptions p JOIN patients pt ON pt.id = p.patient_id JOIN accounts da ON da.id = p.doctor_id
    JOIN facilities f ON f.id = p.facility_id LEFT JOIN national_rx_outbox o ON o.prescription_id = p.id
    WHERE p.id = $1"""


async def view(conn: Conn, rx_id: UUID) -> dict[str, Any] | None:
    """The prescription as the API shows it, in one round trip; the service finishes the shape."""
    row = await conn.fetchrow(_VIEW, rx_id)
    if row is None:
        return None
    values = dict(row)
    values["lines"] = msgspec.json.decode(values["lines"])  # json_agg gives json, which is text to asyncpg
    return values


_SUMMARY = """
    SELECT p.id, p.code, CASE WHEN p.status IN ('issued', 'with_dispenser', 'partially_dispensed')
                               AND p.valid_until < now() THEN 'expired'
                          WHEN p.status = 'with_dispenser' AND p.hold_expires_at <= now() THEN 'issued'
                          ELSE p.status END AS status,
           p.rx_type, p.patient_id, pt.full_name AS patient_name, da.full_name AS doctor_name, p.issued_at,
           p.valid_until,
           (SELECT count(*) FROM prescription_lines l WHERE l.prescription_id = p.id)::int AS lines,
           (SELECT count(*) FROM prescription_lines l WHERE l.prescription_id = p.id
              AND l.dispensed_quantity < l.quantity)::int AS remaining_lines
    FROM prescriptions p JOIN patients pt ON pt.id = p.patient_id JOIN accounts da ON da.id = p.doctor_id"""


async def for_patients(conn: Conn, patient_ids: Sequence[UUID], limit: int) -> list[dict[str, Any]]:
    """Signed prescriptions of these patients, newest first (a patient never sees the doctor's drafts)."""
    rows = await conn.fetch(
        _SUMMARY + """ WHERE p.patient_id = ANY($1::uuid[]) AND p.status <> 'draft'
                       ORDER BY p.issued_at DESC LIMIT $2""", list(patient_ids), limit)
    return [dict(r) for r in rows]


async def for_doctor(conn: Conn, doctor_id: UUID, consultation_id: UUID | None, limit: int) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        _SUMMARY + """ WHERE p.doctor_id = $1 AND ($2::uuid IS NULL OR p.consultation_id = $2)
                       ORDER BY p.created_at DESC LIMIT $3""", doctor_id, consultation_id, limit)
    return [dict(r) for r in rows]


async def dependents(conn: Conn, guardian_patient_id: UUID) -> list[UUID]:
    rows = await conn.fetch("SELECT dependent_id FROM guardianships WHERE guardian_id = $1", guardian_patient_id)
    return [r["dependent_id"] for r in rows]


async def is_guardian(conn: Conn, guardian_patient_id: UUID, dependent_id: UUID) -> bool:
    found: bool = await conn.fetchval(
        "SELECT EXISTS (SELECT FROM guardianships WHERE guardian_id = $1 AND dependent_id = $2)",
        guardian_patient_id, dependent_id)
    return found


class SignatureRow(msgspec.Struct):
    id: UUID
    code: str
    signing_key_id: UUID
    signed_content: bytes
    signature: bytes
    public_key: bytes


async def signature(conn: Conn, rx_id: UUID) -> SignatureRow | None:
    row = await conn.fetchrow(
        """SELECT p.id, p.code, p.signing_key_id, p.signed_content, p.signature, k.public_key
           FROM prescriptions p JOIN doctor_signing_keys k ON k.id = p.signing_key_id WHERE p.id = $1""", rx_id)
    return None if row is None else msgspec.convert(dict(row), SignatureRow)


async def by_code(conn: Conn, code: str) -> UUID | None:
    found: UUID | None = await conn.fetchval("SELECT id FROM prescriptions WHERE code = $1", code)
    return found


async def signing_keys(conn: Conn, doctor_id: UUID | None) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        """SELECT k.id, k.doctor_id, a.full_name AS doctor_name, d.licence_number, k.algorithm, k.public_key,
                  k.created_at, k.retired_at
           FROM doctor_signing_keys k JOIN doctors d ON d.account_id = k.doctor_id
           JOIN accounts a ON a.id = d.account_id
           WHERE ($1::uuid IS NULL OR k.doctor_id = $1)
           ORDER BY k.created_at""", doctor_id)
    return [dict(r) for r in rows]
