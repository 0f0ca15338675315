"""Wire and row shapes of payments."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal
from uuid import UUID

import msgspec

PaymentStatus = Literal["pending", "paid", "failed", "expired", "needs_review", "refund_pending", "refunded",
                        "partially_refunded", "refund_failed"]
Purpose = Literal["consultation", "dispense"]


class Payment(msgspec.Struct, frozen=True):
    id: UUID
    txn_ref: str
    purpose: Purpose
    consultation_id: UUID | None
    dispense_id: UUID | None
    payer_account_id: UUID | None
    pharmacy_id: UUID | None
    created_by: UUID
    amount_vnd: int
    status: PaymentStatus
    order_info: str
    pay_url: str
    create_date: str
    expire_date: str
    expires_at: datetime
    settle_after: datetime
    response_code: str | None
    transaction_status: str | None
    vnp_transaction_no: str | None
    bank_code: str | None
    paid_at: datetime | None
    refunded_vnd: int
    review_reason: str | None
    created_at: datetime


class PaymentView(msgspec.Struct, frozen=True):
    """What the payer (or the pharmacy's counter) sees."""

    id: UUID
    purpose: Purpose
    amount_vnd: int
    status: PaymentStatus
    pay_url: str | None  # only while it can still be paid
    qr_svg: str | None  # the pay URL as a QR code, for the customer's phone at a pharmacy counter
    expires_at: datetime  # Asia/Ho_Chi_Minh
    paid_at: datetime | None
    refunded_vnd: int
    consultation_id: UUID | None
    dispense_id: UUID | None


class RefundIn(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    reason: Annotated[str, msgspec.Meta(min_length=1, max_length=500)]
    amount_vnd: Annotated[int, msgspec.Meta(gt=0)] | None = None  # None: all that remains


class Refund(msgspec.Struct, frozen=True):
    id: UUID
    payment_id: UUID
    amount_vnd: int
    full_refund: bool
    reason: str
    status: Literal["requested", "submitted", "succeeded", "failed", "unknown"]
    response_code: str | None
    created_at: datetime


class Transition(msgspec.Struct, frozen=True):
    from_status: str
    to_status: str
    source: str
    note: str | None
    at: datetime


class ReviewItem(msgspec.Struct, frozen=True):
    payment: Payment
    problem: str
    transitions: list[Transition]


class ReconciliationReport(msgspec.Struct, frozen=True):
    needs_review: list[ReviewItem]  # contradictions, amount mismatches, refunds VNPay refused
    pending_overdue: int  # still pending past expiry + grace: VNPay could not be asked yet
    rejected_callbacks_24h: dict[str, int]  # answer code -> count (97 forged/corrupt, 04 amount, 01 unknown)
