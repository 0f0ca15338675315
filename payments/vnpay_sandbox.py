"""A local stand-in for VNPay's payment gateway (API 2.1.0), for tests and the demo server; no money moves.

It listens on 127.0.0.1 (standard library plus ``requests`` for IPN calls) and follows spec ``vnpay.md`` §7, so
``payments.vnpay`` runs unchanged against it. It encodes the spec: it proves our code agrees with the spec, not that
the spec agrees with VNPay.

* ``GET /paymentv2/vpcpay.html?<signed query>``: the pay URL. Checked in this order (§7.2), each failure shown as
  VNPay's error page (HTTP 400, code also in the ``X-Vnpay-Error-Code`` header): required parameters, version,
  command, currency, locale, no ``vnp_SecureHashType`` (03); known ``vnp_TmnCode`` (72); ``vnp_SecureHash`` by the
  primary construction only (70); ``vnp_Amount`` digits, multiple of 100, 5,000 to under 1 billion đồng (32);
  dates 14 digits in GMT+7 (03) with ``vnp_ExpireDate`` in the future (11); strict alphabets for ``vnp_TxnRef``
  (``[A-Za-z0-9]``) and ``vnp_OrderInfo`` (``[A-Za-z0-9 ]``), IP and Return URL lengths (03); ``vnp_TxnRef`` unused
  by the terminal on that GMT+7 day (01; reloading the very same URL shows the same page). A valid URL shows a
  small payment page (Vietnamese or English per ``vnp_Locale``) whose buttons post to
  ``POST /paymentv2/complete``; that answers 302 to ``vnp_ReturnUrl`` with the signed result (§4.4) and schedules
  the IPN to the URL registered for the terminal. Tests skip the browser with :meth:`VnpaySandbox.complete`.
* IPN: ``GET <ipn_url>?<signed query>`` from a background thread; stops on RspCode 00/02, otherwise (other codes,
  non-200, non-JSON, timeout) calls again every ``retry_interval_s``, at most ``max_calls`` times (VNPay: 10 calls,
  5 minutes apart). Every call is recorded (:meth:`VnpaySandbox.ipn_calls`). Faults per TxnRef or for all:
  :meth:`VnpaySandbox.ipn_mode`.
* ``POST /merchant_webapi/api/transaction``: ``querydr`` and ``refund`` (§7.4) with pipe-joined checksums; error
  answers are unsigned, 00 answers signed over 15 (querydr) or 13 (refund) values.
* ``GET /inbox?txn_ref=<t>&limit=<n>`` -> ``{"payments": [...]}`` newest first, with their IPN calls;
  ``DELETE /inbox`` empties it.

The demo terminal's secret is published below, and anyone who can reach the port can complete any payment, so the
sandbox must never be exposed beyond the local machine.
"""

from __future__ import annotations

import contextlib
import html
import json
import re
import secrets
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler
from typing import Any, Literal, NamedTuple, get_args
from urllib.parse import parse_qs, parse_qsl, urlsplit

import requests

from api.sandbox_server import LoopbackSandbox, SandboxServer, read_body
from payments.vnpay import (
    CURRENCY,
    LOCALES,
    QUERYDR_REQUEST_FIELDS,
    QUERYDR_RESPONSE_FIELDS,
    REFUND_REQUEST_FIELDS,
    REFUND_RESPONSE_FIELDS,
    SECURE_HASH,
    SECURE_HASH_TYPE,
    TRANSACTION_TYPE_FULL_REFUND,
    TRANSACTION_TYPE_PARTIAL_REFUND,
    TRANSACTION_TYPE_PAYMENT,
    VERSION,
    VIETNAM,
    canonical,
    parse_vnp_date,
    pipe_checksum,
    sign,
    vnp_date,
)

Outcome = Literal["success", "cancel", "insufficient_funds", "expired", "suspected_fraud", "reversed"]
IpnMode = Literal["normal", "before_return", "drop", "late", "duplicate", "bad_signature", "tamper_amount"]
RefundFinalStatus = Literal["00", "09"]

DEMO_TMN_CODE = "LTDEMO01"
# Published on purpose: the demo terminal's key, valid only against this sandbox.
DEMO_HASH_SECRET = "LIENTHONGSANDBOXDEMOHASHSECRET01"  # noqa: S105

PAY_PATH = "/paymentv2/vpcpay.html"
COMPLETE_PATH = "/paymentv2/complete"
API_PATH = "/merchant_webapi/api/transaction"
INBOX_PATH = "/inbox"
ERROR_HEADER = "X-Vnpay-Error-Code"

# outcome -> (vnp_ResponseCode, vnp_TransactionStatus). VNPay documents no code pair for a reversal (status 04,
# "debited at the bank, not successful at VNPay"); 99 "other error" is the sandbox's choice.
OUTCOMES: dict[str, tuple[str, str]] = {
    "success": ("00", "00"),
    "cancel": ("24", "02"),
    "insufficient_funds": ("51", "02"),
    "expired": ("11", "02"),
    "suspected_fraud": ("07", "07"),
    "reversed": ("99", "04"),
}
# No transaction was made at a bank, and VNPay reports vnp_TransactionNo 0 for these.
_NO_BANK_TRANSACTION = frozenset({"cancel", "expired"})
STATUS_PENDING = "01"  # "chưa hoàn tất": the customer has not finished on the payment page

# Community-observed gateway limits (error 32): 5,000 ≤ amount < 1,000,000,000 đồng, here ×100.
MIN_AMOUNT_X100 = 500_000
MAX_AMOUNT_X100 = 100_000_000_000
BANK_CODE = "NCB"
CARD_TYPE = "ATM"
DEFAULT_MAX_CALLS = 10
DEFAULT_RETRY_INTERVAL_S = 300.0
DEFAULT_IPN_TIMEOUT_S = 10.0
DEFAULT_INBOX_LIMIT = 50
_MAX_BODY_BYTES = 64 * 1024

PAY_REQUIRED = ("vnp_Version", "vnp_Command", "vnp_TmnCode", "vnp_Amount", "vnp_CreateDate", "vnp_CurrCode",
                "vnp_IpAddr", "vnp_Locale", "vnp_OrderInfo", "vnp_OrderType", "vnp_ReturnUrl", "vnp_TxnRef",
                SECURE_HASH)
PAY_ERRORS: dict[str, tuple[str, str]] = {  # payment-page error code -> (Vietnamese, English)
    "01": ("Giao dịch đã tồn tại", "Transaction already exists"),
    "03": ("Dữ liệu gửi sang không đúng định dạng", "Invalid data format"),
    "11": ("Giao dịch đã quá thời gian chờ thanh toán", "Payment time has expired"),
    "32": ("Số tiền giao dịch không hợp lệ. Số tiền hợp lệ từ 5,000 đến dưới 1 tỷ đồng",
           "Invalid amount: from 5,000 to under 1 billion VND"),
    "70": ("Sai chữ ký", "Invalid signature"),
    "72": ("Không tìm thấy website", "Website (terminal) not found"),
}
_BUTTONS: dict[str, tuple[str, str]] = {  # outcome -> (Vietnamese, English) button label
    "success": ("Thanh toán thành công", "Pay successfully"),
    "cancel": ("Hủy", "Cancel"),
    "insufficient_funds": ("Không đủ số dư", "Insufficient balance"),
    "expired": ("Hết thời gian chờ", "Let it expire"),
    "suspected_fraud": ("Nghi ngờ gian lận", "Suspected fraud"),
    "reversed": ("Giao dịch đảo", "Reversed"),
}
_API_MESSAGES = {
    "02": "Invalid TmnCode",
    "03": "Invalid data format",
    "91": "Transaction not found",
    "93": "Invalid refund amount",
    "94": "Duplicate request",
    "95": "Transaction is not successful, refund refused",
    "97": "Invalid Checksum",
    "99": "Unknown error",
}

_DATE = re.compile(r"[0-9]{14}")
_AMOUNT = re.compile(r"[0-9]{1,12}")
_ALNUM_100 = re.compile(r"[A-Za-z0-9]{1,100}")
_REQUEST_ID = re.compile(r"[A-Za-z0-9]{1,32}")
_BANK = re.compile(r"[A-Za-z0-9]{3,20}")
_ORDER_INFO = re.compile(r"[A-Za-z0-9 ]{1,255}")


class IpnCall(NamedTuple):
    result: str  # the RspCode, or "http:<status>", "invalid-json", "error:<exception name>"
    at: datetime  # UTC, when the call was sent


@dataclass(frozen=True, slots=True)
class SandboxPayment:
    txn_ref: str
    tmn_code: str
    amount_vnd: int
    order_info: str
    outcome: str | None  # None while the customer is still on the payment page
    status: str  # vnp_TransactionStatus of the payment: 01 pending, 00 paid, ...
    response_code: str | None
    transaction_no: str | None
    refunded_vnd: int
    create_date: str  # as the merchant sent it
    created_at: str  # UTC, ISO 8601, when the sandbox accepted the pay URL


@dataclass(slots=True)
class _Refund:
    amount_x100: int
    transaction_type: str
    final_status: str
    polls: int = 0


@dataclass(slots=True)
class _Payment:
    payment_id: str
    tmn_code: str
    txn_ref: str
    amount_x100: int
    order_info: str
    bank_code: str
    return_url: str
    locale: str
    create_date: str
    expire_date: str
    query: str  # the pay URL's query, so reloading the same page is not a duplicate
    created_at: datetime
    outcome: str | None = None
    response_code: str | None = None
    status: str = STATUS_PENDING
    transaction_no: str = ""
    pay_date: str = ""
    refunded_x100: int = 0
    refund: _Refund | None = None  # the refund VNPay is still processing
    last_refund: tuple[str, str] | None = None  # (TransactionType, TransactionStatus) of the last settled refund
    ipn_threads: list[threading.Thread] = field(default_factory=list)

    def view(self) -> SandboxPayment:
        return SandboxPayment(
            txn_ref=self.txn_ref, tmn_code=self.tmn_code, amount_vnd=self.amount_x100 // 100,
            order_info=self.order_info, outcome=self.outcome, status=self.status, response_code=self.response_code,
            transaction_no=self.transaction_no or None, refunded_vnd=self.refunded_x100 // 100,
            create_date=self.create_date, created_at=self.created_at.isoformat(timespec="milliseconds"),
        )


@dataclass(frozen=True, slots=True)
class _IpnPlan:
    mode: IpnMode
    delay_s: float
    copies: int


class _PayPageError(Exception):
    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


def _utc_now() -> datetime:
    return datetime.now(UTC)


class VnpaySandbox(LoopbackSandbox):
    """In-memory VNPay look-alike served from a thread; start/stop it or use it as a context manager.

    The knobs below are plain attributes, so a test may change them on a running sandbox."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        terminals: Mapping[str, str] | None = None,
        *,
        max_calls: int = DEFAULT_MAX_CALLS,
        retry_interval_s: float = DEFAULT_RETRY_INTERVAL_S,
        ipn_timeout_s: float = DEFAULT_IPN_TIMEOUT_S,
        querydr_min_interval_s: float | None = None,
        refund_polls_per_step: int = 0,
        refund_final_status: RefundFinalStatus = "00",
        refund_always_99: bool = False,
        require_expire_date: bool = True,
        clock: Callable[[], datetime] = _utc_now,
    ) -> None:
        super().__init__(host, port, _Handler, "VNPay sandbox")
        self._terminals = dict(terminals if terminals is not None else {DEMO_TMN_CODE: DEMO_HASH_SECRET})
        self.max_calls = max_calls
        self.retry_interval_s = retry_interval_s
        self.ipn_timeout_s = ipn_timeout_s
        # One accepted querydr per this many seconds, any TxnRef, others answered 94 (one third party measured
        # about 5 minutes on VNPay's sandbox); None: no limit.
        self.querydr_min_interval_s = querydr_min_interval_s
        # A refund shows TransactionStatus 05 for this many querydr polls, then 06 for as many, then the final
        # status; 0 settles it at once.
        self.refund_polls_per_step = refund_polls_per_step
        self.refund_final_status: RefundFinalStatus = refund_final_status
        self.refund_always_99 = refund_always_99  # VNPay's sandbox until refunds are enabled for the terminal
        self.require_expire_date = require_expire_date
        self._clock = clock
        self._lock = threading.Lock()
        self._ipn_urls: dict[str, str] = {}
        self._payments: list[_Payment] = []  # oldest first
        self._by_id: dict[str, _Payment] = {}
        self._ipn_plans: dict[str | None, _IpnPlan] = {}
        self._ipn_calls: dict[str, list[IpnCall]] = {}
        self._request_ids: set[tuple[str, str, str]] = set()  # (TmnCode, RequestId, GMT+7 day)
        self._last_querydr: float | None = None
        self._next_transaction_no = 14_226_112
        self._stopping = threading.Event()

    # ------------------------------------------------------------------------------------------- lifecycle

    def start(self) -> None:
        self._stopping.clear()
        super().start()

    def stop(self) -> None:
        """Stop listening and end IPN delivery: pending retries are dropped, calls in flight finish."""
        self._stopping.set()
        with self._lock:
            threads = [thread for payment in self._payments for thread in payment.ipn_threads]
        for thread in threads:
            thread.join()
        super().stop()

    # ------------------------------------------------------------------------------------------- set-up

    def add_terminal(self, tmn_code: str, hash_secret: str) -> None:
        with self._lock:
            self._terminals[tmn_code] = hash_secret

    def register_ipn_url(self, tmn_code: str, url: str) -> None:
        """Where IPNs for ``tmn_code`` go, as a merchant tells VNPay out of band. Without one, no IPN is sent."""
        with self._lock:
            if tmn_code not in self._terminals:
                raise KeyError(f"unknown terminal {tmn_code}")
            self._ipn_urls[tmn_code] = url

    def ipn_mode(self, txn_ref: str | None, mode: IpnMode, *, delay_s: float = 1.0, copies: int = 2) -> None:
        """How the IPN of ``txn_ref`` (None: of every payment without its own mode) is delivered:

        ``normal`` right after the Return redirect; ``before_return`` the first call completes before the
        redirect is given; ``drop`` never; ``late`` after ``delay_s``; ``duplicate`` ``copies`` identical
        deliveries at the same moment, each with its own retries; ``bad_signature`` with a tampered hash;
        ``tamper_amount`` correctly signed over half the amount (a leaked key or a merchant bug)."""
        if mode not in get_args(IpnMode):
            raise ValueError(f"unknown IPN mode {mode!r}")
        if copies < 1:
            raise ValueError("copies must be at least 1")
        with self._lock:
            self._ipn_plans[txn_ref] = _IpnPlan(mode, delay_s, copies)

    # ------------------------------------------------------------------------------------------- inspection

    def payments(self, txn_ref: str | None = None) -> list[SandboxPayment]:
        """Payments whose pay URL was accepted, newest first, optionally only those with ``txn_ref``."""
        with self._lock:
            return [p.view() for p in reversed(self._payments) if txn_ref is None or p.txn_ref == txn_ref]

    def ipn_calls(self, txn_ref: str) -> list[IpnCall]:
        """Every IPN call made for ``txn_ref`` so far, in the order they were answered."""
        with self._lock:
            return list(self._ipn_calls.get(txn_ref, ()))

    def wait_for_ipn(self, txn_ref: str, timeout_s: float = 10.0) -> list[IpnCall]:
        """Wait until IPN delivery for ``txn_ref`` has ended (answered 00/02, ``max_calls`` reached, or dropped);
        return its calls. Raises TimeoutError if delivery is still going after ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        with self._lock:
            threads = [t for p in self._payments if p.txn_ref == txn_ref for t in p.ipn_threads]
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))
            if thread.is_alive():
                raise TimeoutError(f"IPN delivery for {txn_ref} still running after {timeout_s} s")
        return self.ipn_calls(txn_ref)

    def clear(self) -> int:
        """Forget payments, IPN calls, modes and RequestIds (not terminals or IPN URLs); return how many
        payments were dropped. IPN deliveries already under way go on."""
        with self._lock:
            dropped = len(self._payments)
            self._payments.clear()
            self._by_id.clear()
            self._ipn_plans.clear()
            self._ipn_calls.clear()
            self._request_ids.clear()
            self._last_querydr = None
        return dropped

    # ------------------------------------------------------------------------------------------- the customer

    def complete(self, txn_ref: str, outcome: Outcome) -> str:
        """The customer finishes the payment page of ``txn_ref`` (the newest with that reference) with
        ``outcome``. Returns the query string the browser brings to the Return URL (the merchant's own
        parameters, then VNPay's signed ones) and schedules the IPN."""
        with self._lock:
            payment = next((p for p in reversed(self._payments) if p.txn_ref == txn_ref), None)
        if payment is None:
            raise KeyError(f"no payment with TxnRef {txn_ref}")
        return urlsplit(self._complete(payment, outcome)).query

    def _complete(self, payment: _Payment, outcome: str) -> str:
        if outcome not in OUTCOMES:
            raise ValueError(f"unknown outcome {outcome!r}")
        now = self._clock()
        with self._lock:
            if payment.outcome is not None:
                raise ValueError(f"payment {payment.txn_ref} is already {payment.outcome}")
            secret = self._terminals[payment.tmn_code]
            payment.outcome = outcome
            payment.response_code, payment.status = OUTCOMES[outcome]
            if outcome in _NO_BANK_TRANSACTION:
                payment.transaction_no = "0"
            else:
                payment.transaction_no = str(self._next_transaction_no)
                self._next_transaction_no += 1
            payment.pay_date = vnp_date(now)
            plan = self._ipn_plans.get(payment.txn_ref) or self._ipn_plans.get(None) or _IpnPlan("normal", 0.0, 1)
            ipn_url = self._ipn_urls.get(payment.tmn_code)
        params = _result_params(payment)
        query = f"{canonical(params)}&{SECURE_HASH}={sign(params, secret)}"
        separator = "&" if "?" in payment.return_url else "?"
        redirect = f"{payment.return_url}{separator}{query}"
        if ipn_url is not None and plan.mode != "drop":
            first_call_done = self._schedule_ipn(payment, ipn_url, _ipn_query(params, secret, plan.mode), plan)
            if plan.mode == "before_return":
                first_call_done.wait(self.ipn_timeout_s + 1.0)
        return redirect

    # ------------------------------------------------------------------------------------------- IPN delivery

    def _schedule_ipn(self, payment: _Payment, ipn_url: str, query: str, plan: _IpnPlan) -> threading.Event:
        url = f"{ipn_url}{'&' if '?' in ipn_url else '?'}{query}"
        first_call_done = threading.Event()
        copies = plan.copies if plan.mode == "duplicate" else 1
        start_delay = plan.delay_s if plan.mode == "late" else 0.0
        barrier = threading.Barrier(copies) if copies > 1 else None
        threads = [threading.Thread(target=self._deliver, args=(payment.txn_ref, url, start_delay, barrier,
                                                                 first_call_done),
                                    name=f"vnpay-ipn-{payment.txn_ref}", daemon=True) for _ in range(copies)]
        with self._lock:
            payment.ipn_threads.extend(threads)
        for thread in threads:
            thread.start()
        return first_call_done

    def _deliver(self, txn_ref: str, url: str, start_delay_s: float, barrier: threading.Barrier | None,
                 first_call_done: threading.Event) -> None:
        try:
            if start_delay_s > 0 and self._stopping.wait(start_delay_s):
                return
            if barrier is not None:
                with contextlib.suppress(threading.BrokenBarrierError):
                    barrier.wait(timeout=5.0)
            for attempt in range(self.max_calls):
                if attempt and self._stopping.wait(self.retry_interval_s):
                    return
                result = self._call_ipn(url)
                with self._lock:
                    self._ipn_calls.setdefault(txn_ref, []).append(result)
                first_call_done.set()
                if result.result in ("00", "02"):
                    return
        finally:
            first_call_done.set()

    def _call_ipn(self, url: str) -> IpnCall:
        at = datetime.now(UTC)
        try:
            response = requests.get(url, timeout=self.ipn_timeout_s)
        except requests.RequestException as exc:
            return IpnCall(f"error:{type(exc).__name__}", at)
        if response.status_code != 200:
            return IpnCall(f"http:{response.status_code}", at)
        try:
            data: object = response.json()
        except ValueError:
            data = None
        if not isinstance(data, dict) or not isinstance(data.get("RspCode"), str):
            return IpnCall("invalid-json", at)
        return IpnCall(data["RspCode"], at)

    # ------------------------------------------------------------------------------------------- pay URL

    def _open(self, raw_query: str) -> _Payment:
        """Accept a pay URL's query (§7.2) or raise _PayPageError with the payment page's error code."""
        try:
            pairs = parse_qsl(raw_query, keep_blank_values=True, errors="strict", max_num_fields=100)
        except (UnicodeDecodeError, ValueError):
            raise _PayPageError("03") from None
        params = dict(pairs)
        required = (*PAY_REQUIRED, "vnp_ExpireDate") if self.require_expire_date else PAY_REQUIRED
        if len(params) != len(pairs) or any(not params.get(name) for name in required):
            raise _PayPageError("03")
        if (params["vnp_Version"] != VERSION or params["vnp_Command"] != "pay" or params["vnp_CurrCode"] != CURRENCY
                or params["vnp_Locale"] not in LOCALES or SECURE_HASH_TYPE in params):
            raise _PayPageError("03")
        tmn_code = params["vnp_TmnCode"]
        with self._lock:
            secret = self._terminals.get(tmn_code)
        if secret is None:
            raise _PayPageError("72")
        if sign(params, secret) != params[SECURE_HASH].lower():
            raise _PayPageError("70")
        amount = params["vnp_Amount"]
        if (not _AMOUNT.fullmatch(amount) or int(amount) % 100
                or not MIN_AMOUNT_X100 <= int(amount) < MAX_AMOUNT_X100):
            raise _PayPageError("32")
        create_date, expire_date = params["vnp_CreateDate"], params.get("vnp_ExpireDate", "")
        try:
            parse_vnp_date(create_date)
            expires_at = parse_vnp_date(expire_date) if expire_date else None
        except ValueError:
            raise _PayPageError("03") from None
        now = self._clock()
        if expires_at is not None and expires_at <= now:
            raise _PayPageError("11")
        if (not _ALNUM_100.fullmatch(params["vnp_TxnRef"]) or not _ORDER_INFO.fullmatch(params["vnp_OrderInfo"])
                or not 7 <= len(params["vnp_IpAddr"]) <= 45 or not 10 <= len(params["vnp_ReturnUrl"]) <= 255
                or not params["vnp_ReturnUrl"].startswith(("http://", "https://"))
                or ("vnp_BankCode" in params and not _BANK.fullmatch(params["vnp_BankCode"]))):
            raise _PayPageError("03")
        txn_ref = params["vnp_TxnRef"]
        with self._lock:
            for earlier in self._payments:
                if (earlier.tmn_code, earlier.txn_ref, earlier.create_date[:8]) == (tmn_code, txn_ref,
                                                                                    create_date[:8]):
                    if earlier.query == raw_query and earlier.outcome is None:
                        return earlier  # the customer reloaded the page
                    raise _PayPageError("01")
            payment = _Payment(
                payment_id=secrets.token_urlsafe(16), tmn_code=tmn_code, txn_ref=txn_ref, amount_x100=int(amount),
                order_info=params["vnp_OrderInfo"], bank_code=params.get("vnp_BankCode", ""),
                return_url=params["vnp_ReturnUrl"], locale=params["vnp_Locale"], create_date=create_date,
                expire_date=expire_date, query=raw_query, created_at=now,
            )
            self._payments.append(payment)
            self._by_id[payment.payment_id] = payment
        return payment

    def _complete_from_page(self, payment_id: str, outcome: str) -> str:
        with self._lock:
            payment = self._by_id.get(payment_id)
        if payment is None:
            raise KeyError(payment_id)
        if payment.expire_date and parse_vnp_date(payment.expire_date) <= self._clock():
            outcome = "expired"  # the customer took longer than vnp_ExpireDate allowed
        return self._complete(payment, outcome)

    # ------------------------------------------------------------------------------------------- merchant API

    def _api(self, body: dict[str, Any]) -> dict[str, str]:
        values = {key: value for key, value in body.items() if isinstance(value, str)}
        command = values.get("vnp_Command", "")
        if command == "querydr":
            fields: tuple[str, ...] = QUERYDR_REQUEST_FIELDS
        elif command == "refund":
            fields = REFUND_REQUEST_FIELDS
        else:
            return _api_error(command, "03", values)
        optional = {"vnp_TransactionNo"}
        if (any(not values.get(name) for name in fields if name not in optional) or not values.get(SECURE_HASH)
                or values["vnp_Version"] != VERSION or not _REQUEST_ID.fullmatch(values["vnp_RequestId"])
                or not _ALNUM_100.fullmatch(values["vnp_TxnRef"])
                or not all(_DATE.fullmatch(values[name]) for name in ("vnp_TransactionDate", "vnp_CreateDate"))):
            return _api_error(command, "03", values)
        tmn_code = values["vnp_TmnCode"]
        now = self._clock()
        with self._lock:
            secret = self._terminals.get(tmn_code)
            if secret is None:
                return _api_error(command, "02", values)
            if pipe_checksum(values, fields, secret) != values[SECURE_HASH].lower():
                return _api_error(command, "97", values)
            request_key = (tmn_code, values["vnp_RequestId"], vnp_date(now)[:8])
            if request_key in self._request_ids:
                return _api_error(command, "94", values)
            self._request_ids.add(request_key)
            if command == "querydr":
                return self._querydr(values, secret, now)
            return self._refund(values, secret, now)

    def _find(self, values: Mapping[str, str]) -> _Payment | None:
        return next((p for p in self._payments if p.tmn_code == values["vnp_TmnCode"]
                     and p.txn_ref == values["vnp_TxnRef"] and p.create_date == values["vnp_TransactionDate"]), None)

    def _querydr(self, values: Mapping[str, str], secret: str, now: datetime) -> dict[str, str]:
        # called with the lock held
        if self.querydr_min_interval_s is not None:
            moment = time.monotonic()
            if self._last_querydr is not None and moment - self._last_querydr < self.querydr_min_interval_s:
                return _api_error("querydr", "94", values)
            self._last_querydr = moment
        payment = self._find(values)
        if payment is None:
            return _api_error("querydr", "91", values)
        transaction_type, status = self._current_status(payment, poll=True)
        answer = {
            "vnp_ResponseId": uuid.uuid4().hex,
            "vnp_Command": "querydr",
            "vnp_ResponseCode": "00",
            "vnp_Message": "QueryDR Success",
            "vnp_TmnCode": payment.tmn_code,
            "vnp_TxnRef": payment.txn_ref,
            "vnp_Amount": str(payment.amount_x100),
            "vnp_BankCode": payment.bank_code or (BANK_CODE if payment.outcome else ""),
            "vnp_PayDate": payment.pay_date,
            "vnp_TransactionNo": payment.transaction_no,
            "vnp_TransactionType": transaction_type,
            "vnp_TransactionStatus": status,
            "vnp_OrderInfo": payment.order_info,
            "vnp_PromotionCode": "",
            "vnp_PromotionAmount": "",
            "vnp_CardType": CARD_TYPE if payment.outcome else "",
        }
        answer[SECURE_HASH] = pipe_checksum(answer, QUERYDR_RESPONSE_FIELDS, secret)
        return answer

    def _current_status(self, payment: _Payment, *, poll: bool) -> tuple[str, str]:
        """(TransactionType, TransactionStatus) as querydr reports it; a poll moves a refund along."""
        refund = payment.refund
        if refund is not None:
            if poll:
                refund.polls += 1
            step = self.refund_polls_per_step
            if step and refund.polls <= step:
                return refund.transaction_type, "05"
            if step and refund.polls <= 2 * step:
                return refund.transaction_type, "06"
            self._settle_refund(payment)
        if payment.last_refund is not None:
            return payment.last_refund
        return TRANSACTION_TYPE_PAYMENT, payment.status

    def _settle_refund(self, payment: _Payment) -> None:
        refund = payment.refund
        if refund is None:
            return
        payment.refund = None
        payment.last_refund = (refund.transaction_type, refund.final_status)
        if refund.final_status != "00":  # rejected: the money stays with the merchant
            payment.refunded_x100 -= refund.amount_x100

    def _refund(self, values: Mapping[str, str], secret: str, now: datetime) -> dict[str, str]:
        # called with the lock held
        transaction_type, amount = values["vnp_TransactionType"], values["vnp_Amount"]
        if (transaction_type not in (TRANSACTION_TYPE_FULL_REFUND, TRANSACTION_TYPE_PARTIAL_REFUND)
                or not _AMOUNT.fullmatch(amount) or int(amount) == 0):
            return _api_error("refund", "03", values)
        if self.refund_always_99:
            return _api_error("refund", "99", values)
        payment = self._find(values)
        transaction_no = values.get("vnp_TransactionNo", "")
        if payment is None or (transaction_no not in ("", "0") and transaction_no != payment.transaction_no):
            return _api_error("refund", "91", values)
        if payment.outcome != "success":
            return _api_error("refund", "95", values)
        self._current_status(payment, poll=False)
        if payment.refund is not None:
            return {**_api_error("refund", "94", values), "vnp_Message": "Refund is being processed"}
        amount_x100 = int(amount)
        if (payment.refunded_x100 + amount_x100 > payment.amount_x100
                or (transaction_type == TRANSACTION_TYPE_FULL_REFUND
                    and (payment.refunded_x100 or amount_x100 != payment.amount_x100))):
            return _api_error("refund", "93", values)
        payment.refunded_x100 += amount_x100
        payment.refund = _Refund(amount_x100, transaction_type, self.refund_final_status)
        _, status = self._current_status(payment, poll=False)
        answer = {
            "vnp_ResponseId": uuid.uuid4().hex,
            "vnp_Command": "refund",
            "vnp_ResponseCode": "00",
            "vnp_Message": "Refund success",
            "vnp_TmnCode": payment.tmn_code,
            "vnp_TxnRef": payment.txn_ref,
            "vnp_Amount": amount,
            "vnp_BankCode": payment.bank_code or BANK_CODE,
            "vnp_PayDate": vnp_date(now),
            "vnp_TransactionNo": payment.transaction_no,
            "vnp_TransactionType": transaction_type,
            "vnp_TransactionStatus": status,
            "vnp_OrderInfo": values["vnp_OrderInfo"],
        }
        answer[SECURE_HASH] = pipe_checksum(answer, REFUND_RESPONSE_FIELDS, secret)
        return answer


def _api_error(command: str, code: str, values: Mapping[str, str]) -> dict[str, str]:
    """An unsigned error answer, as VNPay gives them."""
    return {"vnp_ResponseId": uuid.uuid4().hex, "vnp_Command": command, "vnp_ResponseCode": code,
            "vnp_Message": _API_MESSAGES[code], "vnp_TmnCode": values.get("vnp_TmnCode", ""),
            "vnp_TxnRef": values.get("vnp_TxnRef", "")}


def _result_params(payment: _Payment) -> dict[str, str]:
    """§4.4: what VNPay sends to the Return URL and the IPN URL."""
    params = {
        "vnp_Amount": str(payment.amount_x100),
        "vnp_BankCode": payment.bank_code or BANK_CODE,
        "vnp_CardType": CARD_TYPE,
        "vnp_OrderInfo": payment.order_info,
        "vnp_PayDate": payment.pay_date,
        "vnp_ResponseCode": payment.response_code or "",
        "vnp_TmnCode": payment.tmn_code,
        "vnp_TransactionNo": payment.transaction_no,
        "vnp_TransactionStatus": payment.status,
        "vnp_TxnRef": payment.txn_ref,
    }
    if payment.transaction_no != "0":
        params["vnp_BankTranNo"] = f"VNP{payment.transaction_no}"
    return params


def _ipn_query(params: Mapping[str, str], secret: str, mode: IpnMode) -> str:
    if mode == "tamper_amount":
        params = {**params, "vnp_Amount": str(int(params["vnp_Amount"]) // 200 * 100)}
    secure_hash = sign(params, secret)
    if mode == "bad_signature":
        secure_hash = secure_hash[:-1] + ("0" if secure_hash[-1] != "0" else "1")
    return f"{canonical(params)}&{SECURE_HASH}={secure_hash}"


# ------------------------------------------------------------------------------------------------ pages

_STYLE = ("body{font-family:sans-serif;max-width:32rem;margin:2rem auto;padding:0 1rem}"
          "button{display:block;width:100%;margin:.4rem 0;padding:.6rem;font-size:1rem}"
          "dt{color:#666}dd{margin:0 0 .6rem}")


def _page(title: str, body: str, locale: str) -> str:
    lang = "en" if locale == "en" else "vi"
    return (f'<!doctype html><html lang="{lang}"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
            f"<style>{_STYLE}</style></head><body><h1>{html.escape(title)}</h1>{body}</body></html>")


def _payment_page(payment: _Payment) -> str:
    en = payment.locale == "en"
    amount = f"{payment.amount_x100 // 100:,}".replace(",", ".")
    expires = "-"
    if payment.expire_date:
        expires = parse_vnp_date(payment.expire_date).astimezone(VIETNAM).strftime("%H:%M %d/%m/%Y")
    labels = (("Merchant", "Order", "Amount", "Pay before (GMT+7)") if en
              else ("Đơn vị", "Nội dung", "Số tiền", "Hạn thanh toán (GMT+7)"))
    details = "".join(f"<dt>{label}</dt><dd>{html.escape(value)}</dd>" for label, value in zip(
        labels, (payment.tmn_code, f"{payment.order_info} ({payment.txn_ref})", f"{amount} VND", expires),
        strict=True))
    buttons = "".join(f'<button name="outcome" value="{outcome}">{html.escape(text[1] if en else text[0])}</button>'
                      for outcome, text in _BUTTONS.items())
    form = (f'<form method="post" action="{COMPLETE_PATH}"><input type="hidden" name="payment_id" '
            f'value="{html.escape(payment.payment_id)}">{buttons}</form>')
    note = ("<p><small>Sandbox: no money moves.</small></p>" if en
            else "<p><small>Môi trường thử nghiệm: không có giao dịch thật.</small></p>")
    title = "VNPay sandbox payment" if en else "Thanh toán VNPay (thử nghiệm)"
    return _page(title, f"<dl>{details}</dl>{form}{note}", payment.locale)


def _error_page(code: str, locale: str) -> str:
    vietnamese, english = PAY_ERRORS[code]
    message = english if locale == "en" else vietnamese
    title = "Payment error" if locale == "en" else "Lỗi thanh toán"
    label = "Error code" if locale == "en" else "Mã lỗi"
    return _page(title, f"<p>{html.escape(message)}</p><p>{label}: {code}</p>", locale)


class _Handler(BaseHTTPRequestHandler):
    server: SandboxServer[VnpaySandbox]
    server_version = "VnpaySandbox"

    def log_message(self, format: str, *args: Any) -> None:
        """Silent: access lines would carry signed queries."""

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        sandbox = self.server.sandbox
        if url.path == PAY_PATH:
            try:
                payment = sandbox._open(url.query)
            except _PayPageError as error:
                locale = "en" if "vnp_Locale=en" in url.query else "vn"
                self._send(400, "text/html; charset=utf-8", _error_page(error.code, locale).encode(),
                           {ERROR_HEADER: error.code})
                return
            self._send(200, "text/html; charset=utf-8", _payment_page(payment).encode())
            return
        if url.path == INBOX_PATH:
            query = parse_qs(url.query)
            txn_ref = query.get("txn_ref", [""])[-1] or None
            try:
                limit = int(query.get("limit", [str(DEFAULT_INBOX_LIMIT)])[-1])
            except ValueError:
                limit = 0
            if limit < 1:
                self._json(400, {"error": "limit must be a positive integer"})
                return
            found = sandbox.payments(txn_ref)[:limit]
            self._json(200, {"payments": [
                {**asdict(p), "ipn_calls": [{"result": c.result, "at": c.at.isoformat(timespec="milliseconds")}
                                            for c in sandbox.ipn_calls(p.txn_ref)]} for p in found]})
            return
        self._json(404, {"error": "not found"})

    def do_POST(self) -> None:
        path = urlsplit(self.path).path
        raw = self._body()
        if raw is None:
            return
        sandbox = self.server.sandbox
        if path == COMPLETE_PATH:
            form = parse_qs(raw.decode(errors="replace"))
            payment_id = form.get("payment_id", [""])[-1]
            outcome = form.get("outcome", [""])[-1]
            try:
                location = sandbox._complete_from_page(payment_id, outcome)
            except KeyError:
                self._send(404, "text/html; charset=utf-8", _page("Not found", "", "vn").encode())
                return
            except ValueError as exc:
                self._send(409, "text/html; charset=utf-8",
                           _page("Lỗi thanh toán", f"<p>{html.escape(str(exc))}</p>", "vn").encode())
                return
            self._send(302, "text/html; charset=utf-8", b"", {"Location": location})
            return
        if path == API_PATH:
            try:
                body: object = json.loads(raw)
            except ValueError:
                body = None
            self._json(200, sandbox._api(body) if isinstance(body, dict) else _api_error("", "03", {}))
            return
        self._json(404, {"error": "not found"})

    def do_DELETE(self) -> None:
        if urlsplit(self.path).path != INBOX_PATH:
            self._json(404, {"error": "not found"})
            return
        self._json(200, {"deleted": self.server.sandbox.clear()})

    def _body(self) -> bytes | None:
        body = read_body(self, _MAX_BODY_BYTES)
        if body is None:
            self._json(400, {"error": f"Content-Length must be 0 to {_MAX_BODY_BYTES}"})
        return body

    def _json(self, status: int, payload: Mapping[str, object]) -> None:
        self._send(status, "application/json; charset=utf-8", json.dumps(payload, ensure_ascii=False).encode())

    def _send(self, status: int, content_type: str, body: bytes, headers: Mapping[str, str] | None = None) -> None:
        # A client that gave up has closed its end; nobody is listening.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(body)
