"""The data subject's rights under Decree 13/2023/NĐ-CP: a copy of every personal datum held about a person
(Art. 9, 14) and erasure of what a health system may erase (Art. 9, 16).

**What erasure does** (``POST /me/erasure``, the patient's own request; read per Decree 13/2023 Art. 16, Law on
Medical Examination and Treatment 15/2023/QH15 and Circular 32/2023/TT-BYT — points we could not confirm take the
safer behaviour, noted below):

* *Erased*: the sign-in identity — the phone number is removed from the account (so it can sign up anew as a new
  patient), the account name replaced, the account disabled for good; every sign-in ended (refresh tokens revoked;
  an access token already issued lapses within ``LIENTHONG_ACCESS_TOKEN_TTL``, as on logout); sign-in codes sent to
  the number; push devices; notification preferences; unsent notifications (cancelled) and the parameters of sent
  ones. Consents to processing are withdrawn (a withdrawal row each).
* *Retained*: the medical record — consultations with their notes, diagnoses, chat and recordings, prescriptions
  (signed content is immutable: a trigger refuses changes), dispenses, vaccination doses — because Law 15/2023/QH15
  and Circular 32/2023 require medical records to be kept (outpatient records at least 10 years; prescriptions are
  part of them). The patient profile (name, date of birth, sex, citizen ID, insurance number, address, allergies,
  weight) is the administrative part of that record, so it is kept too *when a medical record exists* (a consultation
  held, a signed prescription, a recorded dose) or the person is a child's guardian on record (the child's record
  names them, VN-1.4). Without either, the profile is anonymised. Payments are kept as accounting records. The audit
  log and consent history are append-only evidence (who accessed the record; that processing was lawful).
* *Unconfirmed → safer*: whether a patient may demand deletion of a medical record before the retention period ends
  (we keep it); whether the profile of someone who only booked and cancelled is a medical record (we anonymise it).

Erasure is refused (409 ``erasure-blocked``) while something is in flight — a consultation booked, waiting or in
call (for the person or booked by them for a child), or a payment pending — because those need the account to finish
or to be refunded. Every export and every erasure request, refused or not, is audited.
"""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

import asyncpg
import msgspec

from api import audit
from api.audit import AuditContext
from api.auth.principal import Principal
from api.db import Conn
from api.errors import Conflict, NotFound
from api.patients import data_rights_db as db
from api.patients import db as patients_db
from api.patients.data_rights_schemas import DataExport, ErasureOutcome, Vaccination
from notifications import vaccination as vx
from notifications import vaccination_db
from notifications.outbox import VIETNAM

EXPORT_NOTE = (
    "Every personal datum Lienthong holds about this person (Decree 13/2023/ND-CP Art. 9, 14). Times are Vietnam "
    "time (+07:00). The doctor's working notes belong to the facility's medical record: ask the facility for a copy. "
    "The access log names roles, not the people behind them.")

ERASED = [
    "phone number and account name (the number may sign up again as a new patient)",
    "every sign-in (refresh tokens revoked; an access token already issued lapses within minutes)",
    "sign-in codes sent to the number",
    "push devices and notification preferences",
    "unsent notifications, and the personal details in sent ones",
    "consents to processing (withdrawn; the history stays as proof)",
]
RETAINED = [
    "medical record: consultations, diagnoses, notes, chat, recordings, prescriptions, dispenses, vaccination doses "
    "(Law 15/2023/QH15, Circular 32/2023/TT-BYT: kept at least 10 years)",
    "payments (accounting records)",
    "audit log and consent history (append-only evidence)",
]
PROFILE_RETAINED = "patient profile (the administrative part of the medical record)"
PROFILE_ANONYMISED = "patient profile (no medical record held: anonymised)"


class ErasureBlocked(Conflict):
    slug, title = "erasure-blocked", "Erasure must wait"


class AccountErased(Conflict):
    slug, title = "account-erased", "Account already erased"


async def _require_access(conn: Conn, principal: Principal, patient_id: UUID) -> None:
    """The person themselves or their guardian; everyone else gets the same 404 as an unknown id."""
    if principal.role == "patient" and principal.patient_id is not None and (
            patient_id == principal.patient_id or await patients_db.is_guardian(conn, principal.patient_id,
                                                                                patient_id)):
        return
    raise NotFound("No such patient, or it is not yours to see.")


async def export(pool: asyncpg.Pool, principal: Principal, patient_id: UUID, ctx: AuditContext) -> DataExport:
    async with pool.acquire() as conn, conn.transaction():
        await _require_access(conn, principal, patient_id)
        await db.use_vietnam_time(conn)
        person = await db.person(conn, patient_id)
        if person is None:
            raise NotFound("No such patient, or it is not yours to see.")
        doses = [msgspec.structs.replace(
            d, recorded_at=d.recorded_at.astimezone(VIETNAM),
            entered_in_error_at=d.entered_in_error_at.astimezone(VIETNAM) if d.entered_in_error_at else None)
            for d in await vaccination_db.doses(conn, patient_id)]
        born = person.profile.date_of_birth
        now = datetime.now(VIETNAM)
        plan = vx.plan(born, await vaccination_db.catalogue(conn), vaccination_db.counted(doses),
                       now.date()) if born else []
        exported = DataExport(
            exported_at=now, patient_id=patient_id, account=person.account, profile=person.profile,
            consents=person.consents, consultations=await db.consultations(conn, patient_id),
            prescriptions=await db.prescriptions(conn, patient_id), payments=await db.payments(conn, patient_id),
            vaccination=Vaccination(doses=doses, plan=plan), access_log=await db.access_log(conn, patient_id),
            note=EXPORT_NOTE)
        await audit.record(conn, ctx, "patient.data_exported", target_type="patient", target_id=patient_id,
                           subject_patient_id=patient_id)
        return exported


async def erase(pool: asyncpg.Pool, principal: Principal, ctx: AuditContext) -> ErasureOutcome:
    async with pool.acquire() as conn:
        async with conn.transaction():
            subject = await db.erasure_subject_for_update(conn, principal.account_id)
            if subject is None or subject.erased:
                raise AccountErased("This account has already been erased.")
            blockers = []
            if subject.open_consultations:
                blockers.append(f"{subject.open_consultations} consultation(s) booked, waiting or in call: "
                                "cancel them or let them finish")
            if subject.pending_payments:
                blockers.append(f"{subject.pending_payments} payment(s) pending: wait for them to complete or expire")
            if blockers:
                # audited and committed before the refusal goes out
                await audit.record(conn, ctx, "patient.erasure_refused", target_type="account",
                                   target_id=subject.account_id, subject_patient_id=subject.patient_id,
                                   details={"open_consultations": subject.open_consultations,
                                            "pending_payments": subject.pending_payments})
            else:
                anonymise = not subject.holds_medical_record
                counts = await db.erase_account(conn, subject, anonymise)
                await audit.record(conn, ctx, "patient.erased", target_type="account", target_id=subject.account_id,
                                   subject_patient_id=subject.patient_id,
                                   details={"profile_anonymised": anonymise, **counts})
        if blockers:
            raise ErasureBlocked("Your account cannot be erased yet: " + "; ".join(blockers) + ".")
        return ErasureOutcome(
            account_id=subject.account_id, patient_id=subject.patient_id, erased_at=datetime.now(VIETNAM),
            profile_anonymised=anonymise, erased=ERASED + ([PROFILE_ANONYMISED] if anonymise else []),
            retained=RETAINED + ([] if anonymise else [PROFILE_RETAINED]))
