"""Prescribing: drafts, the hard rules and clinical checks, the signing ceremony, amend/cancel/expiry, and reads.

Who may do what (object level; the routes guard roles):
* only the treating doctor of a consultation that is ``in_call``, or ``completed`` within
  LIENTHONG_PRESCRIBE_WINDOW_HOURS, writes, signs, amends or cancels its prescriptions;
* a patient reads their own signed prescriptions and their children's; the author doctor and admins read any of the
  doctor's; nobody else learns that a prescription exists. Every read of a prescription is audited.

Every consultation on this platform is remote, so the telemedicine rules (TM-4, TM-5) always apply.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any
from uuid import UUID, uuid4

import asyncpg
import msgspec

from api import audit
from api.audit import AuditContext
from api.auth import db as auth_db
from api.auth import totp
from api.auth.principal import Principal
from api.auth.secrets_box import unseal
from api.db import Conn
from api.settings import Settings
from eprescription import checks, db, national_sync, notices, rules, signing
from eprescription.codes import new_code, prescription_type
from eprescription.errors import (
    OverrideRequired,
    PrescribingNotAllowed,
    PrescriptionExpired,
    PrescriptionNotFound,
    PrescriptionRuleViolated,
    PrescriptionStateConflict,
    QrInvalid,
    SigningCodeRejected,
)
from eprescription.schemas import (
    CancelIn,
    DiagnosisIn,
    DraftIn,
    DraftPatch,
    Finding,
    FindingsReport,
    Guardian,
    IssueIn,
    Line,
    LineIn,
    NationalSync,
    Override,
    Prescription,
    PrescriptionSummary,
    QrCheck,
    RuleProblem,
    SignatureDocument,
    SignedContent,
    SignedDiagnosis,
    SignedDoctor,
    SignedFacility,
    SignedLine,
    SignedPatient,
    SignIn,
    SigningKey,
)
from notifications import outbox

OPEN = ("issued", "with_dispenser", "partially_dispensed")
_CODE_ATTEMPTS = 5


def _now() -> datetime:
    return datetime.now(UTC)


# ------------------------------------------------------------------------------------------- access

async def _prescribable(conn: Conn, settings: Settings, principal: Principal, consultation_id: UUID, *,
                        replacing: UUID | None = None, drug_ids: Sequence[UUID] = (),
                        diagnosis_codes: Sequence[str] | None = (), with_checks: bool = False,
                        signer: UUID | None = None) -> db.Facts:
    """What prescribing for the consultation needs (db.facts, one round trip), once the caller may prescribe."""
    found = await db.facts(conn, consultation_id, drug_ids=drug_ids, diagnosis_codes=diagnosis_codes,
                           with_checks=with_checks, replacing=replacing, signer=signer)
    if found is None or found.consultation.doctor_id != principal.account_id:
        raise PrescribingNotAllowed("Only the treating doctor of this consultation may prescribe for it.")
    c = found.consultation
    if c.status == "in_call":
        return found
    window = timedelta(hours=settings.prescribe_window_hours)
    if c.status == "completed" and c.call_ended_at is not None and _now() <= c.call_ended_at + window:
        return found
    raise PrescribingNotAllowed(
        f"Prescriptions are written during the call or within {settings.prescribe_window_hours} h after it ends; "
        f"this consultation is {c.status}.")


async def _own_draft(conn: Conn, principal: Principal, rx_id: UUID) -> db.DraftRow:
    rx = await db.prescription(conn, rx_id, for_update=True)
    if rx is None or rx.doctor_id != principal.account_id:
        raise PrescriptionNotFound("No such prescription, or it is not yours.")
    return rx


async def _readable(conn: Conn, principal: Principal, rx_id: UUID) -> db.DraftRow:
    rx = await db.prescription(conn, rx_id)
    if rx is not None and await _may_read(conn, principal, rx):
        return rx
    # one answer for "does not exist" and "not yours", so ids cannot be probed
    raise PrescriptionNotFound("No such prescription, or you may not see it.")


async def _may_read(conn: Conn, principal: Principal, rx: db.DraftRow) -> bool:
    if principal.role == "admin":
        return True
    if principal.role == "doctor":
        return rx.doctor_id == principal.account_id
    if principal.role == "patient" and principal.patient_id is not None and rx.status != "draft":
        return rx.patient_id == principal.patient_id or await db.is_guardian(conn, principal.patient_id,
                                                                                 rx.patient_id)
    return False


# ------------------------------------------------------------------------------------------- evaluation

class _Evaluation(msgspec.Struct):
    problems: list[RuleProblem]
    findings: list[Finding]
    patient: db.PatientFacts
    drugs: dict[UUID, db.DrugFacts]
    diagnoses: list[SignedDiagnosis]
    weight_kg: float | None
    age_months: int | None


def _evaluate(settings: Settings, facts: db.Facts, lines: Sequence[LineIn], diagnoses: Sequence[SignedDiagnosis], *,
              weight_kg: float | None, pregnancy_status: str, long_term: bool) -> _Evaluation:
    """Hard rules (VN-x, TM-x) and clinical checks (CDS-1..5) of draft content, from facts read with its drugs,
    diagnosis codes and checks; no database work."""
    patient = facts.patient
    found, icd = facts.drugs, facts.icd
    problems = [RuleProblem("catalogue", f"lines[{i}].drug_id", "Không có thuốc này trong danh mục. Unknown drug.")
                for i, line in enumerate(lines) if line.drug_id not in found]
    known = [(i, line) for i, line in enumerate(lines) if line.drug_id in found]
    named = _with_names(diagnoses, icd)
    today = _now().astimezone(rules.VN).date()
    age = rules.age_in_months(patient.date_of_birth, today) if patient.date_of_birth else None
    weight = weight_kg if weight_kg is not None else patient.weight_kg
    facts_of_draft = rules.DraftFacts(
        telemedicine=True, controlled_drugs_allowed=settings.telemedicine_controlled_drugs, age_months=age,
        date_of_birth=patient.date_of_birth, weight_kg=weight,
        address=patient.address or patient.guardian_address or "", has_guardian=patient.guardian_name is not None,
        long_term=long_term,
        diagnoses=[rules.DiagnosisFacts(code=d.code, known=d.code in icd,
                                        telemedicine_tt30=d.code in icd and icd[d.code].telemedicine_tt30)
                   for d in diagnoses],
        lines=[rules.LineFacts(
            position=i + 1, drug_id=str(line.drug_id), drug_name=found[line.drug_id].inn,
            control_class=found[line.drug_id].control_class, is_medicine=found[line.drug_id].is_medicine,
            active=found[line.drug_id].active, dose_per_time=line.dose_per_time, dose_unit=line.dose_unit,
            times_per_day=line.times_per_day, days=line.days, quantity=line.quantity,
            quantity_unit=line.quantity_unit) for i, line in known],
        open_c_prescription_code=facts.open_c_code,
    )
    problems += rules.problems(facts_of_draft)
    assert facts.checks is not None, "read with_checks"
    findings = checks.clinical_findings(
        facts.checks,
        checks.PatientFacts(patient_id=patient.id, age_months=age, sex=patient.sex, weight_kg=weight,
                            allergies=patient.allergies, pregnancy_status=pregnancy_status),
        [checks.CheckLine(position=i + 1, drug_id=line.drug_id, dose_per_time=line.dose_per_time,
                          dose_unit=line.dose_unit, times_per_day=line.times_per_day, days=line.days)
         for i, line in known])
    return _Evaluation(problems=problems, findings=findings, patient=patient, drugs=found, diagnoses=named,
                       weight_kg=weight, age_months=age)


def _report(evaluation: _Evaluation) -> FindingsReport:
    return FindingsReport(findings=evaluation.findings, blocking=sum(f.blocks_signing for f in evaluation.findings),
                          problems=evaluation.problems)


def _line_in(row: db.LineRow) -> LineIn:
    return LineIn(drug_id=row.drug_id, dose_per_time=row.dose_per_time, dose_unit=row.dose_unit,  # type: ignore[arg-type]
                  times_per_day=row.times_per_day, days=row.days, quantity=row.quantity,
                  quantity_unit=row.quantity_unit, usage=row.usage)  # type: ignore[arg-type]


async def dry_run(pool: asyncpg.Pool, settings: Settings, principal: Principal, data: DraftIn) -> FindingsReport:
    """What signing this content would say, computed as the doctor types; nothing is stored or audited. One round
    trip."""
    async with pool.acquire() as conn:
        facts = await _prescribable(conn, settings, principal, data.consultation_id,
                                    drug_ids=[line.drug_id for line in data.lines],
                                    diagnosis_codes=_codes(data.diagnoses), with_checks=True)
    return _report(_evaluate(settings, facts, data.lines, _diagnoses(data.diagnoses, facts), weight_kg=data.weight_kg,
                             pregnancy_status=data.pregnancy_status, long_term=data.long_term))


async def draft_checks(pool: asyncpg.Pool, settings: Settings, principal: Principal, rx_id: UUID) -> FindingsReport:
    async with pool.acquire() as conn:
        rx = await db.prescription(conn, rx_id)
        if rx is None or rx.doctor_id != principal.account_id:
            raise PrescriptionNotFound("No such prescription, or it is not yours.")
        if rx.status != "draft":
            raise PrescriptionStateConflict("Only a draft is checked; a signed prescription keeps its findings.")
        lines = [_line_in(row) for row in await db.lines(conn, rx_id)]
        facts = await _prescribable(conn, settings, principal, rx.consultation_id, replacing=rx.replaces_id,
                                    drug_ids=[line.drug_id for line in lines],
                                    diagnosis_codes=[d.code for d in rx.diagnoses], with_checks=True)
    return _report(_evaluate(settings, facts, lines, rx.diagnoses, weight_kg=rx.weight_kg,
                             pregnancy_status=rx.pregnancy_status, long_term=rx.long_term))


def _codes(given: Sequence[DiagnosisIn] | None) -> list[str] | None:
    """The diagnosis codes to look up; None: the consultation record's (VN-1.6, a new draft's default)."""
    return None if given is None else [d.code for d in given]


def _diagnoses(given: Sequence[DiagnosisIn] | None, facts: db.Facts) -> list[SignedDiagnosis]:
    """The given diagnoses (named by _evaluate from the catalogue), or the consultation record's."""
    if given is None:
        assert facts.record_diagnoses is not None, "read with diagnosis_codes None"
        return facts.record_diagnoses
    return [SignedDiagnosis(code=d.code, name="", conclusion=d.conclusion) for d in given]


def _with_names(diagnoses: Sequence[SignedDiagnosis], icd: dict[str, db.DiagnosisRow]) -> list[SignedDiagnosis]:
    return [msgspec.structs.replace(d, name=icd[d.code].name if d.code in icd else d.name) for d in diagnoses]


# ------------------------------------------------------------------------------------------- drafts

async def create_draft(pool: asyncpg.Pool, settings: Settings, principal: Principal, data: DraftIn,
                       ctx: AuditContext) -> Prescription:
    async with pool.acquire() as conn, conn.transaction():
        facts = await _prescribable(conn, settings, principal, data.consultation_id,
                                    drug_ids=[line.drug_id for line in data.lines],
                                    diagnosis_codes=_codes(data.diagnoses))
        c = facts.consultation
        _require_known(data.lines, facts.drugs)
        rx_id = (await db.insert_draft(conn, c, diagnoses=_with_names(_diagnoses(data.diagnoses, facts), facts.icd),
                                       advice=data.advice, note=data.note, follow_up_days=data.follow_up_days,
                                       weight_kg=data.weight_kg, pregnancy_status=data.pregnancy_status,
                                       long_term=data.long_term)).id
        await db.insert_lines(conn, rx_id, data.lines)
        await audit.record(conn, ctx, "prescription.draft_created", target_type="prescription", target_id=rx_id,
                           subject_patient_id=c.patient_id)
        return await _present(conn, rx_id)


def _require_known(lines: Sequence[LineIn], found: dict[UUID, db.DrugFacts]) -> None:
    from api.errors import FieldError, InvalidInput  # noqa: PLC0415 - error types of the API edge

    missing = [FieldError(f"body.lines[{i}].drug_id", "No such drug in the catalogue.")
               for i, line in enumerate(lines) if line.drug_id not in found]
    if missing:
        error = InvalidInput(missing[0].path, missing[0].message)
        error.errors = missing
        raise error


async def update_draft(pool: asyncpg.Pool, settings: Settings, principal: Principal, rx_id: UUID, patch: DraftPatch,
                       ctx: AuditContext) -> Prescription:
    async with pool.acquire() as conn, conn.transaction():
        rx = await _own_draft(conn, principal, rx_id)
        if rx.status != "draft":
            raise PrescriptionStateConflict("A signed prescription cannot change; amend it instead (VN-1.15).")
        new_lines = None if isinstance(patch.lines, msgspec.UnsetType) else patch.lines
        new_diagnoses = None if isinstance(patch.diagnoses, msgspec.UnsetType) else patch.diagnoses
        facts = await _prescribable(conn, settings, principal, rx.consultation_id,
                                    drug_ids=[line.drug_id for line in new_lines or []],
                                    diagnosis_codes=[d.code for d in new_diagnoses or []])
        changes = {name: value for name, value in msgspec.structs.asdict(patch).items()
                   if value is not msgspec.UNSET and name != "lines"}
        if new_diagnoses is not None:
            changes["diagnoses"] = _with_names(_diagnoses(new_diagnoses, facts), facts.icd)
        await db.update_draft(conn, rx_id, changes)
        if new_lines is not None:
            _require_known(new_lines, facts.drugs)
            await db.replace_lines(conn, rx_id, new_lines)
        await audit.record(conn, ctx, "prescription.draft_updated", target_type="prescription", target_id=rx_id,
                           subject_patient_id=rx.patient_id, details={"fields": sorted(changes) + (
                               [] if new_lines is None else ["lines"])})
        return await _present(conn, rx_id)


async def discard_draft(pool: asyncpg.Pool, principal: Principal, rx_id: UUID, ctx: AuditContext) -> None:
    async with pool.acquire() as conn, conn.transaction():
        rx = await _own_draft(conn, principal, rx_id)
        if rx.status != "draft":
            raise PrescriptionStateConflict("A signed prescription is kept; cancel it instead.")
        await db.delete_draft(conn, rx_id)
        await audit.record(conn, ctx, "prescription.draft_discarded", target_type="prescription", target_id=rx_id,
                           subject_patient_id=rx.patient_id)


# ------------------------------------------------------------------------------------------- signing

async def sign(pool: asyncpg.Pool, settings: Settings, principal: Principal, rx_id: UUID, data: SignIn,
               ctx: AuditContext) -> Prescription:
    """The signing ceremony (spec US-3 pattern) of a saved draft: re-check everything, prove presence with a fresh
    TOTP code, sign the canonical content with the doctor's key, queue it for the national system, all in one
    transaction."""
    async with pool.acquire() as conn:
        async with conn.transaction():
            rx = await _own_draft(conn, principal, rx_id)  # the row lock: a second sign of the draft waits here
            if rx.status != "draft":
                raise PrescriptionStateConflict(f"This prescription is already {rx.status} ({rx.code}).")
            line_rows = await db.lines(conn, rx_id)
            facts = await _prescribable(conn, settings, principal, rx.consultation_id, replacing=rx.replaces_id,
                                        drug_ids=[r.drug_id for r in line_rows],
                                        diagnosis_codes=[d.code for d in rx.diagnoses], with_checks=True)
            evaluation = _evaluate(settings, facts, [_line_in(r) for r in line_rows], rx.diagnoses,
                                   weight_kg=rx.weight_kg, pregnancy_status=rx.pregnancy_status,
                                   long_term=rx.long_term)
            findings = _authorised(evaluation, data.overrides)
            signer = await db.signer_for_update(conn, principal.account_id)
            step = _totp_step(settings, principal, signer, data.totp_code)
            if step is not None:
                content = await _issue(conn, settings, facts.consultation, rx, line_rows, evaluation, findings,
                                       signer.key)
                await auth_db.record_successful_login(conn, principal.account_id, step)
                await audit.record(conn, ctx, "prescription.signed", target_type="prescription",
                                   target_id=content.prescription_id, subject_patient_id=content.patient.id,
                                   details=_signature_details(content, findings, drafted=True))
            else:
                await _refuse_code(conn, settings, principal, signer, ctx, "prescription", rx_id, rx.patient_id)
        if step is None:  # raised after commit so the failed attempt (and a lockout) is kept
            raise _code_rejected()
        return await _present(conn, rx_id)


async def write_and_sign(pool: asyncpg.Pool, settings: Settings, principal: Principal, data: IssueIn,
                         ctx: AuditContext) -> Prescription:
    """Write and sign in one step, for content the doctor has just checked (the console's dry-run) and never saved:
    the same rules, checks and ceremony as signing a draft, and nothing is stored unless the signature is made.

    Two round trips: everything read at once (prescribing_facts), then one statement that inserts the prescription
    already signed, with its lines, outbox rows and audit row, and spends the TOTP step (db.insert_signed). The step
    is re-checked by that statement, so of two requests with one code only one signs. A wrong or already spent
    code leaves nothing behind but the failed attempt, which counts towards the lockout and is audited."""
    async with pool.acquire() as conn:
        facts = await _prescribable(conn, settings, principal, data.consultation_id,
                                    drug_ids=[line.drug_id for line in data.lines],
                                    diagnosis_codes=_codes(data.diagnoses), with_checks=True,
                                    signer=principal.account_id)
        # the weight as its column keeps it, so the signed content says what the prescription row says
        weight_kg = None if data.weight_kg is None else _as_stored(data.weight_kg, 2)
        evaluation = _evaluate(settings, facts, data.lines, _diagnoses(data.diagnoses, facts), weight_kg=weight_kg,
                               pregnancy_status=data.pregnancy_status, long_term=data.long_term)
        findings = _authorised(evaluation, data.overrides)
        signer = facts.signer
        assert signer is not None, "read with the signer"
        step = _totp_step(settings, principal, signer, data.totp_code)
        if step is not None:
            key = await _signing_key(conn, settings, principal.account_id, signer.key)
            issued = await _insert_signed(conn, settings, facts.consultation, evaluation, findings, data,
                                          weight_kg, key, step, ctx)
            if issued is not None:
                return issued
        async with conn.transaction():
            c = facts.consultation
            await _refuse_code(conn, settings, principal, signer, ctx, "consultation", c.id, c.patient_id)
    raise _code_rejected()


def _signature_details(content: SignedContent, findings: Sequence[Finding], *, drafted: bool) -> dict[str, Any]:
    """The ``prescription.signed`` audit row's details."""
    return {"code": content.code, "findings": len(findings), "drafted": drafted,
            "overridden": [f.key for f in findings if f.override_reason]}


async def _refuse_code(conn: Conn, settings: Settings, principal: Principal, signer: db.SignerRow, ctx: AuditContext,
                       target_type: str, target_id: UUID, patient_id: UUID) -> None:
    """A refused code counts towards the account lockout like a failed sign-in (not while already locked), and is
    audited against what was being signed."""
    if not signer.locked and signer.totp_secret_enc is not None:
        await auth_db.record_failed_login(conn, principal.account_id, settings.staff_max_failed_logins,
                                          settings.staff_lockout_s)
    await audit.record(conn, ctx, "prescription.sign_code_rejected", target_type=target_type, target_id=target_id,
                       subject_patient_id=patient_id)


def _code_rejected() -> SigningCodeRejected:
    return SigningCodeRejected("The authenticator code is wrong or was already used; nothing was signed. "
                               "Wait for the next code and try again.")


def _authorised(evaluation: _Evaluation, overrides: Sequence[Override]) -> list[Finding]:
    """What signing needs before the code is looked at: no rule problem, and a reason for each blocking finding
    (both refused before the code is spent). Returns the findings with their override reasons."""
    if evaluation.problems:
        raise PrescriptionRuleViolated(evaluation.problems)
    reasons = {o.key: o.reason for o in overrides}
    applied = [msgspec.structs.replace(f, override_reason=reasons.get(f.key)) for f in evaluation.findings]
    missing = [f for f in applied if f.blocks_signing and not f.override_reason]
    if missing:
        raise OverrideRequired(missing)
    return applied


def _totp_step(settings: Settings, principal: Principal, signer: db.SignerRow, code: str) -> int | None:
    """The TOTP step of ``code``, or None when it is wrong, already used, or the account is locked."""
    if signer.locked or signer.totp_secret_enc is None:
        return None
    secret = unseal(settings.data_key, signer.totp_secret_enc, principal.account_id.bytes).decode()
    return totp.matching_step(secret, code, signer.totp_last_step)


async def _signing_key(conn: Conn, settings: Settings, doctor_id: UUID, key: db.KeyRow | None) -> db.KeyRow:
    """The doctor's current key, or a new one at their first signature."""
    if key is None:
        key_id = uuid4()
        public, sealed = signing.new_key_pair(settings.data_key, key_id)
        if not await db.insert_key(conn, key_id, doctor_id, public, sealed):
            key = await db.current_key(conn, doctor_id)  # another signature of this doctor created it first
        else:
            key = db.KeyRow(id=key_id, private_key_enc=sealed)
    assert key is not None
    return key


def _signed_content(c: db.ConsultationFacts, evaluation: _Evaluation, *, rx_id: UUID, rx_type: str, code: str,
                    issued_at: datetime, lines: Sequence[db.LineRow], advice: str, note: str,
                    follow_up_days: int | None, long_term: bool, replaces_code: str | None,
                    key_id: UUID) -> SignedContent:
    """Exactly what the doctor signs: the parties, the diagnoses and the lines."""
    patient = evaluation.patient
    guardian = None
    if evaluation.age_months is not None and evaluation.age_months < rules.CHILD_MONTHS and patient.guardian_name:
        guardian = Guardian(full_name=patient.guardian_name, phone=patient.guardian_phone,
                            address=patient.guardian_address or "")
    return SignedContent(
        prescription_id=rx_id, code=code, rx_type=rx_type, issued_at=issued_at,  # type: ignore[arg-type]
        valid_until=rules.valid_until(issued_at), consultation_id=c.id, telemedicine=True,
        facility=SignedFacility(id=c.facility_id, code=c.facility_code, name=c.facility_name,
                                address=c.facility_address),
        doctor=SignedDoctor(id=c.doctor_id, full_name=c.doctor_name, title=c.doctor_title,
                            licence_number=c.licence_number, national_rx_code=c.national_rx_code),
        patient=SignedPatient(
            id=patient.id, full_name=patient.full_name, date_of_birth=patient.date_of_birth,
            sex=patient.sex,  # type: ignore[arg-type]
            citizen_id=patient.citizen_id, health_insurance_number=patient.health_insurance_number,
            address=patient.address or patient.guardian_address or "",
            phone=patient.phone or patient.guardian_phone,
            age_months=evaluation.age_months if guardian or (
                evaluation.age_months is not None and evaluation.age_months < rules.CHILD_MONTHS) else None,
            weight_kg=evaluation.weight_kg, guardian=guardian),
        diagnoses=evaluation.diagnoses,
        lines=[SignedLine(
            position=r.position, drug_id=r.drug_id, drug_name=_drug_name(evaluation.drugs[r.drug_id]),
            strength=r.strength, dosage_form=r.dosage_form, route=r.route,
            atc_code=evaluation.drugs[r.drug_id].atc_code,
            registration_number=evaluation.drugs[r.drug_id].registration_number,
            control_class=evaluation.drugs[r.drug_id].control_class,
            dose_per_time=r.dose_per_time, dose_unit=r.dose_unit, times_per_day=r.times_per_day, days=r.days,
            quantity=r.quantity, quantity_unit=r.quantity_unit, usage=r.usage) for r in lines],
        advice=advice, note=note, follow_up_days=follow_up_days, long_term=long_term, replaces_code=replaces_code,
        signing_key_id=key_id)


async def _issue(conn: Conn, settings: Settings, c: db.ConsultationFacts, rx: db.DraftRow,
                 line_rows: Sequence[db.LineRow], evaluation: _Evaluation, findings: Sequence[Finding],
                 key: db.KeyRow | None) -> SignedContent:
    """Sign the (locked) draft and issue it, with its national outbox row and the patient's notice."""
    rx_type = prescription_type(evaluation.drugs[r.drug_id].control_class for r in line_rows)  # type: ignore[misc]
    replaces_code = None
    if rx.replaces_id is not None:
        # VN-1.15: the replaced prescription stops being dispensable in the same transaction the new one is issued
        old = await db.prescription(conn, rx.replaces_id, for_update=True)
        assert old is not None
        if old.status != "issued" or (old.valid_until is not None and old.valid_until < _now()):
            raise PrescriptionStateConflict(
                f"The prescription being replaced ({old.code}) is now {old.status}; it can no longer be amended.")
        await db.set_status(conn, old.id, "superseded", ["issued"])
        replaces_code = old.code
    signing_key = await _signing_key(conn, settings, c.doctor_id, key)
    issued_at = _now().replace(microsecond=0)
    for _ in range(_CODE_ATTEMPTS):
        code = str(new_code(c.facility_code, rx_type))
        content = _signed_content(c, evaluation, rx_id=rx.id, rx_type=rx_type, code=code, issued_at=issued_at,
                                  lines=line_rows, advice=rx.advice, note=rx.note, follow_up_days=rx.follow_up_days,
                                  long_term=rx.long_term, replaces_code=replaces_code, key_id=signing_key.id)
        canonical = content.canonical()
        signature = signing.sign(settings.data_key, signing_key.id, signing_key.private_key_enc, canonical)
        try:
            issued = await db.issue(conn, rx.id, code=code, rx_type=rx_type, findings=findings,
                                    signed_content=canonical, signature=signature, key_id=signing_key.id,
                                    issued_at=issued_at, valid_until=content.valid_until)
        except asyncpg.UniqueViolationError as exc:
            _refuse_duplicate(exc)
        if not issued:
            continue  # VN-3.5: the random part is taken in this facility; draw another
        await national_sync.enqueue(conn, content, signature)
        await outbox.enqueue(conn, notices.issued(content), settings)
        return content
    raise PrescriptionStateConflict("Could not allocate a unique prescription code; try again.")


def _refuse_duplicate(exc: asyncpg.UniqueViolationError) -> None:
    """A signature refused by a unique index: VN-1.10, or (for the caller to draw again) the code's random part."""
    if exc.constraint_name == "prescriptions_one_open_c":
        raise PrescriptionRuleViolated([RuleProblem(
            "VN-1.10", "consultation_id", "Lần khám này đã có một đơn thuốc thường đang hiệu lực. This "
            "consultation already has an open normal prescription; amend it instead.")]) from None
    if exc.constraint_name not in ("prescriptions_code_random", "prescriptions_code_key"):
        raise exc


async def _insert_signed(conn: Conn, settings: Settings, c: db.ConsultationFacts, evaluation: _Evaluation,
                         findings: Sequence[Finding], data: IssueIn, weight_kg: float | None, key: db.KeyRow,
                         step: int, ctx: AuditContext) -> Prescription | None:
    """Sign new content and insert it signed (db.insert_signed); None when the TOTP step was spent meanwhile."""
    drugs = evaluation.drugs
    rows = [db.LineRow(
        position=position, drug_id=line.drug_id, drug_name=drugs[line.drug_id].inn,
        strength=drugs[line.drug_id].strength, dosage_form=drugs[line.drug_id].dosage_form,
        route=drugs[line.drug_id].route,
        dose_per_time=_as_stored(line.dose_per_time, 3), dose_unit=line.dose_unit,
        times_per_day=line.times_per_day, days=line.days, quantity=line.quantity, quantity_unit=line.quantity_unit,
        usage=line.usage, dispensed_quantity=0) for position, line in enumerate(data.lines, 1)]
    rx_type = prescription_type(drugs[line.drug_id].control_class for line in data.lines)  # type: ignore[misc]
    rx_id, issued_at = uuid4(), _now().replace(microsecond=0)
    for _ in range(_CODE_ATTEMPTS):
        content = _signed_content(c, evaluation, rx_id=rx_id, rx_type=rx_type,
                                  code=str(new_code(c.facility_code, rx_type)), issued_at=issued_at, lines=rows,
                                  advice=data.advice, note=data.note, follow_up_days=data.follow_up_days,
                                  long_term=data.long_term, replaces_code=None, key_id=key.id)
        canonical = content.canonical()
        signature = signing.sign(settings.data_key, key.id, key.private_key_enc, canonical)
        notice = notices.issued(content)
        try:
            created_at = await db.insert_signed(
                conn, content, step=step, findings=findings, canonical=canonical, signature=signature, draft=data,
                weight_kg=weight_kg, lines=rows, national_payload=national_sync.api5_payload(content, signature),
                notice=notice, notice_at=outbox.next_send_time(_now(), notice.kind, settings),
                max_attempts=settings.notification_max_attempts, ctx=ctx,
                audit_details=_signature_details(content, findings, drafted=False))
        except asyncpg.UniqueViolationError as exc:
            _refuse_duplicate(exc)
            continue  # VN-3.5: the random part is taken in this facility; draw another
        if created_at is None:
            return None
        return _as_issued(content, findings, data, weight_kg, rows, drugs, created_at)
    raise PrescriptionStateConflict("Could not allocate a unique prescription code; try again.")


def _as_stored(value: float, places: int) -> float:
    """``value`` as a numeric(_, places) column keeps it, rounded the way PostgreSQL converts a float8 (15
    significant digits, then half away from zero), so what is signed and answered is what a read shows."""
    return float(Decimal(format(value, ".15g")).quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP))


def _as_issued(content: SignedContent, findings: Sequence[Finding], data: IssueIn, weight_kg: float | None,
               rows: Sequence[db.LineRow], drugs: dict[UUID, db.DrugFacts], created_at: datetime) -> Prescription:
    """The prescription as GET /prescriptions/{id} shows it just after it was inserted signed, from what the
    request already holds (tests hold the two to the same answer)."""
    created = created_at.astimezone(rules.VN)
    return Prescription(
        id=content.prescription_id, code=content.code, status="issued", rx_type=content.rx_type,
        consultation_id=content.consultation_id, patient_id=content.patient.id,
        patient_name=content.patient.full_name, doctor_id=content.doctor.id, doctor_name=content.doctor.full_name,
        facility_code=content.facility.code, diagnoses=list(content.diagnoses),
        lines=[Line(position=r.position, drug_id=r.drug_id, drug_name=r.drug_name, strength=r.strength,
                    dosage_form=r.dosage_form, route=r.route, control_class=drugs[r.drug_id].control_class,
                    dose_per_time=r.dose_per_time, dose_unit=r.dose_unit, times_per_day=r.times_per_day,
                    days=r.days, quantity=r.quantity, quantity_unit=r.quantity_unit, usage=r.usage,
                    dispensed_quantity=0, remaining_quantity=r.quantity,
                    instructions=rules.instructions(r.dose_per_time, r.dose_unit, r.times_per_day, r.usage))
               for r in rows],
        advice=data.advice, note=data.note, follow_up_days=data.follow_up_days,
        weight_kg=weight_kg, pregnancy_status=data.pregnancy_status,
        long_term=data.long_term, replaces_id=None, replaced_by_id=None, findings=list(findings),
        issued_at=_vn(content.issued_at), valid_until=_vn(content.valid_until), cancel_reason=None, cancelled_at=None,
        national=NationalSync(status="pending", attempts=0, sent_at=None, errors=[]), created_at=created,
        updated_at=created)


def _drug_name(drug: db.DrugFacts) -> str:
    """VN-1.7: the INN, with the first trade name in brackets when there is one."""
    return f"{drug.inn} ({drug.trade_names[0]})" if drug.trade_names else drug.inn


# ------------------------------------------------------------------------------------------- amend, cancel, expiry

async def amend(pool: asyncpg.Pool, settings: Settings, principal: Principal, rx_id: UUID,
                ctx: AuditContext) -> Prescription:
    """VN-1.15: a correction is a new draft that, once signed, supersedes this prescription."""
    async with pool.acquire() as conn, conn.transaction():
        old = await _own_draft(conn, principal, rx_id)
        _require_open_untouched(old, "amended")
        c = (await _prescribable(conn, settings, principal, old.consultation_id)).consultation
        existing = await conn.fetchval("SELECT id FROM prescriptions WHERE replaces_id = $1", rx_id)
        if existing is not None:
            raise PrescriptionStateConflict(f"An amendment of this prescription already exists: {existing}.")
        new_id = (await db.insert_draft(conn, c, diagnoses=old.diagnoses, advice=old.advice, note=old.note,
                                        follow_up_days=old.follow_up_days, weight_kg=old.weight_kg,
                                        pregnancy_status=old.pregnancy_status, long_term=old.long_term,
                                        replaces_id=rx_id)).id
        await db.insert_lines(conn, new_id, [_line_in(r) for r in await db.lines(conn, rx_id)])
        await audit.record(conn, ctx, "prescription.amendment_started", target_type="prescription",
                           target_id=new_id, subject_patient_id=old.patient_id, details={"replaces": old.code})
        return await _present(conn, new_id)


def _require_open_untouched(rx: db.DraftRow, action: str) -> None:
    if rx.status == "draft":
        raise PrescriptionStateConflict(f"A draft is not {action}; edit or discard it.")
    if rx.status in OPEN and rx.valid_until is not None and rx.valid_until < _now():
        raise PrescriptionExpired(f"Prescription {rx.code} expired (VN-2.1); write a new one instead.")
    if rx.status != "issued":
        raise PrescriptionStateConflict(f"Prescription {rx.code} is {rx.status}; it can no longer be {action}.")


async def cancel(pool: asyncpg.Pool, settings: Settings, principal: Principal, rx_id: UUID, data: CancelIn,
                 ctx: AuditContext) -> Prescription:
    """Spec §7.3 / NHS-6: cancelled at once while no pharmacy holds it (what remains of a partly dispensed one stops
    being dispensable); while a pharmacy holds it, pending_cancellation until that pharmacy returns it or its hold
    lapses. No QĐ 808 call exists for this (API-R5, U-7)."""
    async with pool.acquire() as conn, conn.transaction():
        rx = await _own_draft(conn, principal, rx_id)
        if rx.status == "draft":
            raise PrescriptionStateConflict("A draft is not cancelled; discard it.")
        if rx.status in OPEN and rx.valid_until is not None and rx.valid_until < _now():
            raise PrescriptionExpired(f"Prescription {rx.code} already expired (VN-2.1).")
        now = _now()
        if rx.status not in OPEN:
            raise PrescriptionStateConflict(f"Prescription {rx.code} is {rx.status}; it cannot be cancelled.")
        if rx.hold_expires_at is None or rx.hold_expires_at <= now:
            # nobody is preparing it: what remains stops being dispensable now
            await db.set_status(conn, rx_id, "cancelled", OPEN, cancelled_at=now, cancelled_by=principal.account_id,
                                cancel_reason=data.reason, cancel_note=data.note)
            action = "prescription.cancelled"
        else:
            await db.set_status(conn, rx_id, "pending_cancellation", OPEN, cancel_requested_at=now,
                                cancelled_by=principal.account_id, cancel_reason=data.reason, cancel_note=data.note)
            action = "prescription.cancellation_requested"
        await conn.execute("INSERT INTO prescription_events (prescription_id, kind) VALUES ($1, $2)", rx_id,
                           action.removeprefix("prescription."))
        await audit.record(conn, ctx, action, target_type="prescription", target_id=rx_id,
                           subject_patient_id=rx.patient_id, details={"code": rx.code, "reason": data.reason})
        assert rx.code is not None
        await notices.cancelled(conn, prescription_id=rx_id, code=rx.code, patient_id=rx.patient_id,
                                settings=settings)
        return await _present(conn, rx_id)


async def expire_prescriptions(pool: asyncpg.Pool, settings: Settings) -> int:
    """Worker job: VN-2.1 — prescriptions past their dispensing window become expired (reads already say so);
    lapsed pharmacy holds end."""
    del settings
    async with pool.acquire() as conn, conn.transaction():
        expired = await db.expire_due(conn)
        for rx_id in expired:
            await audit.record(conn, audit.SYSTEM, "prescription.expired", target_type="prescription", target_id=rx_id)
        for rx_id in await db.settle_lapsed_holds(conn):
            await audit.record(conn, audit.SYSTEM, "prescription.cancelled", target_type="prescription",
                               target_id=rx_id,
                               details={"why": "the holding pharmacy's hold lapsed during a pending cancellation"})
    return len(expired)


# ------------------------------------------------------------------------------------------- reads

async def view(pool: asyncpg.Pool, principal: Principal, rx_id: UUID, ctx: AuditContext) -> Prescription:
    async with pool.acquire() as conn, conn.transaction():
        rx = await _readable(conn, principal, rx_id)
        await audit.record(conn, ctx, "prescription.viewed", target_type="prescription", target_id=rx_id,
                           subject_patient_id=rx.patient_id)
        return await _present(conn, rx_id)


async def listing(pool: asyncpg.Pool, principal: Principal, consultation_id: UUID | None, limit: int,
                  ctx: AuditContext) -> list[PrescriptionSummary]:
    """Patients: their own and their children's signed prescriptions. Doctors: the ones they wrote."""
    async with pool.acquire() as conn, conn.transaction():
        if principal.role == "patient" and principal.patient_id is not None:
            people = [principal.patient_id, *await db.dependents(conn, principal.patient_id)]
            rows = await db.for_patients(conn, people, limit)
        else:
            rows = await db.for_doctor(conn, principal.account_id, consultation_id, limit)
        if rows:
            await audit.record(conn, ctx, "prescription.listed", target_type="prescription",
                               details={"ids": [str(r["id"]) for r in rows]})
    return [msgspec.convert({**r, "issued_at": _vn(r["issued_at"]), "valid_until": _vn(r["valid_until"])},
                            PrescriptionSummary) for r in rows]


def _vn(value: datetime | None) -> datetime | None:
    return None if value is None else value.astimezone(rules.VN)


async def _present(conn: Conn, rx_id: UUID) -> Prescription:
    values = await db.view(conn, rx_id)
    if values is None:
        raise PrescriptionNotFound("No such prescription.")
    for line in values["lines"]:
        line["instructions"] = rules.instructions(line["dose_per_time"], line["dose_unit"], line["times_per_day"],
                                                  line["usage"])
    national = None
    if values["national_status"] is not None:
        errors = values["national_rejection"] or ([values["national_last_error"]]
                                                  if values["national_last_error"] else [])
        national = NationalSync(status=values["national_status"], attempts=values["national_attempts"],
                                sent_at=_vn(values["national_sent_at"]), errors=[str(e) for e in errors])
    for name in ("issued_at", "valid_until", "cancelled_at", "created_at", "updated_at"):
        values[name] = _vn(values[name])
    values["national"] = national
    values["lines"] = [msgspec.convert(line, Line) for line in values["lines"]]
    return msgspec.convert({k: v for k, v in values.items() if not k.startswith("national_")}, Prescription,
                           from_attributes=True)


# ------------------------------------------------------------------------------------------- signature and QR

async def signature_document(pool: asyncpg.Pool, principal: Principal, rx_id: UUID,
                             ctx: AuditContext) -> SignatureDocument:
    async with pool.acquire() as conn, conn.transaction():
        rx = await _readable(conn, principal, rx_id)
        found = await db.signature(conn, rx_id)
        if found is None:
            raise PrescriptionStateConflict("A draft has no signature yet.")
        await audit.record(conn, ctx, "prescription.signature_viewed", target_type="prescription", target_id=rx_id,
                           subject_patient_id=rx.patient_id)
    return SignatureDocument(prescription_id=found.id, code=found.code, algorithm="Ed25519",
                             key_id=found.signing_key_id, content=signing.b64url(found.signed_content),
                             signature=signing.b64url(found.signature))


async def qr_payload(pool: asyncpg.Pool, settings: Settings, principal: Principal, rx_id: UUID,
                     ctx: AuditContext) -> str:
    """What the QR encodes: the code and a signature over the code by the prescriber's key (no patient data)."""
    async with pool.acquire() as conn, conn.transaction():
        rx = await _readable(conn, principal, rx_id)
        if rx.code is None or rx.signing_key_id is None:
            raise PrescriptionStateConflict("A draft has no QR code yet.")
        key = await conn.fetchval("SELECT private_key_enc FROM doctor_signing_keys WHERE id = $1", rx.signing_key_id)
        await audit.record(conn, ctx, "prescription.qr_viewed", target_type="prescription", target_id=rx_id,
                           subject_patient_id=rx.patient_id)
    signature = signing.sign(settings.data_key, rx.signing_key_id, key, signing.qr_message(rx.code))
    return signing.qr_payload(rx.code, rx.signing_key_id, signature)


async def check_qr(pool: asyncpg.Pool, text: str) -> QrCheck:
    """What a pharmacy scanner sends: refused unless the signature over the code verifies with the key it names."""
    try:
        code, key_id, signature = signing.parse_qr(text)
    except signing.BadQr as exc:
        raise QrInvalid(str(exc)) from None
    async with pool.acquire() as conn:
        public = await db.public_key(conn, key_id)
        rx_id = await db.by_code(conn, code)
        owner_key = await conn.fetchval("SELECT signing_key_id FROM prescriptions WHERE id = $1", rx_id)
    if public is None or rx_id is None or owner_key != key_id or not signing.verify(
            public, signing.qr_message(code), signature):
        raise QrInvalid("The QR code's signature does not verify: it was not issued by Lienthong for this "
                        "prescription. Type the code instead and check the paper or the patient's app.")
    return QrCheck(code=code, key_id=key_id, prescription_id=rx_id)


async def signing_keys(pool: asyncpg.Pool, doctor_id: UUID | None) -> list[SigningKey]:
    async with pool.acquire() as conn:
        rows = await db.signing_keys(conn, doctor_id)
    return [SigningKey(id=r["id"], doctor_id=r["doctor_id"], doctor_name=r["doctor_name"],
                       licence_number=r["licence_number"], algorithm="Ed25519",
                       public_key=signing.b64url(r["public_key"]), created_at=r["created_at"],
                       retired_at=r["retired_at"]) for r in rows]
