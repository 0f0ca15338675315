"""SQL of the data subject's rights: one statement per section of the export (built as JSON by PostgreSQL, in the
transaction's Asia/Ho_Chi_Minh time zone), and the statements of an erasure."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import msgspec

from api.db import Conn
from api.patients.data_rights_schemas import (
    AccessEntry,
    Account,
    Consent,
    Consultation,
    Payment,
    Prescription,
    Profile,
)

_PERSON = """
SELECT p.account_id,
  jsonb_build_object(
    'id', p.id, 'full_name', p.full_name, 'date_of_birth', p.date_of_birth, 'sex', p.sex, 'citizen_id', p.citizen_id,
    'health_insurance_number', p.health_insurance_number, 'address', p.address, 'allergies', p.allergies,
    'weight_kg', p.weight_kg, 'created_at', p.created_at, 'updated_at', p.updated_at,
    'anonymised_at', p.anonymised_at,
    'guardians', coalesce((
      SELECT jsonb_agg(jsonb_build_object('patient_id', o.id, 'full_name', o.full_name,
                                          'relationship', g.relationship, 'since', g.created_at) ORDER BY g.created_at)
      FROM guardianships g JOIN patients o ON o.id = g.guardian_id WHERE g.dependent_id = p.id), '[]'),
    'dependents', coalesce((
      SELECT jsonb_agg(jsonb_build_object('patient_id', o.id, 'full_name', o.full_name,
                                          'relationship', g.relationship, 'since', g.created_at) ORDER BY g.created_at)
      FROM guardianships g JOIN patients o ON o.id = g.dependent_id WHERE g.guardian_id = p.id), '[]')
  ) AS profile,
  (SELECT jsonb_build_object(
     'account_id', a.id, 'phone', a.phone, 'status', a.status, 'created_at', a.created_at, 'erased_at', a.erased_at,
     'sign_in_codes', coalesce((
       SELECT jsonb_agg(jsonb_build_object('sent_at', o.created_at, 'client_ip', host(o.client_ip),
                                           'used', o.consumed_at IS NOT NULL) ORDER BY o.created_at)
       FROM otp_challenges o WHERE o.phone = a.phone), '[]'),
     'sign_ins', coalesce((
       SELECT jsonb_agg(jsonb_build_object('started_at', f.started_at, 'expires_at', f.expires_at,
                                           'ended_at', f.ended_at) ORDER BY f.started_at)
       FROM (SELECT min(created_at) AS started_at, max(expires_at) AS expires_at, max(revoked_at) AS ended_at
             FROM refresh_tokens WHERE account_id = a.id GROUP BY family_id) f), '[]'),
     'devices', coalesce((
       SELECT jsonb_agg(jsonb_build_object(
         'platform', d.platform, 'app_version', d.app_version,
         'target', left(d.target, 4) || '…' || right(d.target, 4), 'registered_at', d.created_at,
         'last_seen_at', d.last_seen_at, 'disabled_at', d.disabled_at) ORDER BY d.created_at)
       FROM push_devices d WHERE d.account_id = a.id), '[]'),
     'notification_preferences', coalesce((
       SELECT jsonb_agg(jsonb_build_object('category', n.category, 'channel', n.channel, 'enabled', n.enabled,
                                           'updated_at', n.updated_at) ORDER BY n.category, n.channel)
       FROM notification_preferences n WHERE n.account_id = a.id), '[]'),
     'notifications', coalesce((
       SELECT jsonb_agg(jsonb_build_object('kind', n.kind, 'category', n.category, 'channel', n.channel,
                                           'status', n.status, 'created_at', n.created_at, 'sent_at', n.sent_at)
                        ORDER BY n.created_at)
       FROM notification_outbox n WHERE n.account_id = a.id), '[]'))
   FROM accounts a WHERE a.id = p.account_id) AS account,
  coalesce((
    SELECT jsonb_agg(jsonb_build_object(
      'kind', c.kind, 'version', c.version, 'granted', c.granted, 'recorded_at', c.recorded_at,
      'recorded_by_self', c.recorded_by IS NOT DISTINCT FROM p.account_id,
      'client_ip', CASE WHEN c.recorded_by IS NOT DISTINCT FROM p.account_id THEN host(c.client_ip) END)
      ORDER BY c.recorded_at, c.id)
    FROM consents c WHERE c.patient_id = p.id), '[]') AS consents
FROM patients p WHERE p.id = $1"""

_CONSULTATIONS = """
SELECT coalesce(jsonb_agg(jsonb_build_object(
  'id', c.id, 'doctor', da.full_name, 'starts_at', lower(c.slot), 'ends_at', upper(c.slot), 'status', c.status,
  'reason', c.reason, 'telemedicine_icd10', c.telemedicine_icd10, 'fee_vnd', c.fee_vnd, 'booked_at', c.created_at,
  'booked_by_self', c.booked_by IS NOT DISTINCT FROM p.account_id, 'checked_in_at', c.checked_in_at,
  'call_started_at', c.call_started_at, 'call_ended_at', c.call_ended_at, 'cancelled_at', c.cancelled_at,
  'cancel_reason', c.cancel_reason, 'advice', r.advice, 'follow_up_days', r.follow_up_days,
  'diagnoses', coalesce((
    SELECT jsonb_agg(jsonb_build_object('code', d.code, 'name', d.name, 'is_principal', d.is_principal)
                     ORDER BY d.position)
    FROM consultation_diagnoses d WHERE d.consultation_id = c.id), '[]'),
  'chat', coalesce((
    SELECT jsonb_agg(jsonb_build_object('sender_role', m.sender_role, 'body', m.body, 'sent_at', m.sent_at)
                     ORDER BY m.id)
    FROM call_chat_messages m WHERE m.consultation_id = c.id), '[]'),
  'recordings', coalesce((
    SELECT jsonb_agg(jsonb_build_object('role', k.role, 'status', k.status, 'started_at', k.started_at,
                                        'ended_at', k.ended_at, 'duration_s', k.duration_s) ORDER BY k.started_at)
    FROM consultation_recordings k WHERE k.consultation_id = c.id), '[]')
) ORDER BY lower(c.slot)), '[]')
FROM patients p JOIN consultations c ON c.patient_id = p.id JOIN accounts da ON da.id = c.doctor_id
LEFT JOIN consultation_records r ON r.consultation_id = c.id
WHERE p.id = $1"""

# Drafts are the doctor's work in progress, never shown to patients.
_PRESCRIPTIONS = """
SELECT coalesce(jsonb_agg(jsonb_build_object(
  'id', rx.id, 'code', rx.code,
  'status', CASE WHEN rx.status IN ('issued', 'with_dispenser', 'partially_dispensed') AND rx.valid_until < now()
                 THEN 'expired' ELSE rx.status END,
  'rx_type', rx.rx_type, 'consultation_id', rx.consultation_id, 'doctor', da.full_name, 'issued_at', rx.issued_at,
  'valid_until', rx.valid_until, 'diagnoses', rx.diagnoses, 'advice', rx.advice, 'note', rx.note,
  'follow_up_days', rx.follow_up_days, 'weight_kg', rx.weight_kg, 'cancelled_at', rx.cancelled_at,
  'cancel_reason', rx.cancel_reason,
  'lines', coalesce((
    SELECT jsonb_agg(jsonb_build_object(
      'position', l.position, 'drug_name', l.drug_name, 'strength', l.strength, 'dosage_form', l.dosage_form,
      'dose_per_time', l.dose_per_time, 'dose_unit', l.dose_unit, 'times_per_day', l.times_per_day, 'days', l.days,
      'quantity', l.quantity, 'quantity_unit', l.quantity_unit, 'route', l.route, 'usage', l.usage,
      'dispensed_quantity', l.dispensed_quantity) ORDER BY l.position)
    FROM prescription_lines l WHERE l.prescription_id = rx.id), '[]'),
  'dispenses', coalesce((
    SELECT jsonb_agg(jsonb_build_object(
      'id', s.id, 'pharmacy', ph.name, 'dispensed_at', s.created_at, 'recipient_name', s.recipient_name,
      'total_vnd', s.total_vnd, 'voided_at', s.voided_at,
      'lines', coalesce((
        SELECT jsonb_agg(jsonb_build_object(
          'position', sl.position, 'drug', dr.inn || ' ' || dr.strength, 'substituted', sl.substituted,
          'quantity', sl.quantity, 'lot_number', sl.lot_number, 'expiry_date', sl.expiry_date,
          'unit_price_vnd', sl.unit_price_vnd) ORDER BY sl.position)
        FROM dispense_lines sl JOIN drugs dr ON dr.id = sl.drug_id WHERE sl.dispense_id = s.id), '[]'))
      ORDER BY s.created_at)
    FROM dispenses s JOIN pharmacies ph ON ph.id = s.pharmacy_id WHERE s.prescription_id = rx.id), '[]')
) ORDER BY rx.issued_at), '[]')
FROM prescriptions rx JOIN accounts da ON da.id = rx.doctor_id
WHERE rx.patient_id = $1 AND rx.status <> 'draft'"""

# Payments for the person's consultations and sales, and those their account made (a guardian paying for a child).
_PAYMENTS = """
SELECT coalesce(jsonb_agg(jsonb_build_object(
  'id', pay.id, 'txn_ref', pay.txn_ref, 'purpose', pay.purpose, 'consultation_id', pay.consultation_id,
  'dispense_id', pay.dispense_id, 'amount_vnd', pay.amount_vnd, 'status', pay.status, 'created_at', pay.created_at,
  'paid_at', pay.paid_at, 'bank_code', pay.bank_code, 'card_type', pay.card_type, 'refunded_vnd', pay.refunded_vnd,
  'refunds', coalesce((
    SELECT jsonb_agg(jsonb_build_object('amount_vnd', f.amount_vnd, 'status', f.status, 'reason', f.reason,
                                        'requested_at', f.created_at) ORDER BY f.created_at)
    FROM payment_refunds f WHERE f.payment_id = pay.id), '[]')
) ORDER BY pay.created_at), '[]')
FROM payments pay
WHERE pay.consultation_id IN (SELECT id FROM consultations WHERE patient_id = $1)
   OR pay.dispense_id IN (SELECT s.id FROM dispenses s JOIN prescriptions rx ON rx.id = s.prescription_id
                          WHERE rx.patient_id = $1)
   OR pay.payer_account_id = (SELECT account_id FROM patients WHERE id = $1)"""

_ACCESS_LOG = """
SELECT coalesce(jsonb_agg(jsonb_build_object(
  'at', l.at, 'action', l.action, 'actor_role', l.actor_role,
  'by_self', l.actor_account_id IS NOT DISTINCT FROM p.account_id AND p.account_id IS NOT NULL) ORDER BY l.id), '[]')
FROM patients p JOIN audit_log l ON l.subject_patient_id = p.id
WHERE p.id = $1"""


class PersonRows(msgspec.Struct):
    account_id: UUID | None
    profile: Profile
    account: Account | None
    consents: list[Consent]


async def use_vietnam_time(conn: Conn) -> None:
    """JSON built in this transaction shows times at +07:00 (the transaction's own setting, gone at its end)."""
    await conn.execute("SELECT set_config('TimeZone', 'Asia/Ho_Chi_Minh', true)")


async def person(conn: Conn, patient_id: UUID) -> PersonRows | None:
    row = await conn.fetchrow(_PERSON, patient_id)
    return msgspec.convert(dict(row), PersonRows) if row else None


async def consultations(conn: Conn, patient_id: UUID) -> list[Consultation]:
    return msgspec.convert(await conn.fetchval(_CONSULTATIONS, patient_id), list[Consultation])


async def prescriptions(conn: Conn, patient_id: UUID) -> list[Prescription]:
    return msgspec.convert(await conn.fetchval(_PRESCRIPTIONS, patient_id), list[Prescription])


async def payments(conn: Conn, patient_id: UUID) -> list[Payment]:
    return msgspec.convert(await conn.fetchval(_PAYMENTS, patient_id), list[Payment])


async def access_log(conn: Conn, patient_id: UUID) -> list[AccessEntry]:
    return msgspec.convert(await conn.fetchval(_ACCESS_LOG, patient_id), list[AccessEntry])


# ---------------------------------------------------------------- erasure

class ErasureSubject(msgspec.Struct):
    account_id: UUID
    patient_id: UUID
    phone: str | None
    erased: bool
    holds_medical_record: bool
    open_consultations: int
    pending_payments: int


async def erasure_subject_for_update(conn: Conn, account_id: UUID) -> ErasureSubject | None:
    """The account (locked: two erasure requests run one after the other) and what stands in the way."""
    row = await conn.fetchrow(
        """SELECT a.id AS account_id, p.id AS patient_id, a.phone, a.erased_at IS NOT NULL AS erased,
                  (EXISTS (SELECT 1 FROM consultations c WHERE c.patient_id = p.id
                             AND (c.status IN ('in_call', 'completed', 'no_show') OR c.call_started_at IS NOT NULL))
                   OR EXISTS (SELECT 1 FROM prescriptions rx WHERE rx.patient_id = p.id AND rx.status <> 'draft')
                   OR EXISTS (SELECT 1 FROM vaccination_doses v WHERE v.patient_id = p.id)
                   OR EXISTS (SELECT 1 FROM guardianships g WHERE g.guardian_id = p.id))
                    AS holds_medical_record,
                  (SELECT count(*) FROM consultations c
                    WHERE (c.patient_id = p.id OR c.booked_by = a.id)
                      AND c.status IN ('awaiting_payment', 'booked', 'waiting', 'in_call'))::int AS open_consultations,
                  (SELECT count(*) FROM payments pay
                    WHERE pay.status = 'pending' AND (pay.payer_account_id = a.id
                          OR pay.consultation_id IN (SELECT id FROM consultations WHERE patient_id = p.id)))::int
                    AS pending_payments
           FROM accounts a JOIN patients p ON p.account_id = a.id
           WHERE a.id = $1 AND a.role = 'patient'
           FOR UPDATE OF a""", account_id)
    return msgspec.convert(dict(row), ErasureSubject) if row else None


ANONYMOUS_NAME = "Người dùng đã xoá"


async def erase_account(conn: Conn, subject: ErasureSubject, anonymise_profile: bool) -> dict[str, Any]:
    """Every change of an erasure, in the caller's transaction; returns how many rows each step touched."""
    counts: dict[str, Any] = {}
    counts["sign_ins_ended"] = int((await conn.execute(
        "UPDATE refresh_tokens SET revoked_at = now() WHERE account_id = $1 AND revoked_at IS NULL",
        subject.account_id)).split()[-1])
    counts["devices_deleted"] = int((await conn.execute(
        "DELETE FROM push_devices WHERE account_id = $1", subject.account_id)).split()[-1])
    counts["preferences_deleted"] = int((await conn.execute(
        "DELETE FROM notification_preferences WHERE account_id = $1", subject.account_id)).split()[-1])
    # Messages not yet sent are dropped; the texts' parameters (names, times) of every message are cleared.
    counts["notifications_cancelled"] = int((await conn.execute(
        """UPDATE notification_outbox SET status = 'cancelled', locked_until = NULL, updated_at = now()
           WHERE account_id = $1 AND status IN ('pending', 'retry')""", subject.account_id)).split()[-1])
    await conn.execute("UPDATE notification_outbox SET params = '{}' WHERE account_id = $1 AND params <> '{}'",
                       subject.account_id)
    # Consent to processing ends with the account: a withdrawal row for each consent whose latest decision granted
    # it (consents are append-only; the earlier rows stay as the proof that processing was lawful).
    counts["consents_withdrawn"] = int((await conn.execute(
        """INSERT INTO consents (patient_id, kind, version, granted, recorded_by, client_ip, user_agent)
           SELECT patient_id, kind, version, false, $2, NULL, 'erasure request'
           FROM (SELECT DISTINCT ON (kind) patient_id, kind, version, granted FROM consents
                 WHERE patient_id = $1 ORDER BY kind, recorded_at DESC, id) latest
           WHERE granted""", subject.patient_id, subject.account_id)).split()[-1])
    if subject.phone is not None:
        counts["sign_in_codes_deleted"] = int((await conn.execute(
            "DELETE FROM otp_challenges WHERE phone = $1", subject.phone)).split()[-1])
    await conn.execute(
        """UPDATE accounts SET phone = NULL, full_name = $2, status = 'disabled', erased_at = now(),
                  failed_logins = 0, locked_until = NULL
           WHERE id = $1""", subject.account_id, ANONYMOUS_NAME)
    if anonymise_profile:
        await conn.execute(
            """UPDATE patients SET full_name = $2, date_of_birth = NULL, sex = NULL, citizen_id = NULL,
                      health_insurance_number = NULL, address = '', allergies = '[]', weight_kg = NULL,
                      anonymised_at = now(), updated_at = now()
               WHERE id = $1""", subject.patient_id, ANONYMOUS_NAME)
    return counts
