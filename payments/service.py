"""Payments through VNPay: starting an attempt, the IPN, the Return page, and the one function that settles an
attempt from verified gateway data (used by the IPN and by reconciliation alike, spec §6.1).

State machine of an attempt (``payments.status``)::

    pending ──IPN/querydr 00+00, amount right──▶ paid ──refund requested──▶ refund_pending ──▶ refunded
       │                                                                        │          └─▶ partially_refunded
       ├── customer cancelled, card refused… ──▶ failed                         └─▶ refund_failed
       ├── expired (IPN 11, or querydr after expiry + grace says not paid) ──▶ expired
       └── suspected fraud (07), reversed (04), amount mismatch ──▶ needs_review (a person decides)

Money that arrives after we gave up (the attempt was failed or expired, or its booking was cancelled or released)
is recorded as paid and refunded in full at once: never silently dropped (spec P11). The Return URL never changes
state (P5); only the IPN and querydr do, under the payment's row lock, so duplicate and concurrent IPNs settle once.
"""

from __future__ import annotations

import logging
import secrets
from datetime import UTC, datetime, timedelta
from typing import Any, Literal
from uuid import UUID

import asyncpg
import msgspec

from api import audit
from api import qr as qr_code
from api.audit import AuditContext
from api.auth.principal import Principal
from api.db import Conn
from api.errors import Conflict, NotFound
from api.settings import Settings
from consultations import service as consultations
from notifications.outbox import Notification, enqueue
from payments import refunds
from payments.schemas import Payment, PaymentView
from payments.vnpay import VIETNAM, InvalidSignature, PayRequest, VnpayConfig, order_info, pay_url, verify_callback

log = logging.getLogger("lienthong.payments")

SYSTEM = AuditContext(None, "system", None, "lienthong payments", None)  # actor of gateway-driven changes
Outcome = Literal["paid", "failed", "expired", "needs_review"]
IpnAnswer = tuple[str, str]  # (RspCode, Message) exactly as VNPay's samples word them (spec §4.7)

CONFIRMED: IpnAnswer = ("00", "Confirm Success")
NOT_FOUND: IpnAnswer = ("01", "Order not found")
ALREADY_CONFIRMED: IpnAnswer = ("02", "Order already confirmed")
INVALID_AMOUNT: IpnAnswer = ("04", "invalid amount")
INVALID_SIGNATURE: IpnAnswer = ("97", "Invalid signature")
UNKNOWN_ERROR: IpnAnswer = ("99", "Unknow error")
INPUT_REQUIRED: IpnAnswer = ("99", "Input data required")

PAYMENT_SELECT = """SELECT id, txn_ref, purpose, consultation_id, dispense_id, payer_account_id, pharmacy_id,
    created_by, amount_vnd, status, order_info, pay_url, create_date, expire_date, expires_at, settle_after,
    response_code, transaction_status, vnp_transaction_no, bank_code, paid_at, refunded_vnd, review_reason, created_at
    FROM payments"""


class PaymentNotNeeded(Conflict):
    slug, title = "payment-not-needed", "Nothing to pay"


class PaymentWindowClosed(Conflict):
    slug, title = "payment-window-closed", "Too late to pay"


class PaymentBeingConfirmed(Conflict):
    slug, title = "payment-being-confirmed", "A payment is being confirmed"


def vnpay_config(settings: Settings) -> VnpayConfig:
    sandbox = f"http://127.0.0.1:{settings.vnpay_sandbox_port}"
    return VnpayConfig(pay_url=settings.vnpay_pay_url or f"{sandbox}/paymentv2/vpcpay.html",
                       api_url=settings.vnpay_api_url or f"{sandbox}/merchant_webapi/api/transaction",
                       tmn_code=settings.vnpay_tmn_code, hash_secret=settings.vnpay_hash_secret)


def _now() -> datetime:
    return datetime.now(UTC)


def new_txn_ref() -> str:
    """Letters and digits only (spec §2.6), 22 characters, random: unique per attempt, not guessable."""
    return "LT" + secrets.token_hex(10).upper()


def view(p: Payment, *, with_qr: bool = False) -> PaymentView:
    payable = p.status == "pending" and p.expires_at > _now()
    qr = qr_code.svg(p.pay_url) if payable and with_qr else None
    return PaymentView(id=p.id, purpose=p.purpose, amount_vnd=p.amount_vnd, status=p.status,
                       pay_url=p.pay_url if payable else None, qr_svg=qr, expires_at=p.expires_at.astimezone(VIETNAM),
                       paid_at=p.paid_at.astimezone(VIETNAM) if p.paid_at else None, refunded_vnd=p.refunded_vnd,
                       consultation_id=p.consultation_id, dispense_id=p.dispense_id)


async def payment_by_id(conn: Conn, payment_id: UUID, *, lock: bool = False) -> Payment | None:
    row = await conn.fetchrow(PAYMENT_SELECT + " WHERE id = $1" + (" FOR UPDATE" if lock else ""), payment_id)
    return msgspec.convert(dict(row), Payment) if row else None


async def _payment_by_txn_ref(conn: Conn, txn_ref: str) -> Payment | None:
    row = await conn.fetchrow(PAYMENT_SELECT + " WHERE txn_ref = $1 FOR UPDATE", txn_ref)
    return msgspec.convert(dict(row), Payment) if row else None


async def _open_attempt(conn: Conn, column: str, target_id: UUID) -> Payment | None:
    row = await conn.fetchrow(PAYMENT_SELECT + f" WHERE {column} = $1 AND status = 'pending'", target_id)
    return msgspec.convert(dict(row), Payment) if row else None


# ------------------------------------------------------------------------------------------------ starting

async def _create_attempt(conn: Conn, settings: Settings, *, purpose: str, consultation_id: UUID | None,
                          dispense_id: UUID | None, payer_account_id: UUID | None, pharmacy_id: UUID | None,
                          created_by: UUID, amount_vnd: int, description: str, ip_addr: str,
                          window_ends: datetime, ctx: AuditContext) -> Payment:
    now = _now()
    expires_at = min(now + timedelta(minutes=settings.vnpay_expire_minutes), window_ends)
    txn_ref = new_txn_ref()
    info = order_info(f"{description} {txn_ref}")
    request: PayRequest = pay_url(
        vnpay_config(settings), txn_ref=txn_ref, amount_vnd=amount_vnd, order_info=info,
        return_url=f"{settings.public_url}/payments/vnpay/return", ip_addr=ip_addr, created_at=now,
        expires_at=expires_at)
    payment_id: UUID = await conn.fetchval(
        """INSERT INTO payments (txn_ref, purpose, consultation_id, dispense_id, payer_account_id, pharmacy_id,
                                 created_by, amount_vnd, order_info, pay_url, create_date, expire_date, expires_at,
                                 settle_after)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) RETURNING id""",
        txn_ref, purpose, consultation_id, dispense_id, payer_account_id, pharmacy_id, created_by, amount_vnd,
        info, request.url, request.create_date, request.expire_date, expires_at,
        expires_at + timedelta(minutes=settings.vnpay_grace_minutes))
    await conn.execute("INSERT INTO payment_transitions (payment_id, from_status, to_status, source) "
                       "VALUES ($1, 'new', 'pending', 'api')", payment_id)
    await audit.record(conn, ctx, "payment.started", target_type="payment", target_id=payment_id,
                       details={"purpose": purpose, "amount_vnd": amount_vnd, "txn_ref": txn_ref})
    created = await payment_by_id(conn, payment_id)
    assert created is not None
    return created


def _reuse_or_refuse(existing: Payment | None) -> Payment | None:
    """The open attempt while the customer can still pay it; after its window it is being settled with VNPay
    (a customer may have paid at the last second), so no second attempt may start yet."""
    if existing is None:
        return None
    if existing.expires_at > _now():
        return existing
    wait_s = max(0, int((existing.settle_after - _now()).total_seconds())) + 60
    raise PaymentBeingConfirmed(
        "The previous payment attempt is being confirmed with VNPay; try again in a few minutes.",
        extra={"retry_after_s": wait_s})


async def start_consultation_payment(pool: asyncpg.Pool, settings: Settings, principal: Principal,
                                     consultation_id: UUID, ip_addr: str,
                                     ctx: AuditContext) -> tuple[PaymentView, bool]:
    """(the attempt to pay, whether it is new). Only the account that booked pays, before the deadline."""
    async with pool.acquire() as conn, conn.transaction():
        c = await conn.fetchrow(
            """SELECT booked_by, status, fee_vnd, payment_due_at FROM consultations WHERE id = $1 FOR UPDATE""",
            consultation_id)
        if c is None or c["booked_by"] != principal.account_id:
            raise NotFound("No such consultation of yours.")
        if c["status"] != "awaiting_payment":
            raise PaymentNotNeeded(f"This consultation is {c['status']}; it is not waiting for a payment.")
        if c["payment_due_at"] <= _now():
            raise PaymentWindowClosed("The time to pay for this booking is over; book again.")
        existing = _reuse_or_refuse(await _open_attempt(conn, "consultation_id", consultation_id))
        if existing is not None:
            return view(existing), False
        created = await _create_attempt(
            conn, settings, purpose="consultation", consultation_id=consultation_id, dispense_id=None,
            payer_account_id=principal.account_id, pharmacy_id=None, created_by=principal.account_id,
            amount_vnd=c["fee_vnd"], description="Thanh toan phi kham", ip_addr=ip_addr,
            window_ends=c["payment_due_at"], ctx=ctx)
        return view(created), True


async def start_dispense_payment(pool: asyncpg.Pool, settings: Settings, principal: Principal, dispense_id: UUID,
                                 ip_addr: str, ctx: AuditContext) -> tuple[PaymentView, bool]:
    """A sale's total paid by the customer's phone at the counter (TM-6): the pharmacist shows the QR."""
    async with pool.acquire() as conn, conn.transaction():
        d = await conn.fetchrow(
            "SELECT pharmacy_id, total_vnd, voided_at FROM dispenses WHERE id = $1 FOR UPDATE", dispense_id)
        if d is None or d["pharmacy_id"] != principal.pharmacy_id:
            raise NotFound("No such sale of your pharmacy.")
        if d["voided_at"] is not None:
            raise PaymentNotNeeded("This sale was voided; there is nothing to pay.")
        if d["total_vnd"] <= 0:
            raise PaymentNotNeeded("This sale has no amount to pay.")
        if await conn.fetchval("SELECT 1 FROM payments WHERE dispense_id = $1 AND status NOT IN "
                               "('pending', 'failed', 'expired')", dispense_id):
            raise PaymentNotNeeded("This sale is already paid.")
        existing = _reuse_or_refuse(await _open_attempt(conn, "dispense_id", dispense_id))
        if existing is not None:
            return view(existing, with_qr=True), False
        created = await _create_attempt(
            conn, settings, purpose="dispense", consultation_id=None, dispense_id=dispense_id,
            payer_account_id=None, pharmacy_id=principal.pharmacy_id, created_by=principal.account_id,
            amount_vnd=d["total_vnd"], description="Thanh toan don thuoc", ip_addr=ip_addr,
            window_ends=_now() + timedelta(minutes=settings.vnpay_expire_minutes), ctx=ctx)
        return view(created, with_qr=True), True


async def read_payment(pool: asyncpg.Pool, principal: Principal, payment_id: UUID) -> PaymentView:
    """The payer, the counter's pharmacy, or an administrator."""
    async with pool.acquire() as conn:
        p = await payment_by_id(conn, payment_id)
    allowed = p is not None and (
        principal.role == "admin" or p.payer_account_id == principal.account_id
        or (principal.role == "pharmacist" and p.pharmacy_id is not None and p.pharmacy_id == principal.pharmacy_id))
    if p is None or not allowed:
        raise NotFound("No such payment of yours.")
    return view(p, with_qr=p.purpose == "dispense")


# ------------------------------------------------------------------------------------------------ settling

def _transaction_no(params: dict[str, str]) -> str | None:
    """VNPay's transaction number; "0" (sent when no bank transaction happened, e.g. a cancelled page) is none."""
    number = params.get("vnp_TransactionNo") or ""
    return number if number.strip("0") else None


def classify(params: dict[str, str]) -> Outcome:
    """What a verified result (IPN or querydr) says about the attempt (spec §4.6, §4.8, §4.9)."""
    response, status = params.get("vnp_ResponseCode", ""), params.get("vnp_TransactionStatus", "")
    if response == "00" and status == "00":
        return "paid"
    if response == "07" or status in ("04", "07"):
        return "needs_review"  # money may have been taken: a person checks the merchant portal
    if response == "11" or status == "11":
        return "expired"
    return "failed"


async def _transition(conn: Conn, p: Payment, to_status: str, source: str, *, gateway_data: dict[str, str] | None,
                      note: str | None = None) -> None:
    await conn.execute(
        """INSERT INTO payment_transitions (payment_id, from_status, to_status, source, gateway_data, note)
           VALUES ($1, $2, $3, $4, $5, $6)""", p.id, p.status, to_status, source, gateway_data, note)


async def settle(conn: Conn, settings: Settings, p: Payment, outcome: Outcome, params: dict[str, str],
                 source: Literal["ipn", "querydr"]) -> None:
    """Apply a verified outcome to a locked attempt and its consequences, in the caller's transaction."""
    review = None
    if outcome == "needs_review":
        review = (f"VNPay reported ResponseCode {params.get('vnp_ResponseCode')} / TransactionStatus "
                  f"{params.get('vnp_TransactionStatus')}: money may have been taken; check the merchant portal")
    await conn.execute(
        """UPDATE payments SET status = $2, response_code = $3, transaction_status = $4,
                  vnp_transaction_no = coalesce($5, vnp_transaction_no), bank_code = coalesce($6, bank_code),
                  card_type = coalesce($7, card_type), pay_date = coalesce($8, pay_date),
                  paid_at = CASE WHEN $2 = 'paid' THEN now() ELSE paid_at END,
                  review_reason = coalesce($9, review_reason), updated_at = now()
           WHERE id = $1""",
        p.id, outcome, params.get("vnp_ResponseCode"), params.get("vnp_TransactionStatus"),
        _transaction_no(params), params.get("vnp_BankCode") or None,
        params.get("vnp_CardType") or None, params.get("vnp_PayDate") or None, review)
    await _transition(conn, p, outcome, source, gateway_data=params)
    await audit.record(conn, SYSTEM, f"payment.{outcome}", target_type="payment", target_id=p.id,
                       details={"txn_ref": p.txn_ref, "source": source})
    if outcome == "paid":
        await _deliver(conn, settings, p)


async def _deliver(conn: Conn, settings: Settings, p: Payment) -> None:
    """What the money was for: confirm the booking and tell the payer; or, when it can no longer be delivered,
    give the money back."""
    delivered = True
    if p.consultation_id is not None:
        delivered = await consultations.confirm_payment(conn, p.consultation_id, settings)
    elif p.dispense_id is not None:
        delivered = not await conn.fetchval("SELECT voided_at IS NOT NULL FROM dispenses WHERE id = $1", p.dispense_id)
    if not delivered:
        log.warning("payment arrived after its purpose lapsed; refunding", extra={"payment_id": str(p.id)})
        await refunds.request_refund(conn, p.id, amount_vnd=None, requested_by=None,
                                     reason="paid after the booking or sale was cancelled, released or voided")
        return
    if p.payer_account_id is not None:
        amount = f"{p.amount_vnd:,}".replace(",", ".")
        await enqueue(conn, Notification(
            account_id=p.payer_account_id, kind="payment_confirmed", category="payment", subject=f"payment:{p.id}",
            idempotency_key=f"payment:{p.id}:paid",
            params={"payment_id": str(p.id), "amount": f"{amount} ₫", "amount_plain": f"{amount} dong",
                    "purpose": "phí khám" if p.purpose == "consultation" else "đơn thuốc"}), settings)


async def late_success(conn: Conn, settings: Settings, p: Payment, params: dict[str, str],
                        source: Literal["ipn", "querydr"]) -> None:
    """VNPay says paid, but we had closed the attempt (failed or expired): the customer's money is real. It is
    recorded as paid and delivered if its booking still waits for it, else refunded (spec P11)."""
    await conn.execute(
        """UPDATE payments SET status = 'paid', response_code = $2, transaction_status = $3,
                  vnp_transaction_no = coalesce($4, vnp_transaction_no), paid_at = now(), updated_at = now()
           WHERE id = $1""", p.id, params.get("vnp_ResponseCode"), params.get("vnp_TransactionStatus"),
        _transaction_no(params))
    await _transition(conn, p, "paid", source, gateway_data=params, note=f"late success after {p.status}")
    await audit.record(conn, SYSTEM, "payment.paid_late", target_type="payment", target_id=p.id,
                       details={"txn_ref": p.txn_ref, "source": source, "was": p.status})
    await _deliver(conn, settings, msgspec.structs.replace(p, status="paid"))


async def handle_ipn(pool: asyncpg.Pool, settings: Settings, raw_query: str) -> IpnAnswer:
    """VNPay's server-to-server result (spec §4.6, §6.2): checksum, then the attempt under its row lock, amount,
    state, update, answer. Every call is logged with our answer."""
    params: dict[str, Any] = {}
    txn_ref: str | None = None
    valid = False
    try:
        if not raw_query:
            answer = INPUT_REQUIRED
        else:
            try:
                params = verify_callback(raw_query, vnpay_config(settings))
                valid = True
            except InvalidSignature:
                answer = INVALID_SIGNATURE
            else:
                txn_ref = params.get("vnp_TxnRef")
                answer = await _settle_ipn(pool, settings, params)
    except (asyncpg.PostgresError, OSError):
        log.exception("IPN could not be processed; VNPay will retry")
        answer = UNKNOWN_ERROR
    await _log_callback(pool, "ipn", raw_query, txn_ref, valid, answer[0])
    return answer


async def _settle_ipn(pool: asyncpg.Pool, settings: Settings, params: dict[str, str]) -> IpnAnswer:
    async with pool.acquire() as conn, conn.transaction():
        p = await _payment_by_txn_ref(conn, params.get("vnp_TxnRef", ""))
        if p is None:
            return NOT_FOUND
        outcome = classify(params)
        if params.get("vnp_Amount") != str(p.amount_vnd * 100):
            if p.status == "pending" and outcome == "paid":
                # the customer was charged a different amount than asked: never a confirmation (spec P9)
                await conn.execute(
                    """UPDATE payments SET status = 'needs_review', review_reason = $2, updated_at = now()
                       WHERE id = $1""", p.id,
                    f"IPN amount {params.get('vnp_Amount')} differs from {p.amount_vnd * 100} (×100)")
                await _transition(conn, p, "needs_review", "ipn", gateway_data=params, note="amount mismatch")
            return INVALID_AMOUNT
        if p.status == "pending":
            await settle(conn, settings, p, outcome, params, "ipn")
            return CONFIRMED
        if outcome == "paid" and p.status in ("failed", "expired"):
            await late_success(conn, settings, p, params, "ipn")
        return ALREADY_CONFIRMED


async def _log_callback(pool: asyncpg.Pool, channel: str, raw_query: str, txn_ref: str | None, valid: bool,
                        answer: str | None) -> None:
    # the query without its hash: evidence of what VNPay (or someone) sent, not a replayable credential
    query = "&".join(part for part in raw_query.split("&") if not part.lower().startswith("vnp_securehash"))
    try:
        await pool.execute(
            """INSERT INTO vnpay_callbacks (channel, txn_ref, query, signature_valid, answer)
               VALUES ($1, $2, $3, $4, $5)""",
            channel, txn_ref, query[:4000], valid, answer)
    except (asyncpg.PostgresError, OSError):
        log.exception("could not log a VNPay callback")


class ReturnResult(msgspec.Struct, frozen=True):
    signature_valid: bool
    payment: PaymentView | None
    gateway_response_code: str | None  # what VNPay told the browser; our own status is payment.status


async def handle_return(pool: asyncpg.Pool, settings: Settings, raw_query: str) -> ReturnResult:
    """The browser back from VNPay: verify, then show OUR record of the attempt (never change it: spec §4.5)."""
    try:
        params = verify_callback(raw_query, vnpay_config(settings))
    except InvalidSignature:
        await _log_callback(pool, "return", raw_query, None, False, None)
        return ReturnResult(signature_valid=False, payment=None, gateway_response_code=None)
    txn_ref = params.get("vnp_TxnRef")
    await _log_callback(pool, "return", raw_query, txn_ref, True, None)
    async with pool.acquire() as conn:
        row = await conn.fetchrow(PAYMENT_SELECT + " WHERE txn_ref = $1", txn_ref)
    payment = view(msgspec.convert(dict(row), Payment)) if row else None
    return ReturnResult(signature_valid=True, payment=payment,
                        gateway_response_code=params.get("vnp_ResponseCode"))
