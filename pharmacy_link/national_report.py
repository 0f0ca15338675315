"""Reporting each sale to the national e-prescription system (QĐ 808 API-7, spec PH-3/PH-4) through an outbox
(API-R3), the way ``eprescription.national_sync`` sends prescriptions (API-5).

``enqueue_sale`` stores the API-7 body in the dispense transaction. The worker's ``send_due_sales`` sends it after
commit, once the national system holds the prescription (its API-5 row is sent); it retries transient failures with
backoff and keeps a 404/422 for the pharmacy to read (``sale_report_status``). ``withhold_sale`` keeps a voided sale
from going out; a sale voided after it went out is flagged ``correction_needed``, because QĐ 808 has no call to
withdraw or correct a sale report.

API-7 carries no idempotency key and API-6 does not say what was sold (§9 U-8), so an attempt whose answer was lost
(timeout, dropped connection) cannot be checked and is sent again: the national system may then hold the report
twice, both with the same ``ma_hoa_don``. For the same reason a sale withheld after such an attempt may be held
there after all; its last error stays on the row for whoever reads the status.
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import datetime
from typing import Any, Literal
from uuid import UUID

import asyncpg
import msgspec

from api import audit
from api.db import Conn
from api.settings import Settings
from eprescription.national import NationalClient, NationalError, NationalNotFound, NationalRejected, SoldReport
from eprescription.national_sync import (
    LEASE_S,
    MAX_ATTEMPTS,
    SEND_CONCURRENCY,
    client_for,
    drug_code,
    retry_delay,
    usage_text,
)
from eprescription.schemas import SignedLine

log = logging.getLogger(__name__)

WORST_CASE_CALLS = 1  # API-7 needs no login: one call, so a row needs one call's timeouts of lease left
# API-7 fields that come from the pharmacy registry, with what to tell the administrator when one is missing
_PHARMACY_FIELDS = (
    ("ma_dinh_danh_co_so_cung_ung_thuoc", "mã định danh cơ sở cung ứng thuốc", "national outlet id"),
    ("so_dien_thoai_co_so_cung_ung_thuoc", "số điện thoại", "phone number"),
    ("dia_chi_co_so_cung_ung_thuoc", "địa chỉ", "address"),
)
WAITING_FOR_PRESCRIPTION = ("Chờ đơn thuốc được gửi lên hệ thống đơn thuốc quốc gia (API-5) trước. Waiting for the "
                            "prescription itself to reach the national system first.")
CORRECTION_NEEDED = ("Đã báo bán lên hệ thống đơn thuốc quốc gia trước khi hủy; QĐ 808 không có chức năng hủy hoặc "
                     "sửa báo cáo bán, cần điều chỉnh trực tiếp trên hệ thống quốc gia. Reported to the national "
                     "system before the sale was voided: QĐ 808 has no call to withdraw or correct a sale report, so "
                     "it must be corrected on the national system by hand.")


def missing_pharmacy_fact(field: str) -> str:
    """Why a sale from a pharmacy the registry lacks ``field`` for was not reported."""
    vietnamese, english = next((vi, en) for name, vi, en in _PHARMACY_FIELDS if name == field)
    return (f"Nhà thuốc chưa khai báo {vietnamese} ({field}); quản trị viên cần bổ sung. The pharmacy registry has no "
            f"{english} for this pharmacy; an administrator must enter it. The sale was not reported.")


def prescription_not_held(api5_status: str) -> str:
    return (f"Hệ thống đơn thuốc quốc gia không tiếp nhận đơn thuốc này (API-5: {api5_status}) nên không thể báo bán. "
            f"The national system never accepted the prescription itself (API-5 {api5_status}), so it cannot take "
            "a sale against it.")


class SaleReportStatus(msgspec.Struct):
    """Where a sale stands with the national system, for the dispense view."""

    status: Literal["pending", "sent", "rejected", "failed", "withheld"]
    attempts: int
    sent_at: datetime | None
    errors: list[str]  # danh_sach_cac_loi of a 404/422, our reason for not sending, or the last transient error
    correction_needed: bool  # voided after it was reported: fix it on the national system by hand


# ------------------------------------------------------------------------------------------- API-7 body

class _SoldRow(msgspec.Struct):
    """One dispense line with the prescription line it answers, its drugs, the sale and the pharmacy."""

    prescription_id: UUID
    code: str
    invoice_number: str
    pharmacy_name: str
    national_outlet_id: str | None
    pharmacy_phone: str | None
    pharmacy_address: str
    sold_quantity: int
    sold_drug_id: UUID
    sold_inn: str
    sold_trade_names: list[str]
    sold_strength: str
    sold_registration_number: str | None
    # the prescribed line, as SignedLine has it
    position: int
    drug_id: UUID
    drug_name: str
    strength: str
    dosage_form: str
    route: str
    atc_code: str | None
    registration_number: str | None
    control_class: str
    dose_per_time: float
    dose_unit: str
    times_per_day: int
    days: int
    quantity: int
    quantity_unit: str
    usage: str


_SALE = """
SELECT d.prescription_id, p.code, d.invoice_number, ph.name AS pharmacy_name, ph.national_outlet_id,
       ph.phone AS pharmacy_phone, ph.address AS pharmacy_address,
       dl.quantity AS sold_quantity, sd.id AS sold_drug_id, sd.inn AS sold_inn, sd.trade_names AS sold_trade_names,
       sd.strength AS sold_strength, sd.registration_number AS sold_registration_number,
       pl.position, pl.drug_id, pl.drug_name, pl.strength, pl.dosage_form, pl.route, pd.atc_code,
       pd.registration_number, pd.control_class, pl.dose_per_time::float8 AS dose_per_time, pl.dose_unit,
       pl.times_per_day, pl.days, pl.quantity, pl.quantity_unit, pl.usage
FROM dispenses d
JOIN prescriptions p ON p.id = d.prescription_id
JOIN pharmacies ph ON ph.id = d.pharmacy_id
JOIN dispense_lines dl ON dl.dispense_id = d.id
JOIN prescription_lines pl ON pl.prescription_id = d.prescription_id AND pl.position = dl.position
JOIN drugs pd ON pd.id = pl.drug_id
JOIN drugs sd ON sd.id = dl.drug_id
WHERE d.id = $1
ORDER BY dl.position"""


def _sold_line(row: _SoldRow) -> dict[str, Any]:
    # drug_code is what API-5 put in ma_thuoc; registration numbers are part of the catalogue's drug key, so a
    # catalogue import never changes the one a prescription's drug had when it was sent
    prescribed = msgspec.convert({name: getattr(row, name) for name in SignedLine.__struct_fields__}, SignedLine)
    # PH-4: the drug handed out, which is the prescribed one unless substituted (dispense_lines.substitute_differs)
    sold = msgspec.structs.replace(prescribed, drug_id=row.sold_drug_id,
                                   registration_number=row.sold_registration_number)
    trade = row.sold_trade_names[0] if row.sold_trade_names else row.sold_inn
    return {
        "ma_thuoc_da_ke_don": drug_code(prescribed),
        "ma_thuoc": drug_code(sold),
        "biet_duoc": _cut(row.sold_inn, 200),
        "ten_thuoc": _cut(f"{trade} {row.sold_strength}", 200),
        "don_vi_tinh": _cut(row.quantity_unit, 200),
        "so_luong": row.quantity,
        "so_luong_ban": row.sold_quantity,
        "cach_dung": _cut(usage_text(prescribed), 200),
    }


def _api7_payload(rows: list[_SoldRow]) -> dict[str, Any]:
    """The QĐ 808 IX.3 body of one sale: the lines it sold. Pharmacy facts the registry lacks are left out, and the
    worker refuses to send without them (``missing_pharmacy_fact``)."""
    sale = rows[0]
    body: dict[str, Any] = {"ma_don_thuoc": sale.code, "thong_tin_thuoc": [_sold_line(row) for row in rows]}
    if sale.national_outlet_id:
        body["ma_dinh_danh_co_so_cung_ung_thuoc"] = sale.national_outlet_id
    body["ten_co_so_cung_ung_thuoc"] = _cut(sale.pharmacy_name, 2000)
    if sale.pharmacy_phone:
        body["so_dien_thoai_co_so_cung_ung_thuoc"] = sale.pharmacy_phone
    if sale.pharmacy_address:
        body["dia_chi_co_so_cung_ung_thuoc"] = _cut(sale.pharmacy_address, 2000)
    body["ma_hoa_don"] = sale.invoice_number
    return body


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


# ------------------------------------------------------------------------------------------- outbox

async def enqueue_sale(conn: Conn, dispense_id: UUID) -> None:
    """Queue the sale for API-7, in the caller's (dispense) transaction. A pharmacy without a national outlet id
    still sells: its report is queued and refused by the worker with a message saying what to fill in."""
    rows = [msgspec.convert(dict(r), _SoldRow) for r in await conn.fetch(_SALE, dispense_id)]
    if not rows:
        raise LookupError(f"dispense {dispense_id} does not exist or has no lines")
    await conn.execute(
        "INSERT INTO national_sale_outbox (dispense_id, prescription_id, payload) VALUES ($1, $2, $3)",
        dispense_id, rows[0].prescription_id, _api7_payload(rows))


async def withhold_sale(conn: Conn, dispense_id: UUID) -> bool:
    """The sale was voided (in the caller's transaction): make sure its report never goes out.

    True when the national system does not hold the sale: it had not gone out (now ``withheld``), was refused, or
    was never queued. False when it went out: the row is flagged ``correction_needed`` for an administrator to fix
    on the national system. Also False while a worker is sending it: the worker then records which it was.
    """
    row = await conn.fetchrow(
        """UPDATE national_sale_outbox s SET voided_at = now(), updated_at = now(),
                  status = CASE WHEN s.status = 'pending' AND (s.leased_until IS NULL OR s.leased_until <= now())
                                THEN 'withheld' ELSE s.status END
             FROM prescriptions p
            WHERE s.dispense_id = $1 AND s.voided_at IS NULL AND p.id = s.prescription_id
        RETURNING s.status, s.correction_needed, s.payload ->> 'ma_don_thuoc' AS code,
                  s.payload ->> 'ma_hoa_don' AS invoice, p.patient_id""", dispense_id)
    if row is None:
        return True
    details = {"code": row["code"], "invoice": row["invoice"]}
    if row["status"] == "withheld":
        await _audit(conn, dispense_id, row["patient_id"], "withheld", details)
        return True
    if row["correction_needed"]:
        log.warning("voided sale was already reported to the national system dispense=%s code=%s", dispense_id,
                    row["code"])
        await _audit(conn, dispense_id, row["patient_id"], "correction_needed", details)
        return False
    return row["status"] in ("rejected", "failed")


async def sale_report_status(conn: Conn, dispense_id: UUID) -> SaleReportStatus | None:
    """Where the sale stands with the national system; None when it was never queued."""
    row = await conn.fetchrow(
        """SELECT s.status, s.attempts, s.sent_at, s.last_error, s.rejection, s.correction_needed,
                  r.status AS api5_status
           FROM national_sale_outbox s LEFT JOIN national_rx_outbox r ON r.prescription_id = s.prescription_id
           WHERE s.dispense_id = $1""", dispense_id)
    if row is None:
        return None
    if row["correction_needed"]:
        errors = [CORRECTION_NEEDED]
    elif row["status"] == "rejected":
        errors = [str(m) for m in row["rejection"] or []]
    elif row["status"] == "pending" and row["api5_status"] == "pending":
        errors = [WAITING_FOR_PRESCRIPTION]
    elif row["status"] != "sent" and row["last_error"]:
        errors = [row["last_error"]]
    else:
        errors = []
    return SaleReportStatus(status=row["status"], attempts=row["attempts"], sent_at=row["sent_at"], errors=errors,
                            correction_needed=row["correction_needed"])


class _Claimed(msgspec.Struct):
    dispense_id: UUID
    payload: dict[str, Any]
    attempts: int
    lease_until: datetime
    patient_id: UUID
    api5_status: str | None  # None: no API-5 row (issued before that outbox existed)


class _Outcome(msgspec.Struct):
    kind: Literal["sent", "rejected", "retry"]
    errors: list[str] = []


async def send_due_sales(pool: asyncpg.Pool, settings: Settings, *, limit: int = 20,
                         client: NationalClient | None = None) -> int:
    """Worker job: report up to ``limit`` due sales; returns how many it took (sent, rejected or rescheduled).

    A sale is due once the national system holds its prescription: API-7 against a code it does not know is a 404.
    Rows are claimed in one short statement (``FOR UPDATE SKIP LOCKED``, then a lease in ``leased_until``), sent
    outside any transaction, and each outcome is recorded in a transaction of its own with its audit row.
    ``client`` defaults to the process-wide client of ``settings``.
    """
    client = client or client_for(settings)
    claimed_at = time.monotonic()
    rows = await pool.fetch(
        """WITH due AS (
             SELECT s.dispense_id FROM national_sale_outbox s
              WHERE s.status = 'pending' AND s.next_attempt_at <= now()
                AND (s.leased_until IS NULL OR s.leased_until <= now())
                AND NOT EXISTS (SELECT FROM national_rx_outbox r
                                 WHERE r.prescription_id = s.prescription_id AND r.status = 'pending')
              ORDER BY s.next_attempt_at LIMIT $1 FOR UPDATE OF s SKIP LOCKED)
           UPDATE national_sale_outbox s
              SET leased_until = now() + make_interval(secs => $2), updated_at = now()
             FROM due, prescriptions p LEFT JOIN national_rx_outbox r ON r.prescription_id = p.id
            WHERE s.dispense_id = due.dispense_id AND p.id = s.prescription_id
           RETURNING s.dispense_id, s.payload, s.attempts, s.leased_until AS lease_until, p.patient_id,
                     r.status AS api5_status""",
        limit, LEASE_S)
    if not rows:
        return 0
    row_budget_s = WORST_CASE_CALLS * (client.config.connect_timeout_s + client.config.read_timeout_s)
    slots = asyncio.Semaphore(SEND_CONCURRENCY)

    async def one(row: _Claimed) -> None:
        async with slots:
            if time.monotonic() - claimed_at > LEASE_S - row_budget_s:
                return  # too little lease left to finish safely; the row is due again when the lease ends
            await _record(pool, row, await _attempt(client, row))

    claimed = [msgspec.convert(dict(r), _Claimed) for r in rows]
    await asyncio.gather(*(one(row) for row in claimed))
    return len(claimed)


async def _attempt(client: NationalClient, row: _Claimed) -> _Outcome:
    if row.api5_status in ("rejected", "failed"):
        return _Outcome("rejected", [prescription_not_held(row.api5_status)])
    missing = [missing_pharmacy_fact(field) for field, _, _ in _PHARMACY_FIELDS if not row.payload.get(field)]
    if missing:
        return _Outcome("rejected", missing)
    try:
        await asyncio.to_thread(client.report_sold, msgspec.convert(row.payload, SoldReport))
    except (NationalRejected, NationalNotFound) as exc:
        return _Outcome("rejected", exc.messages)
    except NationalError as exc:
        return _Outcome("retry", [str(exc)])
    return _Outcome("sent")


async def _record(pool: asyncpg.Pool, row: _Claimed, outcome: _Outcome) -> None:
    details: dict[str, Any] = {"code": row.payload.get("ma_don_thuoc"), "invoice": row.payload.get("ma_hoa_don")}
    async with pool.acquire() as conn, conn.transaction():
        if outcome.kind == "sent":
            # also from 'withheld': a void that lost the race with this send cannot unsend it, so the row says what
            # the national system holds, and correction_needed follows from the void
            done = await conn.fetchrow(
                """UPDATE national_sale_outbox SET status = 'sent', sent_at = now(), attempts = attempts + 1,
                          leased_until = NULL, last_error = NULL, rejection = NULL, updated_at = now()
                    WHERE dispense_id = $1 AND status IN ('pending', 'withheld')
                RETURNING attempts, correction_needed""", row.dispense_id)
            if done is not None:
                log.info("national sale reported dispense=%s attempts=%d", row.dispense_id, done["attempts"])
                await _audit(conn, row.dispense_id, row.patient_id, "reported",
                             {**details, "attempts": done["attempts"]})
                if done["correction_needed"]:
                    log.warning("voided sale reached the national system dispense=%s", row.dispense_id)
                    await _audit(conn, row.dispense_id, row.patient_id, "correction_needed", details)
            return
        if outcome.kind == "rejected":
            attempts = await conn.fetchval(
                """UPDATE national_sale_outbox SET status = 'rejected', rejection = $2, attempts = attempts + 1,
                          leased_until = NULL, last_error = NULL, updated_at = now()
                    WHERE dispense_id = $1 AND status = 'pending' RETURNING attempts""",
                row.dispense_id, outcome.errors)
            if attempts is not None:
                log.warning("national sale report rejected dispense=%s", row.dispense_id)
                await _audit(conn, row.dispense_id, row.patient_id, "rejected",
                             {**details, "attempts": attempts, "errors": outcome.errors})
            return
        attempts = row.attempts + 1
        give_up = attempts >= MAX_ATTEMPTS
        # fenced on our lease: a worker that outlived it must not push back a row another worker now holds. A sale
        # voided while this attempt was out is withheld now that the attempt failed.
        status = await conn.fetchval(
            """UPDATE national_sale_outbox SET attempts = $3, last_error = $4, leased_until = NULL, updated_at = now(),
                      status = CASE WHEN voided_at IS NOT NULL THEN 'withheld' WHEN $5 THEN 'failed'
                                    ELSE 'pending' END,
                      next_attempt_at = now() + make_interval(secs => $6)
                WHERE dispense_id = $1 AND status = 'pending' AND leased_until = $2 RETURNING status""",
            row.dispense_id, row.lease_until, attempts, _cut("; ".join(outcome.errors), 2000), give_up,
            0.0 if give_up else retry_delay(attempts))
        log.warning("national sale not reported dispense=%s attempts=%d status=%s", row.dispense_id, attempts,
                    status)
        if status in ("failed", "withheld"):
            await _audit(conn, row.dispense_id, row.patient_id, status,
                         {**details, "attempts": attempts, "last_error": outcome.errors})


async def _audit(conn: Conn, dispense_id: UUID, patient_id: UUID, outcome: str, details: dict[str, Any]) -> None:
    await audit.record(conn, audit.SYSTEM, f"dispense.national_{outcome}", target_type="dispense",
                       target_id=dispense_id,
                       subject_patient_id=patient_id, details=details)
