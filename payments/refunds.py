"""Asking for a refund, in the caller's transaction: a doctor cancelling, a voided sale, a payment that arrived
after its booking was released, an administrator. The worker sends it to VNPay afterwards and follows it up
(``payments.reconcile``); nothing here calls the gateway, so a refund is never lost to a network error mid-request.
"""

from __future__ import annotations

import secrets
from uuid import UUID

from api.db import Conn
from api.errors import Conflict, InvalidInput

# what is already paid back or on its way
_REFUNDABLE = ("paid", "partially_refunded")


class RefundNotPossible(Conflict):
    slug, title = "refund-not-possible", "Refund not possible"


async def request_refund(conn: Conn, payment_id: UUID, *, amount_vnd: int | None, reason: str,
                         requested_by: UUID | None) -> UUID:
    """Queue a refund of ``amount_vnd`` (None: all that remains) of a paid payment; the payment row is locked, so
    two requests cannot together refund more than was paid."""
    row = await conn.fetchrow(
        "SELECT status, amount_vnd, refunded_vnd FROM payments WHERE id = $1 FOR UPDATE", payment_id)
    if row is None or row["status"] not in _REFUNDABLE:
        state = row["status"] if row else "unknown"
        raise RefundNotPossible(f"Only a paid payment can be refunded; this one is {state}.")
    if await conn.fetchval("SELECT 1 FROM payment_refunds WHERE payment_id = $1 AND status IN ('requested', "
                           "'submitted')", payment_id):
        raise RefundNotPossible("A refund of this payment is already on its way; wait for it to finish.")
    remaining = row["amount_vnd"] - row["refunded_vnd"]
    amount = remaining if amount_vnd is None else amount_vnd
    if not 0 < amount <= remaining:
        raise InvalidInput("body.amount_vnd", f"A refund must be between 1 and {remaining:,} đồng (what remains).")
    refund_id: UUID = await conn.fetchval(
        """INSERT INTO payment_refunds (payment_id, amount_vnd, full_refund, reason, requested_by, request_id)
           VALUES ($1, $2, $3, $4, $5, $6) RETURNING id""",
        payment_id, amount, amount == row["amount_vnd"], reason, requested_by, secrets.token_hex(16))
    await conn.execute(
        """UPDATE payments SET status = 'refund_pending', updated_at = now() WHERE id = $1""", payment_id)
    await conn.execute(
        """INSERT INTO payment_transitions (payment_id, from_status, to_status, source, note)
           VALUES ($1, $2, 'refund_pending', 'refund', $3)""", payment_id, row["status"],
        f"refund of {amount} requested: {reason}")
    return refund_id


async def refund_paid(conn: Conn, *, consultation_id: UUID | None = None, dispense_id: UUID | None = None,
                      reason: str) -> list[UUID]:
    """Refund in full whatever was paid for a consultation or a sale that will not be delivered (doctor cancelled or
    never came, sale voided). Nothing paid: nothing to do."""
    paid = await conn.fetch(
        """SELECT id FROM payments WHERE status IN ('paid', 'partially_refunded')
             AND (consultation_id = $1 OR dispense_id = $2)""", consultation_id, dispense_id)
    return [await request_refund(conn, row["id"], amount_vnd=None, reason=reason, requested_by=None) for row in paid]
