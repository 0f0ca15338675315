"""Reconciliation with VNPay, run by the worker (spec §6.3): attempts still pending after their expiry and a grace
period are settled by asking VNPay (querydr), never closed blindly; refunds are sent and followed until VNPay
reports them done. Gateway calls happen outside any transaction; results are applied in a short one that re-checks
the row. querydr's rate limit (answer 94) pauses every worker process until the same moment (``gateway_backoff``).
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from datetime import UTC, datetime, timedelta
from uuid import UUID

import asyncpg
import msgspec

from api.db import Conn
from api.settings import Settings
from payments.schemas import Payment
from payments.service import PAYMENT_SELECT, classify, late_success, payment_by_id, settle
from payments.vnpay import QueryResult, VnpayBadResponse, VnpayClient, VnpayUnavailable, order_info

log = logging.getLogger("lienthong.payments")

BATCH = 10  # querydr calls per run: the gateway is rate limited, and a run must stay short
LEASE = timedelta(minutes=2)  # a claimed row is not claimed again by another worker meanwhile
RATE_LIMIT_PAUSE = timedelta(minutes=5)  # after a 94 (spec §5.6: ≈5 minutes in the sandbox)
GIVE_UP_CHECKS = 12  # about an hour of "VNPay could not answer": then a person looks (needs_review)
SERVER_IP = "127.0.0.1"  # vnp_IpAddr of server-to-server calls; VNPay does not check it against the caller


def _now() -> datetime:
    return datetime.now(UTC)


async def _paused(pool: asyncpg.Pool) -> bool:
    not_before = await pool.fetchval("SELECT not_before FROM gateway_backoff WHERE gateway = 'vnpay_querydr'")
    return not_before is not None and not_before > _now()


async def _pause(pool: asyncpg.Pool) -> None:
    await pool.execute(
        """INSERT INTO gateway_backoff (gateway, not_before) VALUES ('vnpay_querydr', $1)
           ON CONFLICT (gateway) DO UPDATE SET not_before = excluded.not_before""", _now() + RATE_LIMIT_PAUSE)


def _query(client: VnpayClient, p: Payment) -> QueryResult:
    return client.querydr(txn_ref=p.txn_ref, transaction_date=p.create_date, ip_addr=SERVER_IP,
                          order_info=order_info(f"Truy van giao dich {p.txn_ref}"),
                          request_id=secrets.token_hex(16), transaction_no=p.vnp_transaction_no)


async def settle_overdue(pool: asyncpg.Pool, settings: Settings, client: VnpayClient) -> int:
    """Ask VNPay about pending attempts past expiry + grace; return how many were settled."""
    if await _paused(pool):
        return 0
    claimed = await pool.fetch(
        """UPDATE payments SET next_check_at = now() + $2::interval, checks = checks + 1
            WHERE id IN (SELECT id FROM payments WHERE status = 'pending' AND settle_after <= now()
                           AND (next_check_at IS NULL OR next_check_at <= now())
                         ORDER BY settle_after LIMIT $1 FOR UPDATE SKIP LOCKED)
            RETURNING id, checks""", BATCH, LEASE)
    settled = 0
    for row in claimed:
        async with pool.acquire() as conn:
            p = await payment_by_id(conn, row["id"])
        assert p is not None
        try:
            result = await asyncio.to_thread(_query, client, p)
        except (VnpayUnavailable, VnpayBadResponse) as exc:
            log.warning("querydr failed", extra={"txn_ref": p.txn_ref, "error": type(exc).__name__})
            await _maybe_give_up(pool, p.id, row["checks"], f"querydr failed: {type(exc).__name__}")
            continue
        if result.response_code == "94":
            await _pause(pool)
            break
        if await _apply(pool, settings, p.id, result, row["checks"]):
            settled += 1
    return settled


async def _apply(pool: asyncpg.Pool, settings: Settings, payment_id: UUID, result: QueryResult, checks: int) -> bool:
    async with pool.acquire() as conn, conn.transaction():
        p = await payment_by_id(conn, payment_id, lock=True)
        if p is None or p.status != "pending":
            return False  # an IPN settled it meanwhile
        if result.response_code == "91":
            # VNPay has no such transaction: the customer never got as far as paying
            await settle(conn, settings, p, "expired", {"vnp_ResponseCode": "91", "querydr": "not found"}, "querydr")
            return True
        if result.response_code != "00":
            await _maybe_give_up(conn, p.id, checks, f"querydr answered {result.response_code}")
            return False
        if result.amount_vnd is not None and result.amount_vnd != p.amount_vnd:
            await conn.execute("UPDATE payments SET status = 'needs_review', review_reason = $2, updated_at = now() "
                               "WHERE id = $1", p.id, f"querydr amount {result.amount_vnd} differs from {p.amount_vnd}")
            await conn.execute("INSERT INTO payment_transitions (payment_id, from_status, to_status, source, "
                               "gateway_data, note) VALUES ($1, 'pending', 'needs_review', 'querydr', $2, "
                               "'amount mismatch')", p.id, result.raw)
            return True
        # an answered querydr: vnp_ResponseCode 00 is the call's result, vnp_TransactionStatus the payment's;
        # "01 not completed" after expiry + grace means the customer stopped and nothing was taken
        outcome = "expired" if result.transaction_status == "01" else classify(result.raw)
        await settle(conn, settings, p, outcome, result.raw, "querydr")
        return True


async def _maybe_give_up(conn: asyncpg.Pool | Conn, payment_id: UUID, checks: int, why: str) -> None:
    if checks < GIVE_UP_CHECKS:
        return
    await conn.execute(
        """UPDATE payments SET status = 'needs_review', review_reason = $2, updated_at = now()
           WHERE id = $1 AND status = 'pending'""", payment_id, f"{why}; still unknown after {checks} checks")
    await conn.execute(
        """INSERT INTO payment_transitions (payment_id, from_status, to_status, source, note)
           VALUES ($1, 'pending', 'needs_review', 'system', $2)""", payment_id, why)


async def recheck_closed(pool: asyncpg.Pool, settings: Settings, payment_id: UUID, client: VnpayClient) -> bool:
    """Ask VNPay about one closed attempt (an administrator suspects money was taken after all)."""
    async with pool.acquire() as conn:
        p = await payment_by_id(conn, payment_id)
    if p is None:
        return False
    result = await asyncio.to_thread(_query, client, p)
    if result.response_code != "00" or result.transaction_status != "00" or p.status not in ("failed", "expired"):
        return False
    async with pool.acquire() as conn, conn.transaction():
        locked = await payment_by_id(conn, payment_id, lock=True)
        if locked is None or locked.status not in ("failed", "expired"):
            return False
        await late_success(conn, settings, locked, result.raw, "querydr")
    return True


# ------------------------------------------------------------------------------------------------ refunds

class _RefundRow(msgspec.Struct, frozen=True):
    id: UUID
    payment_id: UUID
    amount_vnd: int
    full_refund: bool
    reason: str
    request_id: str
    status: str
    attempts: int


async def process_refunds(pool: asyncpg.Pool, settings: Settings, client: VnpayClient) -> int:
    """Send requested refunds; follow submitted ones with querydr. Return how many changed state."""
    rows = await pool.fetch(
        """UPDATE payment_refunds SET next_attempt_at = now() + $2::interval, attempts = attempts + 1,
                  updated_at = now()
           WHERE id IN (SELECT id FROM payment_refunds WHERE status IN ('requested', 'submitted', 'unknown')
                          AND next_attempt_at <= now() ORDER BY next_attempt_at LIMIT $1 FOR UPDATE SKIP LOCKED)
           RETURNING id, payment_id, amount_vnd, full_refund, reason, request_id, status, attempts""", BATCH, LEASE)
    changed = 0
    for row in rows:
        refund = msgspec.convert(dict(row), _RefundRow)
        async with pool.acquire() as conn:
            p = await payment_by_id(conn, refund.payment_id)
        assert p is not None
        if refund.status == "requested":
            changed += await _send_refund(pool, client, refund, p)
        elif not await _paused(pool):
            changed += await _follow_refund(pool, client, refund, p)
    return changed


async def _send_refund(pool: asyncpg.Pool, client: VnpayClient, refund: _RefundRow, p: Payment) -> int:
    try:
        result = await asyncio.to_thread(
            client.refund, txn_ref=p.txn_ref, amount_vnd=refund.amount_vnd, full=refund.full_refund,
            transaction_date=p.create_date, transaction_no=p.vnp_transaction_no, create_by="lienthong",
            ip_addr=SERVER_IP, order_info=order_info(f"Hoan tien {p.txn_ref}"), request_id=refund.request_id)
    except (VnpayUnavailable, VnpayBadResponse) as exc:
        # the request may have reached VNPay: never resend blindly; querydr tells whether it did (spec §5.11)
        await pool.execute("UPDATE payment_refunds SET status = 'unknown', last_error = $2 WHERE id = $1",
                           refund.id, type(exc).__name__)
        return 1
    code = result.response_code
    if code in ("00", "94"):  # 94: a refund of it is already being processed: ours, sent before a lost answer
        await pool.execute(
            "UPDATE payment_refunds SET status = 'submitted', response_code = $2, transaction_status = $3 "
            "WHERE id = $1", refund.id, code, result.transaction_status)
        return 1
    if code in ("99", "08") and refund.attempts < 5:  # VNPay trouble or maintenance: later, same request
        await pool.execute("UPDATE payment_refunds SET response_code = $2, request_id = $3 WHERE id = $1",
                           refund.id, code, secrets.token_hex(16))
        return 0
    await _refund_failed(pool, refund, p, f"VNPay refused the refund ({code})")
    return 1


async def _follow_refund(pool: asyncpg.Pool, client: VnpayClient, refund: _RefundRow, p: Payment) -> int:
    try:
        result = await asyncio.to_thread(_query, client, p)
    except (VnpayUnavailable, VnpayBadResponse):
        return 0
    if result.response_code == "94":
        await _pause(pool)
        return 0
    refunded = result.response_code == "00" and result.transaction_type in ("02", "03")
    if refunded and result.transaction_status == "00":
        async with pool.acquire() as conn, conn.transaction():
            locked = await payment_by_id(conn, p.id, lock=True)
            assert locked is not None
            total = locked.refunded_vnd + refund.amount_vnd
            status = "refunded" if total >= locked.amount_vnd else "partially_refunded"
            await conn.execute("UPDATE payment_refunds SET status = 'succeeded', transaction_status = '00' "
                               "WHERE id = $1", refund.id)
            await conn.execute("UPDATE payments SET status = $2, refunded_vnd = $3, updated_at = now() WHERE id = $1",
                               p.id, status, total)
            await conn.execute(
                """INSERT INTO payment_transitions (payment_id, from_status, to_status, source, gateway_data, note)
                   VALUES ($1, $2, $3, 'querydr', $4, $5)""", p.id, locked.status, status, result.raw,
                f"refund of {refund.amount_vnd} done")
        return 1
    if result.transaction_status == "09":
        await _refund_failed(pool, refund, p, "VNPay rejected the refund (TransactionStatus 09)")
        return 1
    if refund.status == "unknown" and not refunded:
        # the lost request never reached VNPay: send it again, under a new request id
        await pool.execute("UPDATE payment_refunds SET status = 'requested', request_id = $2 WHERE id = $1",
                           refund.id, secrets.token_hex(16))
        return 1
    if refund.status == "unknown":
        await pool.execute("UPDATE payment_refunds SET status = 'submitted' WHERE id = $1", refund.id)
        return 1
    return 0  # 05/06: VNPay or the bank is still processing it


async def _refund_failed(pool: asyncpg.Pool, refund: _RefundRow, p: Payment, why: str) -> None:
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("UPDATE payment_refunds SET status = 'failed', last_error = $2 WHERE id = $1",
                           refund.id, why)
        await conn.execute("UPDATE payments SET status = 'refund_failed', review_reason = $2, updated_at = now() "
                           "WHERE id = $1", p.id, why)
        await conn.execute(
            """INSERT INTO payment_transitions (payment_id, from_status, to_status, source, note)
               VALUES ($1, 'refund_pending', 'refund_failed', 'refund', $2)""", p.id, why)


async def overdue_pending(pool: asyncpg.Pool) -> int:
    return int(await pool.fetchval(
        "SELECT count(*) FROM payments WHERE status = 'pending' AND settle_after <= now()"))


async def reviewable(conn: Conn) -> list[Payment]:
    rows = await conn.fetch(PAYMENT_SELECT + " WHERE status IN ('needs_review', 'refund_failed') "
                            "ORDER BY created_at DESC LIMIT 200")
    return [msgspec.convert(dict(r), Payment) for r in rows]
