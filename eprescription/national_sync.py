"""Sending signed prescriptions to the national e-prescription system (QĐ 808 API-5) through the outbox (API-R3).

The API-5 body is built from the signed content and stored in ``national_rx_outbox`` in the signing transaction
(``enqueue``); the worker's ``send_due`` sends it after commit, retries transient failures with backoff and never
retries a 422, which is kept for the doctor to read (``national_status``).
"""

from __future__ import annotations

import asyncio
import base64
import logging
import re
import secrets
import time
from datetime import date, datetime, timedelta
from typing import Any, Literal
from uuid import UUID

import asyncpg
import msgspec

from api import audit
from api.auth.secrets_box import unseal
from api.db import Conn
from api.settings import Settings
from eprescription.national import (
    NationalClient,
    NationalConfig,
    NationalError,
    NationalNotFound,
    NationalRejected,
    NationalUnavailable,
)
from eprescription.rules import CHILD_MONTHS, VN, age_in_months, instructions
from eprescription.schemas import Guardian, NationalSync, SignedContent, SignedLine, SignedPatient

log = logging.getLogger(__name__)

# QĐ 808 VII.3 #14 asks for a number from an MoH list the spec does not reproduce (unconfirmed). 2 is "điều trị
# ngoại trú" in the MoH's insurance data standard (QĐ 130/QĐ-BYT MA_LOAI_KCB), and what a public client sends.
OUTPATIENT_TREATMENT = 2
MAX_ATTEMPTS = 12  # 30 s doubling to the 1 h cap: about 5 hours of trying before 'failed'
FIRST_RETRY_S = 30.0
MAX_RETRY_S = 3600.0
# A claimed row is hidden from other workers this long. A row is only started while enough of the lease is left
# for its worst case (every call of a login-add-login-send-relogin-send-lookup chain timing out), so two workers
# never send one row at the same time.
LEASE_S = 300.0
WORST_CASE_CALLS = 9
SEND_CONCURRENCY = 4
_SEX = {"male": 2, "female": 3}  # gioi_tinh; 1 = unknown (QĐ 808 has no code for "other")
_ROUTES = {
    "oral": "Uống", "sublingual": "Ngậm dưới lưỡi", "buccal": "Ngậm", "inhalation": "Hít", "nasal": "Dùng qua mũi",
    "topical": "Bôi ngoài da", "transdermal": "Dán ngoài da", "ophthalmic": "Nhỏ mắt", "otic": "Nhỏ tai",
    "rectal": "Đặt hậu môn", "vaginal": "Đặt âm đạo", "injection": "Tiêm", "other": "Dùng",
}
_NAME_WITH_TRADE = re.compile(r"^(.*\S)\s*\(([^()]+)\)$")  # VN-1.7 "INN (trade name)"
_INSURANCE_15 = re.compile(r"^[A-Z]{2}[0-9]{3}([0-9]{10})$")
# VN-1.15/API-R5: the national system has no cancel call, so a prescription cancelled or replaced before it went out
# must not go out at all: a pharmacy could otherwise look it up (API-6) and dispense it.
WITHHELD = ("Không gửi: đơn thuốc đã bị hủy hoặc thay thế trước khi gửi lên hệ thống đơn thuốc quốc gia. Not sent: "
            "the prescription was cancelled or replaced before it reached the national system.")
NO_NATIONAL_CODE = ("Bác sĩ chưa có mã liên thông đơn thuốc quốc gia; quản trị viên cần khai báo mã và mật khẩu. "
                    "The doctor has no national e-prescription code (mã liên thông bác sĩ) on file.")


# ------------------------------------------------------------------------------------------- API-5 body

def api5_payload(content: SignedContent, signature: bytes) -> dict[str, Any]:
    """The QĐ 808 VII.3 body for a signed prescription. Required data we do not hold is left out rather than made
    up, so the national system's 422 names it."""
    patient = content.patient
    issued = content.issued_at.astimezone(VN)
    body: dict[str, Any] = {
        "loai_don_thuoc": content.rx_type,
        "ma_don_thuoc": content.code,
        "ho_ten_benh_nhan": _cut(patient.full_name, 500),
    }
    if patient.date_of_birth is not None:
        body["ngay_sinh_benh_nhan"] = _dmy(patient.date_of_birth)
    # ma_dinh_danh_y_te is not sent: we hold no separate health ID, and NĐ 102/2025 makes it the 12-digit personal
    # ID, which QĐ 808's 10-character field cannot carry (§9 U-19); the personal ID goes in its own field.
    if patient.citizen_id is not None and re.fullmatch(r"[0-9]{12}", patient.citizen_id):
        body["ma_dinh_danh_cong_dan"] = patient.citizen_id
    child = _is_child(patient, issued.date())
    if child and patient.weight_kg is not None:
        body["can_nang"] = patient.weight_kg
    body["gioi_tinh"] = _SEX.get(patient.sex or "", 1)
    insurance = _insurance_code(patient.health_insurance_number)
    if insurance is not None:
        body["ma_so_the_bao_hiem_y_te"] = insurance
    if child and patient.guardian is not None:
        body["thong_tin_nguoi_giam_ho"] = _cut(_guardian(patient.guardian), 500)
    body["dia_chi"] = _cut(patient.address, 500)
    body["chan_doan"] = [
        # ket_luan must not be empty: without the doctor's own words, the conclusion is the diagnosis itself
        {"ma_chan_doan": d.code, "ten_chan_doan": _cut(d.name or d.code, 2000),
         "ket_luan": _cut(d.conclusion or d.name or d.code, 2000)}
        for d in content.diagnoses]
    if content.note:
        body["luu_y"] = _cut(content.note, 2000)
    if content.rx_type == "c":
        body["hinh_thuc_dieu_tri"] = OUTPATIENT_TREATMENT
    else:
        # VN-2.7: one batch from the issue day over the longest line (N cancer-pain batches are not issued in v1)
        days = max((line.days for line in content.lines), default=1)
        body["dot_dung_thuoc"] = [{"dot": 1, "tu_ngay": _dmy(issued.date()),
                                   "den_ngay": _dmy(issued.date() + timedelta(days=days - 1))}]
    body["thong_tin_don_thuoc"] = [_drug_line(line) for line in content.lines]
    if content.advice:
        body["loi_dan"] = _cut(content.advice, 2000)
    phone = _domestic_phone(patient.phone)
    if phone is not None:
        body["so_dien_thoai_nguoi_kham_benh"] = phone
    if content.follow_up_days is not None:
        body["ngay_tai_kham"] = content.follow_up_days
    body["ngay_gio_ke_don"] = issued.strftime("%Y-%m-%d %H:%M:%S")
    # §9 U-6: the format the national system expects here is unconfirmed. We send our own Ed25519 signature over
    # SignedContent.canonical(), base64; it proves integrity against our published key, not a qualified e-signature.
    body["signature"] = base64.b64encode(signature).decode()
    return body


def _drug_line(line: SignedLine) -> dict[str, Any]:
    inn, trade = _split_name(line.drug_name)
    return {
        "ma_thuoc": drug_code(line),
        "biet_duoc": _cut(inn, 500),
        "ten_thuoc": _cut(f"{trade or inn} {line.strength}", 500),
        "don_vi_tinh": _cut(line.quantity_unit, 500),
        "so_luong": line.quantity,
        "cach_dung": _cut(usage_text(line), 500),
    }


def drug_code(line: SignedLine) -> str:
    """ma_thuoc (≤ 20): the registration number (số đăng ký), the code the Drug Administration's catalogue lists a
    drug under. Without one (or with a longer one), ``LT`` + the first 18 hex digits of our drug id: stable, ours,
    and recognisably not a registration number. Whether the national system accepts codes outside its catalogue
    is unconfirmed."""
    if line.registration_number and len(line.registration_number) <= 20:
        return line.registration_number
    return "LT" + line.drug_id.hex[:18]


def usage_text(line: SignedLine) -> str:
    """cach_dung, VN-1.8: route, "mỗi lần 01 viên, ngày 02 lần", duration, then the doctor's usage note."""
    dose = instructions(line.dose_per_time, line.dose_unit, line.times_per_day, "")
    route = _ROUTES.get(line.route, line.route)
    text = f"{route}: {dose[:1].lower()}{dose[1:]}, trong {line.days:02d} ngày"
    return f"{text}. {line.usage}" if line.usage else text


def _split_name(drug_name: str) -> tuple[str, str | None]:
    match = _NAME_WITH_TRADE.match(drug_name)
    return (match.group(1), match.group(2).strip()) if match else (drug_name, None)


def _is_child(patient: SignedPatient, on: date) -> bool:
    if patient.date_of_birth is not None:
        return age_in_months(patient.date_of_birth, on) < CHILD_MONTHS
    return patient.age_months is not None and patient.age_months < CHILD_MONTHS


def _guardian(guardian: Guardian) -> str:
    # VN-1.4: name, phone, address of the person who brings the child
    phone = _domestic_phone(guardian.phone)
    return ", ".join(part for part in (guardian.full_name, phone, guardian.address) if part)


def _insurance_code(number: str | None) -> str | None:
    """QĐ 808 has 10 characters for the BHYT number: the social-insurance code (mã số BHXH), which is the last 10
    digits of the 15-character card number (our reading of the card format; unconfirmed for this API)."""
    if number is None:
        return None
    match = _INSURANCE_15.fullmatch(number)
    if match:
        return match.group(1)
    return number if len(number) <= 10 else None


def _domestic_phone(phone: str | None) -> str | None:
    """Digits only, ≤ 12: +84912345678 → 0912345678."""
    if not phone:
        return None
    digits = "0" + phone[3:] if phone.startswith("+84") else re.sub(r"[^0-9]", "", phone)
    return digits if digits.isdigit() and len(digits) <= 12 else None


def _dmy(day: date) -> str:
    return day.strftime("%d/%m/%Y")


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


# ------------------------------------------------------------------------------------------- outbox

async def enqueue(conn: Conn, content: SignedContent, signature: bytes) -> None:
    """Queue the prescription for API-5, in the caller's (signing) transaction."""
    await conn.execute("INSERT INTO national_rx_outbox (prescription_id, payload) VALUES ($1, $2)",
                       content.prescription_id, api5_payload(content, signature))


async def national_status(conn: Conn, prescription_id: UUID) -> NationalSync | None:
    """Where the prescription stands with the national system; None when it was never queued (a draft)."""
    row = await conn.fetchrow(
        "SELECT status, attempts, sent_at, rejection, last_error FROM national_rx_outbox WHERE prescription_id = $1",
        prescription_id)
    if row is None:
        return None
    if row["status"] == "rejected":
        errors = [str(m) for m in row["rejection"] or []]
    elif row["status"] != "sent" and row["last_error"]:
        errors = [row["last_error"]]
    else:
        errors = []
    return NationalSync(status=row["status"], attempts=row["attempts"], sent_at=row["sent_at"], errors=errors)


def retry_delay(attempts: int) -> float:
    """Seconds before the next try after ``attempts`` failed ones: 30 s, 1 min, 2 min … 1 h, ±20 % so rows that
    failed together do not come back together."""
    base: float = min(FIRST_RETRY_S * 2.0 ** max(attempts - 1, 0), MAX_RETRY_S)
    return base * (0.8 + 0.4 * secrets.randbelow(1001) / 1000)


def national_config(settings: Settings) -> NationalConfig:
    return NationalConfig(
        base_url=settings.national_rx_url or f"http://127.0.0.1:{settings.national_rx_sandbox_port}",
        facility_code=settings.national_rx_facility_code, facility_password=settings.national_rx_facility_password,
        app_name=settings.national_rx_app_name, app_key=settings.national_rx_app_key)


_clients: dict[NationalConfig, NationalClient] = {}


def client_for(settings: Settings) -> NationalClient:
    """One client per configuration for the life of the process, so its tokens outlive one run of the job."""
    config = national_config(settings)
    client = _clients.get(config)
    if client is None:
        client = _clients[config] = NationalClient(config)
    return client


class _Claimed(msgspec.Struct):
    prescription_id: UUID
    payload: dict[str, Any]
    attempts: int
    lease_until: datetime
    patient_id: UUID
    doctor_id: UUID
    prescription_status: str
    national_rx_code: str | None
    national_rx_password_enc: bytes | None


class _Outcome(msgspec.Struct):
    kind: Literal["sent", "rejected", "retry"]
    errors: list[str] = []
    already_held: bool = False  # sent: the system had it from an attempt whose answer we never recorded


async def send_due(pool: asyncpg.Pool, settings: Settings, *, limit: int = 20,
                   client: NationalClient | None = None) -> int:
    """Worker job: send up to ``limit`` due rows; returns how many it took (sent, rejected or rescheduled).

    Rows are claimed in one short statement (``FOR UPDATE SKIP LOCKED``, lease by moving ``next_attempt_at``
    forward), sent outside any transaction, and each outcome is recorded in a transaction of its own with its audit
    row. ``client`` defaults to the process-wide client of ``settings``.
    """
    client = client or client_for(settings)
    claimed_at = time.monotonic()
    rows = await pool.fetch(
        """WITH due AS (
             SELECT prescription_id FROM national_rx_outbox
              WHERE status = 'pending' AND next_attempt_at <= now()
              ORDER BY next_attempt_at LIMIT $1 FOR UPDATE SKIP LOCKED)
           UPDATE national_rx_outbox o
              SET next_attempt_at = now() + make_interval(secs => $2), updated_at = now()
             FROM due, prescriptions p, doctors d
            WHERE o.prescription_id = due.prescription_id AND p.id = o.prescription_id AND d.account_id = p.doctor_id
           RETURNING o.prescription_id, o.payload, o.attempts, o.next_attempt_at AS lease_until, p.patient_id,
                     p.doctor_id, p.status AS prescription_status, d.national_rx_code, d.national_rx_password_enc""",
        limit, LEASE_S)
    if not rows:
        return 0
    row_budget_s = WORST_CASE_CALLS * (client.config.connect_timeout_s + client.config.read_timeout_s)
    slots = asyncio.Semaphore(SEND_CONCURRENCY)

    async def one(row: _Claimed) -> None:
        async with slots:
            if time.monotonic() - claimed_at > LEASE_S - row_budget_s:
                return  # too little lease left to finish safely; the row is due again when the lease ends
            outcome = await _attempt(client, settings, row)
            await _record(pool, row, outcome)

    claimed = [msgspec.convert(dict(r), _Claimed) for r in rows]
    await asyncio.gather(*(one(row) for row in claimed))
    return len(claimed)


async def _attempt(client: NationalClient, settings: Settings, row: _Claimed) -> _Outcome:
    if row.prescription_status in ("cancelled", "superseded"):
        return _Outcome("rejected", [WITHHELD])
    if row.national_rx_code is None or row.national_rx_password_enc is None:
        return _Outcome("rejected", [NO_NATIONAL_CODE])
    try:
        password = unseal(settings.data_key, row.national_rx_password_enc, row.doctor_id.bytes).decode()
    except ValueError:
        # the data key changed or the row was copied from elsewhere; an administrator can re-enter the password
        return _Outcome("retry", ["Không mở được mật khẩu liên thông đã lưu của bác sĩ. The doctor's stored national "
                                  "password cannot be opened with LIENTHONG_DATA_KEY; enter it again."])
    code = str(row.payload.get("ma_don_thuoc"))
    try:
        await asyncio.to_thread(client.send_prescription, row.national_rx_code, password, row.payload)
    except NationalRejected as exc:
        if exc.api != "API-5":
            # facility or doctor credentials refused (API-1/API-4): nothing is wrong with the prescription, so it
            # waits for an administrator to fix the account, then goes out on a later attempt
            return _Outcome("retry", [f"{exc.api}: " + "; ".join(exc.messages)])
        return await _after_422(client, code, row.payload, exc)
    except NationalError as exc:
        return _Outcome("retry", [str(exc)])
    return _Outcome("sent")


async def _after_422(client: NationalClient, code: str, payload: dict[str, Any],
                     rejected: NationalRejected) -> _Outcome:
    """A 422 may be the system refusing a code it already accepted (API-R3): an earlier attempt got through but its
    answer was lost (timeout, or a crash before we recorded it). The wording of that message is not published, so
    instead of matching text we ask API-6 whether the system holds this code for this patient."""
    try:
        held = await asyncio.to_thread(client.lookup, code)
    except NationalNotFound:
        return _Outcome("rejected", rejected.messages)
    except NationalUnavailable as exc:
        return _Outcome("retry", [*rejected.messages, f"(could not check with API-6 whether {code} was already "
                                                      f"accepted: {exc})"])
    except NationalRejected as exc:
        log.warning("national lookup refused, cannot tell a duplicate from a rejection code=%s", code)
        return _Outcome("rejected", [*rejected.messages, *exc.messages])
    if held.ho_ten_benh_nhan.casefold().split() == str(payload.get("ho_ten_benh_nhan", "")).casefold().split():
        return _Outcome("sent", already_held=True)
    return _Outcome("rejected", rejected.messages)


async def _record(pool: asyncpg.Pool, row: _Claimed, outcome: _Outcome) -> None:
    code = row.payload.get("ma_don_thuoc")
    async with pool.acquire() as conn, conn.transaction():
        if outcome.kind == "sent":
            attempts = await conn.fetchval(
                """UPDATE national_rx_outbox SET status = 'sent', sent_at = now(), attempts = attempts + 1,
                          last_error = NULL, rejection = NULL, updated_at = now()
                    WHERE prescription_id = $1 AND status = 'pending' RETURNING attempts""", row.prescription_id)
            if attempts is not None:
                log.info("national prescription sent code=%s attempts=%d already_held=%s", code, attempts,
                         outcome.already_held)
                await audit.record(conn, audit.SYSTEM, "prescription.national_sent", target_type="prescription",
                                   target_id=row.prescription_id, subject_patient_id=row.patient_id,
                                   details={"code": code, "attempts": attempts, "already_held": outcome.already_held})
            return
        if outcome.kind == "rejected":
            attempts = await conn.fetchval(
                """UPDATE national_rx_outbox SET status = 'rejected', rejection = $2, attempts = attempts + 1,
                          last_error = NULL, updated_at = now()
                    WHERE prescription_id = $1 AND status = 'pending' RETURNING attempts""",
                row.prescription_id, outcome.errors)
            if attempts is not None:
                log.warning("national prescription rejected code=%s", code)
                await audit.record(conn, audit.SYSTEM, "prescription.national_rejected", target_type="prescription",
                                   target_id=row.prescription_id, subject_patient_id=row.patient_id,
                                   details={"code": code, "attempts": attempts, "errors": outcome.errors})
            return
        attempts = row.attempts + 1
        give_up = attempts >= MAX_ATTEMPTS
        # fenced on our lease: a worker that outlived it must not push back a row another worker now holds
        status = await conn.fetchval(
            """UPDATE national_rx_outbox SET attempts = $3, last_error = $4, updated_at = now(),
                      status = CASE WHEN $5 THEN 'failed' ELSE 'pending' END,
                      next_attempt_at = now() + make_interval(secs => $6)
                WHERE prescription_id = $1 AND status = 'pending' AND next_attempt_at = $2 RETURNING status""",
            row.prescription_id, row.lease_until, attempts, _cut("; ".join(outcome.errors), 2000), give_up,
            0.0 if give_up else retry_delay(attempts))
        log.warning("national prescription not sent code=%s attempts=%d status=%s", code, attempts, status)
        if status == "failed":
            await audit.record(conn, audit.SYSTEM, "prescription.national_failed", target_type="prescription",
                               target_id=row.prescription_id, subject_patient_id=row.patient_id,
                               details={"code": code, "attempts": attempts, "last_error": outcome.errors})
