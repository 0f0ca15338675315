"""HTTP endpoints of payments. Who may call: see each handler's guards; VNPay's IPN and Return are public and
trusted only through their checksum."""

from __future__ import annotations

import html
import ipaddress
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from litestar import Controller, MediaType, Request, Response, get, post
from litestar.openapi.datastructures import ResponseSpec
from litestar.openapi.spec import OpenAPIMediaType, OpenAPIResponse, OpenAPIType, Operation, Schema
from litestar.params import FromPath, JSONBody
from litestar.status_codes import HTTP_200_OK, HTTP_201_CREATED, HTTP_202_ACCEPTED

from api.audit import audit_context, record
from api.auth.principal import Principal, requires_role
from api.deps import AppSettings, Pool
from api.errors import NotFound
from payments import reconcile, refunds, service
from payments.schemas import (
    PaymentView,
    ReconciliationReport,
    Refund,
    RefundIn,
    ReviewItem,
    Transition,
)

Req = Request[Principal, Any, Any]


def _client_ip(request: Request[Any, Any, Any]) -> str:
    """The customer's address for vnp_IpAddr; a peer that is not an IP (a unix socket with no proxy header, a test
    client) is sent as loopback rather than failing the payment: VNPay records it, it does not route by it."""
    host = request.client.host if request.client else ""
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        return "127.0.0.1"


def _raw_query(request: Request[Any, Any, Any]) -> str:
    # the undecoded query: the checksum is over exactly what VNPay sent (spec §3.3)
    raw: bytes = request.scope.get("query_string", b"")
    return raw.decode("latin-1")


class PaymentController(Controller):
    path = "/payments"
    tags = ["payments"]

    @post("/consultations/{consultation_id:uuid}", guards=[requires_role("patient")], status_code=HTTP_201_CREATED,
          summary="Patient (the account that booked): pay a booking's fee; returns VNPay's payment page URL")
    async def pay_consultation(self, consultation_id: FromPath[UUID], request: Req, pool: Pool,
                               settings: AppSettings) -> Response[PaymentView]:
        payment, created = await service.start_consultation_payment(
            pool, settings, request.user, consultation_id, _client_ip(request), audit_context(request))
        return Response(payment, status_code=HTTP_201_CREATED if created else HTTP_200_OK)

    @post("/dispenses/{dispense_id:uuid}", guards=[requires_role("pharmacist")], status_code=HTTP_201_CREATED,
          summary="Pharmacist: take a sale's payment by VNPay at the counter; returns the QR for the customer")
    async def pay_dispense(self, dispense_id: FromPath[UUID], request: Req, pool: Pool,
                           settings: AppSettings) -> Response[PaymentView]:
        payment, created = await service.start_dispense_payment(
            pool, settings, request.user, dispense_id, _client_ip(request), audit_context(request))
        return Response(payment, status_code=HTTP_201_CREATED if created else HTTP_200_OK)

    @get("/{payment_id:uuid}", guards=[requires_role("patient", "pharmacist", "admin")],
         summary="The payer, the counter's pharmacists or an administrator: a payment's status")
    async def read(self, payment_id: FromPath[UUID], request: Req, pool: Pool) -> PaymentView:
        return await service.read_payment(pool, request.user, payment_id)

    @post("/{payment_id:uuid}/refunds", guards=[requires_role("admin")], status_code=HTTP_202_ACCEPTED,
          summary="Admin: refund a paid payment in full or in part (sent to VNPay by the worker)")
    async def refund(self, payment_id: FromPath[UUID], data: JSONBody[RefundIn], request: Req, pool: Pool) -> Refund:
        async with pool.acquire() as conn, conn.transaction():
            if await service.payment_by_id(conn, payment_id) is None:
                raise NotFound("No such payment.")
            refund_id = await refunds.request_refund(conn, payment_id, amount_vnd=data.amount_vnd,
                                                     reason=data.reason, requested_by=request.user.account_id)
            await record(conn, audit_context(request), "payment.refund_requested", target_type="payment",
                         target_id=payment_id, details={"amount_vnd": data.amount_vnd, "reason": data.reason})
            row = await conn.fetchrow(
                """SELECT id, payment_id, amount_vnd, full_refund, reason, status, response_code, created_at
                   FROM payment_refunds WHERE id = $1""", refund_id)
        assert row is not None
        return Refund(**dict(row))

    @get("/{payment_id:uuid}/refunds", guards=[requires_role("admin")], summary="Admin: a payment's refunds")
    async def refunds_of(self, payment_id: FromPath[UUID], pool: Pool) -> list[Refund]:
        rows = await pool.fetch(
            """SELECT id, payment_id, amount_vnd, full_refund, reason, status, response_code, created_at
               FROM payment_refunds WHERE payment_id = $1 ORDER BY created_at""", payment_id)
        return [Refund(**dict(r)) for r in rows]


@dataclass
class _HtmlOrJson(Operation):
    """The Return page is HTML for the browser, or the same record as JSON for a client that accepts JSON."""

    def __post_init__(self) -> None:
        ok = (self.responses or {}).get("200")
        if isinstance(ok, OpenAPIResponse) and ok.content is not None:
            ok.content[MediaType.HTML.value] = OpenAPIMediaType(schema=Schema(type=OpenAPIType.STRING))


class VnpayController(Controller):
    path = "/payments/vnpay"
    tags = ["payments"]

    @get("/ipn", opt={"public": True}, summary="VNPay only (checksum-verified): the payment result, server to server")
    async def ipn(self, request: Request[Any, Any, Any], pool: Pool, settings: AppSettings) -> dict[str, str]:
        code, message = await service.handle_ipn(pool, settings, _raw_query(request))
        return {"RspCode": code, "Message": message}  # always HTTP 200, as VNPay's samples answer

    @get("/return", opt={"public": True}, operation_class=_HtmlOrJson,
         responses={200: ResponseSpec(service.ReturnResult, generate_examples=False,
                                      description="Our record of the payment")},
         summary="Anyone (checksum-verified): the page the customer's browser comes back to; shows our record of "
                 "the payment, changes nothing")
    async def return_page(self, request: Request[Any, Any, Any], pool: Pool,
                          settings: AppSettings) -> Response[Any]:
        result = await service.handle_return(pool, settings, _raw_query(request))
        if "application/json" in request.headers.get("accept", ""):
            return Response(result)
        return Response(_return_html(result), media_type=MediaType.HTML)


_WORDS = {
    "pending": ("Đang xác nhận thanh toán…", "Confirming the payment…"),
    "paid": ("Thanh toán thành công", "Payment successful"),
    "failed": ("Thanh toán không thành công", "Payment not completed"),
    "expired": ("Đã hết thời gian thanh toán", "The payment window has closed"),
    "needs_review": ("Thanh toán đang được kiểm tra", "The payment is being checked"),
}


def _return_html(result: service.ReturnResult) -> str:
    if not result.signature_valid or result.payment is None:
        title, detail, refresh = ("Không xác minh được kết quả thanh toán", "We could not verify this payment result.",
                                  "")
    else:
        status = result.payment.status
        vi, en = _WORDS.get(status, ("Đã ghi nhận", "Recorded"))
        title = vi
        detail = f"{en}. Số tiền / amount: {result.payment.amount_vnd:,} ₫".replace(",", ".")
        # VNPay's IPN may come a moment after the browser: a pending payment refreshes until it is settled
        refresh = '<meta http-equiv="refresh" content="3">' if status == "pending" else ""
    return (f'<!doctype html><html lang="vi"><head><meta charset="utf-8">{refresh}<title>{html.escape(title)}</title>'
            f'</head><body><h1>{html.escape(title)}</h1><p>{html.escape(detail)}</p>'
            '<p>Bạn có thể quay lại ứng dụng Lienthong. / You can return to the Lienthong app.</p></body></html>')


class PaymentAdminController(Controller):
    path = "/admin/payments"
    tags = ["admin"]
    guards = [requires_role("admin")]

    @get("/reconciliation", summary="Admin: payments that need a person (contradictions, amount mismatches, refunds "
                                    "VNPay refused), overdue pending ones, and rejected callbacks of the last day")
    async def reconciliation(self, pool: Pool) -> ReconciliationReport:
        async with pool.acquire() as conn:
            flagged = await reconcile.reviewable(conn)
            items = []
            for p in flagged:
                history = await conn.fetch(
                    "SELECT from_status, to_status, source, note, at FROM payment_transitions WHERE payment_id = $1 "
                    "ORDER BY id", p.id)
                items.append(ReviewItem(payment=p, problem=p.review_reason or p.status,
                                        transitions=[Transition(**dict(h)) for h in history]))
            rejected = await conn.fetch(
                """SELECT answer, count(*) AS n FROM vnpay_callbacks
                   WHERE channel = 'ipn' AND answer NOT IN ('00', '02') AND received_at > now() - interval '1 day'
                   GROUP BY answer""")
        return ReconciliationReport(needs_review=items, pending_overdue=await reconcile.overdue_pending(pool),
                                    rejected_callbacks_24h={r["answer"]: r["n"] for r in rejected})
