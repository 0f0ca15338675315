"""Verify, hold and dispense a prescription at a pharmacy, exactly once (spec §6 PH-1..PH-10, NHS-4 holds).

Who may do what: a pharmacist (or the pharmacy's software, which signs in as one) acts for the pharmacy in their
token. Anyone at any pharmacy may verify a code; only the holder of an active hold, or anyone when nobody holds it,
dispenses; only the pharmacy that made a dispense voids it, within LIENTHONG_DISPENSE_VOID_MINUTES.

Every dispense, hold and void of a prescription takes the prescription's row lock first and recomputes what remains
inside that transaction, so concurrent sales at two pharmacies can never hand out more than was prescribed (PH-10).
"""

from __future__ import annotations

import hashlib
from datetime import UTC, date, datetime, timedelta
from uuid import UUID

import asyncpg
import msgspec

from api import audit
from api.audit import AuditContext
from api.auth.principal import Principal
from api.db import Conn
from api.errors import Conflict, DomainError, FieldError, Forbidden, InvalidInput, NotFound
from api.settings import Settings
from eprescription import notices, rules, signing
from eprescription.codes import InvalidPrescriptionCode, parse_code, prescription_type
from eprescription.errors import PrescriptionExpired, PrescriptionNotFound, QrInvalid
from payments import refunds
from pharmacy_link import dispensing_db as db
from pharmacy_link import national_report
from pharmacy_link.api_keys import PharmacyInactive
from pharmacy_link.dispensing_schemas import (
    Dispense,
    DispensedLine,
    DispenseIn,
    HoldOut,
    Verification,
    VerifiedLine,
    VerifiedPatient,
    VerifyIn,
)
from pharmacy_link.stock import consume_stock

DISPENSABLE = ("issued", "with_dispenser", "partially_dispensed")


class NotAPharmacist(Forbidden):
    slug, title = "not-a-pharmacist", "Only pharmacy staff may do this"


class PrescriptionNotDispensable(Conflict):
    slug, title = "prescription-not-dispensable", "Prescription cannot be dispensed"


class PrescriptionHeld(Conflict):
    slug, title = "prescription-held", "Prescription held by another pharmacy"


class QuantityExceedsRemaining(Conflict):
    slug, title = "quantity-exceeds-remaining", "More than remains on the prescription"


class SignatureInvalid(Conflict):
    slug, title = "prescription-signature-invalid", "Prescription signature does not verify"


class DispenseRejected(DomainError):
    status, slug, title = 422, "dispense-rejected", "Dispense request breaks a dispensing rule"


class IdempotencyKeyReused(DomainError):
    status, slug, title = 422, "idempotency-key-reused", "Idempotency key already used for another request"


class DispenseNotFound(NotFound):
    slug, title = "dispense-not-found", "Dispense not found"


class VoidNotAllowed(Conflict):
    slug, title = "void-not-allowed", "Dispense can no longer be voided"


def _now() -> datetime:
    return datetime.now(UTC)


def _pharmacy(principal: Principal) -> UUID:
    if principal.role != "pharmacist" or principal.pharmacy_id is None:
        raise NotAPharmacist("Only a pharmacist acting for a pharmacy may do this.")
    return principal.pharmacy_id


def _code(data: VerifyIn) -> str:
    if (data.code is None) == (data.qr is None):
        raise InvalidInput("body", "Send either the typed code or the scanned QR, not both and not neither.")
    if data.qr is not None:
        try:
            code, _, _ = signing.parse_qr(data.qr)
        except signing.BadQr as exc:
            raise QrInvalid(str(exc)) from None
        return code
    try:
        return str(parse_code(data.code or ""))
    except InvalidPrescriptionCode as exc:
        raise InvalidInput("body.code", str(exc)) from None


def _qr_verifies(data: VerifyIn, rx: db.RxAtPharmacy) -> bool:
    if data.qr is None:
        return True
    _, key_id, qr_signature = signing.parse_qr(data.qr)
    return key_id == rx.signing_key_id and signing.verify(rx.public_key, signing.qr_message(rx.code), qr_signature)


def signature_valid(rx: db.RxAtPharmacy) -> bool:
    return signing.content_matches_record(rx.public_key, rx.signed_content, rx.signature, code=rx.code,
                                          valid_until=rx.valid_until,
                                          lines=[(li.position, li.drug_id, li.quantity) for li in rx.lines])


def effective_status(rx: db.RxAtPharmacy, now: datetime) -> str:
    if rx.status in DISPENSABLE and rx.valid_until < now:
        return "expired"
    if rx.status == "with_dispenser" and not _held(rx, now):
        return "issued"  # the hold lapsed
    return rx.status


def _held(rx: db.RxAtPharmacy, now: datetime) -> bool:
    return rx.holder_pharmacy_id is not None and rx.hold_expires_at is not None and rx.hold_expires_at > now


def _reasons(rx: db.RxAtPharmacy, status: str, pharmacy_id: UUID, valid_signature: bool, now: datetime) -> list[str]:
    reasons = []
    if not valid_signature:
        reasons.append("The prescriber's signature does not verify: do not dispense; call the prescriber.")
    if status == "expired":
        reasons.append("Expired: drugs may be obtained only until "
                       f"{rx.valid_until.astimezone(rules.VN):%H:%M %d/%m/%Y} (VN-2.1).")
    elif status not in DISPENSABLE:
        reasons.append({
            "dispensed": "Everything on it has already been dispensed.",
            "cancelled": "The prescriber cancelled it.",
            "pending_cancellation": "The prescriber is cancelling it; return it instead of dispensing.",
            "superseded": "It was replaced by a corrected prescription (VN-1.15); ask for the new code.",
            "not_dispensed": "It was closed without dispensing.",
        }.get(status, f"It is {status}."))
    if _held(rx, now) and rx.holder_pharmacy_id != pharmacy_id and rx.hold_expires_at is not None:
        until = rx.hold_expires_at.astimezone(rules.VN)
        reasons.append(f"Another pharmacy is preparing it (held) until {until:%H:%M}.")
    return reasons


def _warnings(rx: db.RxAtPharmacy) -> list[str]:
    """PH-1: the form must match the most controlled drug on it (VN-3.6); N/H need the recipient's ID (PH-6)."""
    warnings = []
    expected = prescription_type(line.control_class for line in rx.lines)  # type: ignore[misc]
    if expected != rx.rx_type:
        warnings.append(f"The prescription form ({rx.rx_type}) does not match its drugs ({expected}) (PH-1): "
                        "do not dispense the controlled drugs.")
    if rx.rx_type in ("n", "h"):
        warnings.append("Narcotic/psychotropic prescription: record the recipient's ID number and keep the "
                        "original (PH-6).")
    return warnings


def _identity_matches(data: VerifyIn, rx: db.RxAtPharmacy) -> bool:
    check = data.identity
    if check is None or (check.date_of_birth is None and check.citizen_id is None):
        return False
    return ((check.date_of_birth is None or check.date_of_birth == rx.date_of_birth)
            and (check.citizen_id is None or check.citizen_id == rx.citizen_id))


async def verify(pool: asyncpg.Pool, principal: Principal, data: VerifyIn, ctx: AuditContext) -> Verification:
    """What the pharmacist needs to decide, in one database round trip (which also writes the audit row)."""
    pharmacy_id = _pharmacy(principal)
    code = _code(data)
    async with pool.acquire() as conn:
        rx = await db.load_and_audit(conn, code, ctx, {"pharmacy_id": str(pharmacy_id),
                                                       "by": "qr" if data.qr else "code"})
    if rx is None:
        raise PrescriptionNotFound(f"No prescription has the code {code}.")
    if not _qr_verifies(data, rx):
        raise QrInvalid("The QR code's signature does not verify: type the code from the paper or the app instead.")
    now = _now()
    status = effective_status(rx, now)
    valid = signature_valid(rx)
    reasons = _reasons(rx, status, pharmacy_id, valid, now)
    confirmed = _identity_matches(data, rx)
    patient = VerifiedPatient(full_name=rx.patient_name,
                              birth_year=rx.date_of_birth.year if rx.date_of_birth else None)
    if confirmed:
        patient = msgspec.structs.replace(patient, date_of_birth=rx.date_of_birth, sex=rx.sex, address=rx.address,
                                          weight_kg=rx.weight_kg)
    held = _held(rx, now)
    return Verification(
        prescription_id=rx.id, code=rx.code, rx_type=rx.rx_type, status=status,  # type: ignore[arg-type]
        dispensable=not reasons, reasons=reasons, warnings=_warnings(rx), signature_valid=valid,
        issued_at=rx.issued_at.astimezone(rules.VN), valid_until=rx.valid_until.astimezone(rules.VN),
        doctor_name=rx.doctor_name, doctor_licence=rx.licence_number, facility_code=rx.facility_code,
        facility_name=rx.facility_name, patient=patient, identity_confirmed=confirmed,
        held_by_you=held and rx.holder_pharmacy_id == pharmacy_id,
        held_by_another_pharmacy=held and rx.holder_pharmacy_id != pharmacy_id,
        hold_expires_at=rx.hold_expires_at.astimezone(rules.VN) if held and rx.hold_expires_at else None,
        lines=[VerifiedLine(
            position=li.position, drug_id=li.drug_id, drug_name=li.drug_name, strength=li.strength,
            dosage_form=li.dosage_form, route=li.route, control_class=li.control_class,
            instructions=rules.instructions(li.dose_per_time, li.dose_unit, li.times_per_day, li.usage),
            quantity=li.quantity, quantity_unit=li.quantity_unit, dispensed_quantity=li.dispensed_quantity,
            remaining_quantity=li.quantity - li.dispensed_quantity) for li in rx.lines])


# ------------------------------------------------------------------------------------------- holds

async def _locked(conn: Conn, raw_code: str) -> db.RxAtPharmacy:
    try:
        code = str(parse_code(raw_code))
    except InvalidPrescriptionCode as exc:
        raise InvalidInput("path.code", str(exc)) from None
    rx = await db.load_for_update(conn, code)
    if rx is None:
        raise PrescriptionNotFound(f"No prescription has the code {code}.")
    return rx


def _require_dispensable(rx: db.RxAtPharmacy, pharmacy_id: UUID, now: datetime) -> str:
    status = effective_status(rx, now)
    if status == "expired":
        raise PrescriptionExpired(f"Prescription {rx.code} expired (VN-2.1); it cannot be dispensed.",
                                  extra={"valid_until": rx.valid_until.astimezone(rules.VN).isoformat()})
    if status not in DISPENSABLE:
        raise PrescriptionNotDispensable(f"Prescription {rx.code} is {status}; it cannot be dispensed.",
                                         extra={"prescription_status": status})
    if _held(rx, now) and rx.holder_pharmacy_id != pharmacy_id and rx.hold_expires_at is not None:
        until = rx.hold_expires_at.astimezone(rules.VN)
        raise PrescriptionHeld(f"Another pharmacy is preparing prescription {rx.code}; try again after {until:%H:%M}.",
                               extra={"held_until": until.isoformat()})
    return status


async def hold(pool: asyncpg.Pool, settings: Settings, principal: Principal, raw_code: str,
               ctx: AuditContext) -> HoldOut:
    """NHS-4 "with dispenser": this pharmacy prepares it; others see it held until released or timed out."""
    pharmacy_id = _pharmacy(principal)
    async with pool.acquire() as conn, conn.transaction():
        rx = await _locked(conn, raw_code)
        now = _now()
        status = _require_dispensable(rx, pharmacy_id, now)
        until = now + timedelta(minutes=settings.dispense_hold_minutes)
        new_status = "with_dispenser" if status == "issued" else status
        await db.set_state(conn, rx.id, new_status, pharmacy_id, until)
        await db.event(conn, rx.id, "held", pharmacy_id)
        await audit.record(conn, ctx, "prescription.held", target_type="prescription", target_id=rx.id,
                           subject_patient_id=rx.patient_id, details={"pharmacy_id": str(pharmacy_id)})
    return HoldOut(code=rx.code, status=new_status, hold_expires_at=until.astimezone(rules.VN))  # type: ignore[arg-type]


async def release(pool: asyncpg.Pool, principal: Principal, raw_code: str, ctx: AuditContext) -> HoldOut:
    """Give the prescription back (NHS-4 return). If the prescriber cancelled it meanwhile, this completes the
    cancellation (NHS-6: pending until the pharmacy returns it)."""
    pharmacy_id = _pharmacy(principal)
    async with pool.acquire() as conn, conn.transaction():
        rx = await _locked(conn, raw_code)
        if rx.holder_pharmacy_id != pharmacy_id:
            raise Conflict("Your pharmacy does not hold this prescription.")
        if rx.status == "pending_cancellation":
            status, kind = "cancelled", "cancelled"
        else:
            status, kind = ("issued" if rx.status == "with_dispenser" else rx.status), "released"
        await db.set_state(conn, rx.id, status, None, None, cancelled=status == "cancelled")
        await db.event(conn, rx.id, kind, pharmacy_id)
        await audit.record(conn, ctx, f"prescription.{kind}", target_type="prescription", target_id=rx.id,
                           subject_patient_id=rx.patient_id, details={"pharmacy_id": str(pharmacy_id)})
    return HoldOut(code=rx.code, status=status, hold_expires_at=None)  # type: ignore[arg-type]


# ------------------------------------------------------------------------------------------- dispense

def _request_hash(code: str, data: DispenseIn) -> bytes:
    return hashlib.sha256(code.encode() + b"\x00" + msgspec.json.encode(data)).digest()


async def dispense(pool: asyncpg.Pool, settings: Settings, principal: Principal, raw_code: str, data: DispenseIn,
                   idempotency_key: str, ctx: AuditContext) -> tuple[Dispense, bool]:
    """(the dispense, whether it was created now); a retry with the same key returns the first result."""
    pharmacy_id = _pharmacy(principal)
    async with pool.acquire() as conn:
        try:
            async with conn.transaction():
                rx = await _locked(conn, raw_code)
                request_hash = _request_hash(rx.code, data)
                # looked up under the prescription's lock, so a retry racing its original waits and then finds it
                existing = await db.by_idempotency_key(conn, pharmacy_id, idempotency_key)
                if existing is not None:
                    if existing.request_hash != request_hash or existing.prescription_id != rx.id:
                        raise IdempotencyKeyReused("This Idempotency-Key was used for a different dispense request; "
                                                   "use a new key for a new sale.")
                    return await _present(conn, existing.id), False
                dispense_id = await _dispense_locked(conn, settings, principal, pharmacy_id, rx, data,
                                                     idempotency_key, request_hash, ctx)
                return await _present(conn, dispense_id), True
        except asyncpg.UniqueViolationError:
            # the same key, used at the same moment for another prescription of this pharmacy
            raise IdempotencyKeyReused("This Idempotency-Key is being used by another request.") from None


async def _dispense_locked(conn: Conn, settings: Settings, principal: Principal, pharmacy_id: UUID,
                           rx: db.RxAtPharmacy, data: DispenseIn, idempotency_key: str, request_hash: bytes,
                           ctx: AuditContext) -> UUID:
    now = _now()
    pharmacy_name = await db.active_pharmacy_name(conn, pharmacy_id)
    if pharmacy_name is None:
        raise PharmacyInactive("This pharmacy is deactivated in the registry; it cannot dispense.")
    _require_dispensable(rx, pharmacy_id, now)
    if not signature_valid(rx):
        raise SignatureInvalid(f"The signature of prescription {rx.code} does not verify; do not dispense it.")
    lines = {li.position: li for li in rx.lines}
    problems = _line_problems(rx, data, lines, now.astimezone(rules.VN).date())
    substitutes = [item for item in data.lines if item.substitute_drug_id is not None]
    if substitutes:
        problems += await _substitution_problems(conn, principal, data, lines)
    if problems:
        raise DispenseRejected(f"The dispense breaks {len(problems)} rule(s); nothing was dispensed.",
                               errors=problems)
    over = {item.position: lines[item.position].quantity - lines[item.position].dispensed_quantity
            for item in data.lines
            if item.quantity > lines[item.position].quantity - lines[item.position].dispensed_quantity}
    if over:
        raise QuantityExceedsRemaining(
            "Nothing was dispensed: " + "; ".join(f"line {p} has {left} left" for p, left in sorted(over.items())),
            errors=[FieldError(f"body.lines[{i}].quantity", f"only {over[item.position]} left on line "
                               f"{item.position}") for i, item in enumerate(data.lines) if item.position in over],
            extra={"remaining": {str(p): q for p, q in sorted(over.items())}})

    total = sum(item.quantity * item.unit_price_vnd for item in data.lines)
    snapshot = {"signed_content": msgspec.json.decode(rx.signed_content),
                "dispensed": msgspec.to_builtins(data.lines), "recipient": data.recipient.full_name}
    dispense_id = await db.insert_dispense(
        conn, prescription_id=rx.id, pharmacy_id=pharmacy_id, pharmacist_id=principal.account_id,
        idempotency_key=idempotency_key, request_hash=request_hash, invoice_number=data.invoice_number,
        recipient_name=data.recipient.full_name, recipient_id_number=data.recipient.id_number, total_vnd=total,
        snapshot=snapshot,
        lines=[(item.position, lines[item.position].drug_id, item.substitute_drug_id or lines[item.position].drug_id,
                item.substitute_drug_id is not None, item.buyer_consent, item.quantity, item.lot_number,
                item.expiry_date, item.origin, item.unit_price_vnd) for item in data.lines])
    await national_report.enqueue_sale(conn, dispense_id)  # PH-3: reported right after the sale, via the outbox
    quantities = {item.position: item.quantity for item in data.lines}
    await db.add_dispensed(conn, rx.id, quantities)
    complete = all(li.dispensed_quantity + quantities.get(li.position, 0) >= li.quantity for li in rx.lines)
    status = "dispensed" if complete else "partially_dispensed"
    # the holder keeps its hold while something remains; a complete sale ends it
    holder, until = (None, None) if complete else (rx.holder_pharmacy_id, rx.hold_expires_at)
    await db.set_state(conn, rx.id, status, holder, until)
    await consume_stock(conn, pharmacy_id, [(item.substitute_drug_id or lines[item.position].drug_id, item.quantity)
                                            for item in data.lines])
    await db.event(conn, rx.id, status, pharmacy_id, dispense_id)
    await notices.dispensed(conn, prescription_id=rx.id, code=rx.code, patient_id=rx.patient_id,
                            dispense_id=dispense_id, complete=complete, pharmacy_name=pharmacy_name,
                            valid_until=rx.valid_until, settings=settings)
    await audit.record(conn, ctx, "prescription.dispensed", target_type="dispense", target_id=dispense_id,
                       subject_patient_id=rx.patient_id,
                       details={"code": rx.code, "pharmacy_id": str(pharmacy_id), "status": status,
                                "quantities": {str(k): v for k, v in quantities.items()}})
    return dispense_id


def _line_problems(rx: db.RxAtPharmacy, data: DispenseIn, lines: dict[int, db.RxLine],
                   today: date) -> list[FieldError]:
    problems = []
    seen: set[int] = set()
    for i, item in enumerate(data.lines):
        at = f"body.lines[{i}]"
        if item.position not in lines:
            problems.append(FieldError(f"{at}.position", f"The prescription has no line {item.position}."))
        elif item.position in seen:
            problems.append(FieldError(f"{at}.position", f"Line {item.position} appears twice; send one entry."))
        seen.add(item.position)
        if item.expiry_date < today:
            problems.append(FieldError(f"{at}.expiry_date", "This lot has expired; it must not be sold."))
    if rx.rx_type in ("n", "h") and data.recipient.id_number is None:
        problems.append(FieldError("body.recipient.id_number", "Narcotic and psychotropic prescriptions need the "
                                   "recipient's ID number (PH-6, VN-3.7)."))
    return problems


async def _substitution_problems(conn: Conn, principal: Principal, data: DispenseIn,
                                 lines: dict[int, db.RxLine]) -> list[FieldError]:
    """PH-4: same active ingredient(s), route and strength; a pharmacist with a degree; the buyer agrees."""
    problems = []
    if not await db.has_pharmacist_degree(conn, principal.account_id):
        problems.append(FieldError("body.lines", "Only a pharmacist with a pharmacist degree may substitute (PH-4)."))
    wanted = [item.substitute_drug_id for item in data.lines if item.substitute_drug_id is not None]
    prescribed = [lines[item.position].drug_id for item in data.lines if item.position in lines]
    facts = await db.drug_facts(conn, [*wanted, *prescribed])
    for i, item in enumerate(data.lines):
        if item.substitute_drug_id is None or item.position not in lines:
            continue
        at = f"body.lines[{i}]"
        original, substitute = facts.get(lines[item.position].drug_id), facts.get(item.substitute_drug_id)
        if substitute is None or not substitute.active or not substitute.is_medicine:
            problems.append(FieldError(f"{at}.substitute_drug_id", "No such drug in the catalogue."))
        elif original is not None and (sorted(substitute.ingredients) != sorted(original.ingredients)
                                       or substitute.route != original.route
                                       or substitute.strength_fold != original.strength_fold):
            problems.append(FieldError(f"{at}.substitute_drug_id", "A substitute must have the same active "
                                       "ingredient(s), route and strength (PH-4)."))
        if not item.buyer_consent:
            problems.append(FieldError(f"{at}.buyer_consent", "Substitution needs the buyer's consent (PH-4)."))
    return problems


async def _present(conn: Conn, dispense_id: UUID) -> Dispense:
    row = await db.dispense(conn, dispense_id)
    if row is None:
        raise DispenseNotFound("No such dispense.")
    return Dispense(
        id=row.id, prescription_id=row.prescription_id, code=row.code, pharmacy_id=row.pharmacy_id,
        invoice_number=row.invoice_number, total_vnd=row.total_vnd,
        lines=[msgspec.convert(line, DispensedLine) for line in row.lines],
        created_at=row.created_at.astimezone(rules.VN),
        voided_at=row.voided_at.astimezone(rules.VN) if row.voided_at else None,
        prescription_status=row.status,  # type: ignore[arg-type]
        remaining={r["position"]: r["remaining"] for r in row.remaining})


async def view_dispense(pool: asyncpg.Pool, principal: Principal, dispense_id: UUID) -> Dispense:
    pharmacy_id = _pharmacy(principal)
    async with pool.acquire() as conn:
        found = await _present(conn, dispense_id)
    if found.pharmacy_id != pharmacy_id:
        raise DispenseNotFound("No such dispense at your pharmacy.")
    return found


async def void(pool: asyncpg.Pool, settings: Settings, principal: Principal, dispense_id: UUID, reason: str,
               ctx: AuditContext) -> Dispense:
    """Undo a mistaken sale: its quantities return to the prescription. Only its pharmacy, only soon after."""
    pharmacy_id = _pharmacy(principal)
    async with pool.acquire() as conn, conn.transaction():
        facts = await db.void_facts(conn, dispense_id)
        if facts is None or facts.pharmacy_id != pharmacy_id:
            raise DispenseNotFound("No such dispense at your pharmacy.")
        rx = await _locked(conn, facts.code)
        facts = await db.void_facts(conn, dispense_id)  # re-read under the prescription's lock
        assert facts is not None
        if facts.voided_at is not None:
            raise VoidNotAllowed("This dispense was already voided.")
        if _now() > facts.created_at + timedelta(minutes=settings.dispense_void_minutes):
            raise VoidNotAllowed(f"A dispense can be voided within {settings.dispense_void_minutes} minutes; "
                                 "record a return instead.")
        await db.mark_voided(conn, dispense_id, principal.account_id, reason)
        await national_report.withhold_sale(conn, dispense_id)  # a report already sent is flagged for correction
        await db.add_dispensed(conn, rx.id, {p: -q for p, q in facts.quantities.items()})
        if rx.status in ("dispensed", "partially_dispensed"):
            left_any = any(li.dispensed_quantity - facts.quantities.get(li.position, 0) > 0 for li in rx.lines)
            now = _now()
            status = "partially_dispensed" if left_any else ("with_dispenser" if _held(rx, now) else "issued")
            await db.set_state(conn, rx.id, status, rx.holder_pharmacy_id if _held(rx, now) else None,
                               rx.hold_expires_at if _held(rx, now) else None)
        await db.event(conn, rx.id, "dispense_voided", pharmacy_id, dispense_id)
        await refunds.refund_paid(conn, dispense_id=dispense_id, reason=f"sale voided: {reason}")
        await audit.record(conn, ctx, "prescription.dispense_voided", target_type="dispense", target_id=dispense_id,
                           subject_patient_id=rx.patient_id, details={"code": rx.code, "reason": reason})
        return await _present(conn, dispense_id)
