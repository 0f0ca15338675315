"""payments.vnpay against its local sandbox: pay URL acceptance and refusals, signed Return/IPN results per
outcome, IPN retries and fault modes (against a stdlib merchant server started here), querydr and refund."""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests

from payments.vnpay import (
    QUERYDR_RESPONSE_FIELDS,
    InvalidSignature,
    PayRequest,
    VnpayBadResponse,
    VnpayClient,
    VnpayConfig,
    VnpayUnavailable,
    canonical,
    pay_url,
    pipe_checksum,
    sign,
    verify_callback,
    vnp_date,
)
from payments.vnpay_sandbox import (
    API_PATH,
    COMPLETE_PATH,
    DEMO_HASH_SECRET,
    DEMO_TMN_CODE,
    ERROR_HEADER,
    PAY_PATH,
    VnpaySandbox,
)

RETURN_URL = "https://lienthong.vn/payments/vnpay/return?lang=vi"
AMOUNT = 150_000
SERVER_IP = "203.0.113.10"


# ------------------------------------------------------------------------------------------------ merchant stub

@dataclass
class Merchant:
    """A merchant IPN endpoint: verifies like ours would, then answers the next scripted code (default 00).
    Script entries "http500", "notjson" and "slow" fake broken answers."""

    config: VnpayConfig
    expected_amount_vnd: int = AMOUNT
    script: deque[str] = field(default_factory=deque)
    hold_s: float = 0.0
    calls: list[tuple[str, float]] = field(default_factory=list)  # (raw query, monotonic time)
    in_flight: int = 0
    max_in_flight: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)
    url: str = ""

    def answer(self, raw_query: str) -> tuple[int, bytes]:
        with self.lock:
            self.calls.append((raw_query, time.monotonic()))
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            scripted = self.script.popleft() if self.script else "00"
        try:
            time.sleep(self.hold_s)
            if scripted == "http500":
                return 500, b"oops"
            if scripted == "notjson":
                return 200, b"<html>ok</html>"
            if scripted == "slow":
                time.sleep(1.0)
            try:
                params = verify_callback(raw_query, self.config)
            except InvalidSignature:
                return 200, b'{"RspCode": "97", "Message": "Invalid signature"}'
            if int(params["vnp_Amount"]) != self.expected_amount_vnd * 100:
                return 200, b'{"RspCode": "04", "Message": "invalid amount"}'
            code = "00" if scripted == "slow" else scripted
            return 200, json.dumps({"RspCode": code, "Message": "scripted"}).encode()
        finally:
            with self.lock:
                self.in_flight -= 1


class _MerchantHandler(BaseHTTPRequestHandler):
    server: Any

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        status, body = self.server.merchant.answer(urlsplit(self.path).query)
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def sandbox() -> Iterator[VnpaySandbox]:
    with VnpaySandbox(retry_interval_s=0.05, ipn_timeout_s=0.5) as running:
        yield running


@pytest.fixture
def config(sandbox: VnpaySandbox) -> VnpayConfig:
    return VnpayConfig(pay_url=sandbox.base_url + PAY_PATH, api_url=sandbox.base_url + API_PATH,
                       tmn_code=DEMO_TMN_CODE, hash_secret=DEMO_HASH_SECRET, connect_timeout_s=2, read_timeout_s=2)


@pytest.fixture
def merchant(sandbox: VnpaySandbox, config: VnpayConfig) -> Iterator[Merchant]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _MerchantHandler)
    stub = Merchant(config, url=f"http://127.0.0.1:{server.server_port}/payments/vnpay/ipn")
    server.merchant = stub  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    sandbox.register_ipn_url(DEMO_TMN_CODE, stub.url)
    try:
        yield stub
    finally:
        sandbox.stop()  # ends IPN delivery before the merchant goes away
        server.shutdown()
        server.server_close()


@pytest.fixture
def client(config: VnpayConfig) -> Iterator[VnpayClient]:
    vnpay = VnpayClient(config)
    yield vnpay
    vnpay.close()


_counter = iter(range(10**6))


def new_txn_ref() -> str:
    return f"ORD{int(time.time() * 1000)}X{next(_counter)}"


def issue(config: VnpayConfig, *, txn_ref: str | None = None, amount_vnd: int = AMOUNT,
          created_at: datetime | None = None, minutes: int = 15, **changes: Any) -> PayRequest:
    created = created_at or datetime.now(UTC)
    arguments: dict[str, Any] = {"order_info": "Thanh toán phí khám", "return_url": RETURN_URL,
                                 "ip_addr": "198.51.100.7", "locale": "vn"}
    arguments.update(changes)
    return pay_url(config, txn_ref=txn_ref or new_txn_ref(), amount_vnd=amount_vnd, created_at=created,
                   expires_at=created + timedelta(minutes=minutes), **arguments)


def open_page(request: PayRequest | str) -> requests.Response:
    return requests.get(request if isinstance(request, str) else request.url, timeout=5)


def opened(config: VnpayConfig, **changes: Any) -> PayRequest:
    request = issue(config, **changes)
    page = open_page(request)
    assert page.status_code == 200, page.text
    return request


def hand_signed_url(config: VnpayConfig, secret: str | None = None, **changes: str | None) -> str:
    """A pay URL built field by field, to send what our client refuses to."""
    now = datetime.now(UTC)
    params: dict[str, str] = {
        "vnp_Version": "2.1.0", "vnp_Command": "pay", "vnp_TmnCode": config.tmn_code, "vnp_Amount": "15000000",
        "vnp_CreateDate": vnp_date(now), "vnp_CurrCode": "VND", "vnp_IpAddr": "198.51.100.7", "vnp_Locale": "vn",
        "vnp_OrderInfo": "Thanh toan phi kham", "vnp_OrderType": "other", "vnp_ReturnUrl": RETURN_URL,
        "vnp_ExpireDate": vnp_date(now + timedelta(minutes=15)), "vnp_TxnRef": new_txn_ref(),
    }
    for key, value in changes.items():
        if value is None:
            params.pop(key, None)
        else:
            params[key] = value
    query = f"{canonical(params)}&vnp_SecureHash={sign(params, secret or config.hash_secret)}"
    if "vnp_SecureHashType" in params:
        query += "&vnp_SecureHashType=" + params["vnp_SecureHashType"]
    return f"{config.pay_url}?{query}"


# ------------------------------------------------------------------------------------------------ pay URL

def test_pay_url_from_our_client_is_accepted_and_shows_the_payment_page(sandbox: VnpaySandbox,
                                                                        config: VnpayConfig) -> None:
    request = issue(config)
    page = open_page(request)

    assert page.status_code == 200
    assert "Thanh toán thành công" in page.text and "Không đủ số dư" in page.text and "150.000 VND" in page.text
    [payment] = sandbox.payments(request.txn_ref)
    assert (payment.amount_vnd, payment.status, payment.outcome) == (AMOUNT, "01", None)
    assert payment.create_date == request.create_date
    assert open_page(request).status_code == 200  # reloading the same page is not a duplicate


def test_english_page_for_locale_en(config: VnpayConfig) -> None:
    assert "Pay successfully" in open_page(issue(config, locale="en")).text


@pytest.mark.parametrize(("changes", "code"), [
    ({"vnp_ExpireDate": None}, "03"),
    ({"vnp_Version": "2.0.1"}, "03"),
    ({"vnp_CurrCode": "USD"}, "03"),
    ({"vnp_Locale": "fr"}, "03"),
    ({"vnp_SecureHashType": "HmacSHA512"}, "03"),
    ({"vnp_OrderInfo": "Thanh toan: don #5"}, "03"),
    ({"vnp_OrderInfo": "Thanh toán"}, "03"),
    ({"vnp_TxnRef": "ORD-1"}, "03"),
    ({"vnp_Amount": "15000050"}, "32"),
    ({"vnp_Amount": "499900"}, "32"),
    ({"vnp_Amount": "100000000000"}, "32"),
    ({"vnp_CreateDate": "20251301120000"}, "03"),
    ({"vnp_TmnCode": "NOTATMN1"}, "72"),
])
def test_sandbox_refuses_a_bad_pay_url(config: VnpayConfig, changes: dict[str, str | None], code: str) -> None:
    page = open_page(hand_signed_url(config, **changes))
    assert (page.status_code, page.headers[ERROR_HEADER]) == (400, code)
    assert f"Mã lỗi: {code}" in page.text


def test_sandbox_refuses_a_wrong_signature_and_a_tampered_url(config: VnpayConfig) -> None:
    assert open_page(hand_signed_url(config, secret="not-the-secret")).headers[ERROR_HEADER] == "70"
    tampered = issue(config).url.replace("vnp_Amount=15000000", "vnp_Amount=1500000")
    assert open_page(tampered).headers[ERROR_HEADER] == "70"


def test_sandbox_refuses_an_expired_payment_window(config: VnpayConfig) -> None:
    # what a server computing GMT+7 dates from UTC wall time sends: 7 hours in the past
    late = issue(config, created_at=datetime.now(UTC) - timedelta(hours=7))
    assert open_page(late).headers[ERROR_HEADER] == "11"


def test_txn_ref_is_unique_per_terminal_per_day(config: VnpayConfig) -> None:
    first = opened(config)
    again = issue(config, txn_ref=first.txn_ref, amount_vnd=AMOUNT + 1000)
    assert open_page(again).headers[ERROR_HEADER] == "01"


# ------------------------------------------------------------------------------------------------ outcomes

@pytest.mark.parametrize(("outcome", "response_code", "transaction_status"), [
    ("success", "00", "00"),
    ("cancel", "24", "02"),
    ("insufficient_funds", "51", "02"),
    ("expired", "11", "02"),
    ("suspected_fraud", "07", "07"),
    ("reversed", "99", "04"),
])
def test_each_outcome_comes_back_signed_on_the_return_url(sandbox: VnpaySandbox, config: VnpayConfig, outcome: Any,
                                                          response_code: str, transaction_status: str) -> None:
    request = opened(config)
    query = sandbox.complete(request.txn_ref, outcome)

    assert query.startswith("lang=vi&vnp_")  # the merchant's own parameter stays first
    params = verify_callback(query, config)
    assert (params["vnp_ResponseCode"], params["vnp_TransactionStatus"]) == (response_code, transaction_status)
    assert params["vnp_TxnRef"] == request.txn_ref and params["vnp_Amount"] == str(AMOUNT * 100)
    assert params["vnp_OrderInfo"] == "Thanh toan phi kham"
    [payment] = sandbox.payments(request.txn_ref)
    assert (payment.outcome, payment.status, payment.response_code) == (outcome, transaction_status, response_code)
    with pytest.raises(ValueError, match="already"):
        sandbox.complete(request.txn_ref, "success")


def test_payment_page_button_redirects_to_the_return_url(sandbox: VnpaySandbox, config: VnpayConfig) -> None:
    request = issue(config)
    page = open_page(request)
    payment_id = page.text.split('name="payment_id" value="')[1].split('"')[0]

    answer = requests.post(sandbox.base_url + COMPLETE_PATH, data={"payment_id": payment_id, "outcome": "success"},
                           allow_redirects=False, timeout=5)

    assert answer.status_code == 302
    location = answer.headers["Location"]
    assert location.startswith(RETURN_URL + "&vnp_Amount=")
    assert verify_callback(urlsplit(location).query, config)["vnp_ResponseCode"] == "00"


def test_inbox_lists_payments_with_their_ipn_calls(sandbox: VnpaySandbox, config: VnpayConfig,
                                                  merchant: Merchant) -> None:
    request = opened(config)
    sandbox.complete(request.txn_ref, "success")
    sandbox.wait_for_ipn(request.txn_ref)

    inbox = requests.get(sandbox.base_url + "/inbox", params={"txn_ref": request.txn_ref}, timeout=5).json()
    [entry] = inbox["payments"]
    assert (entry["txn_ref"], entry["amount_vnd"], entry["outcome"], entry["status"]) == (
        request.txn_ref, AMOUNT, "success", "00")
    assert [call["result"] for call in entry["ipn_calls"]] == ["00"]
    assert requests.delete(sandbox.base_url + "/inbox", timeout=5).json() == {"deleted": 1}


# ------------------------------------------------------------------------------------------------ IPN

def results(sandbox: VnpaySandbox, txn_ref: str) -> list[str]:
    return [call.result for call in sandbox.wait_for_ipn(txn_ref)]


def test_ipn_carries_the_same_signed_result_and_stops_on_00(sandbox: VnpaySandbox, config: VnpayConfig,
                                                            merchant: Merchant) -> None:
    request = opened(config)
    query = sandbox.complete(request.txn_ref, "success")

    assert results(sandbox, request.txn_ref) == ["00"]
    [(ipn_query, _)] = merchant.calls
    assert verify_callback(ipn_query, config) == verify_callback(query, config)


def test_ipn_is_retried_until_the_merchant_answers_00_or_02(sandbox: VnpaySandbox, config: VnpayConfig,
                                                            merchant: Merchant) -> None:
    merchant.script.extend(["99", "http500", "notjson", "01", "02", "00"])
    request = opened(config)
    sandbox.complete(request.txn_ref, "cancel")

    assert results(sandbox, request.txn_ref) == ["99", "http:500", "invalid-json", "01", "02"]
    gaps = [b - a for (_, a), (_, b) in zip(merchant.calls, merchant.calls[1:], strict=False)]
    assert min(gaps) >= 0.04  # retry_interval_s apart


def test_ipn_timeout_is_retried(sandbox: VnpaySandbox, config: VnpayConfig, merchant: Merchant) -> None:
    merchant.script.append("slow")
    request = opened(config)
    sandbox.complete(request.txn_ref, "success")
    assert results(sandbox, request.txn_ref) == ["error:ReadTimeout", "00"]


def test_ipn_gives_up_after_max_calls(sandbox: VnpaySandbox, config: VnpayConfig, merchant: Merchant) -> None:
    sandbox.max_calls = 4
    merchant.script.extend(["99"] * 10)
    request = opened(config)
    sandbox.complete(request.txn_ref, "success")
    assert results(sandbox, request.txn_ref) == ["99"] * 4


def test_duplicate_mode_sends_concurrent_identical_ipns(sandbox: VnpaySandbox, config: VnpayConfig,
                                                        merchant: Merchant) -> None:
    merchant.hold_s = 0.3
    request = opened(config)
    sandbox.ipn_mode(request.txn_ref, "duplicate", copies=5)
    sandbox.complete(request.txn_ref, "success")

    assert results(sandbox, request.txn_ref) == ["00"] * 5
    assert len({query for query, _ in merchant.calls}) == 1
    assert merchant.max_in_flight > 1


def test_before_return_mode_delivers_the_ipn_before_the_redirect(sandbox: VnpaySandbox, config: VnpayConfig,
                                                                 merchant: Merchant) -> None:
    request = opened(config)
    sandbox.ipn_mode(request.txn_ref, "before_return")
    sandbox.complete(request.txn_ref, "success")
    assert len(merchant.calls) == 1


def test_late_mode_waits_before_the_first_call(sandbox: VnpaySandbox, config: VnpayConfig,
                                               merchant: Merchant) -> None:
    request = opened(config)
    sandbox.ipn_mode(None, "late", delay_s=0.3)
    started = time.monotonic()
    sandbox.complete(request.txn_ref, "success")
    assert results(sandbox, request.txn_ref) == ["00"]
    assert merchant.calls[0][1] - started >= 0.3


def test_drop_mode_sends_no_ipn(sandbox: VnpaySandbox, config: VnpayConfig, merchant: Merchant) -> None:
    request = opened(config)
    sandbox.ipn_mode(request.txn_ref, "drop")
    sandbox.complete(request.txn_ref, "success")
    assert results(sandbox, request.txn_ref) == [] and merchant.calls == []


def test_bad_signature_mode_is_refused_every_time(sandbox: VnpaySandbox, config: VnpayConfig,
                                                  merchant: Merchant) -> None:
    sandbox.max_calls = 3
    request = opened(config)
    sandbox.ipn_mode(request.txn_ref, "bad_signature")
    query = sandbox.complete(request.txn_ref, "success")
    assert verify_callback(query, config)  # only the IPN is tampered
    assert results(sandbox, request.txn_ref) == ["97"] * 3


def test_tamper_amount_mode_is_validly_signed_over_a_wrong_amount(sandbox: VnpaySandbox, config: VnpayConfig,
                                                                  merchant: Merchant) -> None:
    sandbox.max_calls = 2
    request = opened(config)
    sandbox.ipn_mode(request.txn_ref, "tamper_amount")
    sandbox.complete(request.txn_ref, "success")
    assert results(sandbox, request.txn_ref) == ["04", "04"]
    assert verify_callback(merchant.calls[0][0], config)["vnp_Amount"] == str(AMOUNT * 100 // 2)


def test_unknown_ipn_mode_is_refused(sandbox: VnpaySandbox) -> None:
    with pytest.raises(ValueError, match="mode"):
        sandbox.ipn_mode(None, "sometimes")  # type: ignore[arg-type]


# ------------------------------------------------------------------------------------------------ querydr

def query(client: VnpayClient, request: PayRequest, **changes: Any) -> Any:
    arguments: dict[str, Any] = {"txn_ref": request.txn_ref, "transaction_date": request.create_date,
                                 "ip_addr": SERVER_IP, "order_info": f"Truy van {request.txn_ref}"}
    arguments.update(changes)
    return client.querydr(**arguments)


def test_querydr_reports_a_pending_then_a_paid_payment(sandbox: VnpaySandbox, config: VnpayConfig,
                                                       client: VnpayClient) -> None:
    request = opened(config)
    pending = query(client, request)
    assert (pending.response_code, pending.transaction_status, pending.transaction_type) == ("00", "01", "01")

    paid_query = sandbox.complete(request.txn_ref, "success")
    paid = query(client, request)
    callback = verify_callback(paid_query, config)
    assert (paid.response_code, paid.transaction_status, paid.transaction_type, paid.amount_vnd) == (
        "00", "00", "01", AMOUNT)
    assert (paid.transaction_no, paid.pay_date) == (callback["vnp_TransactionNo"], callback["vnp_PayDate"])
    assert "vnp_SecureHash" in paid.raw


def test_querydr_not_found_and_wrong_transaction_date_are_91(config: VnpayConfig, client: VnpayClient) -> None:
    request = opened(config)
    unknown = query(client, request, txn_ref="NOSUCHTXN1")
    assert (unknown.response_code, unknown.transaction_status, unknown.amount_vnd) == ("91", None, None)
    # the pay URL's CreateDate written in UTC instead of GMT+7
    utc_date = (datetime.strptime(request.create_date, "%Y%m%d%H%M%S") - timedelta(hours=7)).strftime("%Y%m%d%H%M%S")
    assert query(client, request, transaction_date=utc_date).response_code == "91"


def test_querydr_rate_limit_and_repeated_request_id_are_94(sandbox: VnpaySandbox, config: VnpayConfig,
                                                           client: VnpayClient) -> None:
    request = opened(config)
    assert query(client, request, request_id="REQ1").response_code == "00"
    assert query(client, request, request_id="REQ1").response_code == "94"

    sandbox.querydr_min_interval_s = 60
    assert query(client, request).response_code == "00"
    limited = query(client, request)
    assert (limited.response_code, limited.transaction_status) == ("94", None)


def test_wrong_secret_is_97_and_unknown_terminal_is_02(sandbox: VnpaySandbox, config: VnpayConfig) -> None:
    request = opened(config)
    for tmn_code, secret, code in ((DEMO_TMN_CODE, "wrong-secret", "97"), ("NOTATMN1", DEMO_HASH_SECRET, "02")):
        other = VnpayClient(VnpayConfig(config.pay_url, config.api_url, tmn_code, secret))
        try:
            assert query(other, request).response_code == code
        finally:
            other.close()


# ------------------------------------------------------------------------------------------------ refund

def refund(client: VnpayClient, request: PayRequest, amount_vnd: int, *, full: bool = False,
           transaction_no: str | None = None) -> Any:
    return client.refund(txn_ref=request.txn_ref, amount_vnd=amount_vnd, full=full,
                         transaction_date=request.create_date, transaction_no=transaction_no, create_by="ops01",
                         ip_addr=SERVER_IP, order_info=f"Hoan tien {request.txn_ref}")


def paid(sandbox: VnpaySandbox, config: VnpayConfig) -> tuple[PayRequest, str]:
    request = opened(config)
    params = verify_callback(sandbox.complete(request.txn_ref, "success"), config)
    return request, params["vnp_TransactionNo"]


def test_full_refund(sandbox: VnpaySandbox, config: VnpayConfig, client: VnpayClient) -> None:
    request, transaction_no = paid(sandbox, config)
    answer = refund(client, request, AMOUNT, full=True, transaction_no=transaction_no)
    assert (answer.response_code, answer.transaction_status, answer.amount_vnd) == ("00", "00", AMOUNT)

    after = query(client, request)
    assert (after.transaction_type, after.transaction_status) == ("02", "00")
    assert sandbox.payments(request.txn_ref)[0].refunded_vnd == AMOUNT


def test_partial_refunds_up_to_the_amount_then_93(sandbox: VnpaySandbox, config: VnpayConfig,
                                                  client: VnpayClient) -> None:
    request, _ = paid(sandbox, config)
    assert refund(client, request, 100_000).response_code == "00"
    assert refund(client, request, AMOUNT, full=True).response_code == "93"  # full after a partial
    assert refund(client, request, 60_000).response_code == "93"  # more than what is left
    assert refund(client, request, 50_000).response_code == "00"
    assert (query(client, request).transaction_type, sandbox.payments(request.txn_ref)[0].refunded_vnd) == (
        "03", AMOUNT)


def test_refund_moves_through_05_and_06_and_blocks_a_second_refund(sandbox: VnpaySandbox, config: VnpayConfig,
                                                                   client: VnpayClient) -> None:
    sandbox.refund_polls_per_step = 1
    request, _ = paid(sandbox, config)
    answer = refund(client, request, 50_000)
    assert (answer.response_code, answer.transaction_status) == ("00", "05")
    assert refund(client, request, 10_000).response_code == "94"  # one refund at a time

    seen = [(r.transaction_type, r.transaction_status) for r in (query(client, request) for _ in range(4))]
    assert seen == [("03", "05"), ("03", "06"), ("03", "00"), ("03", "00")]
    assert refund(client, request, 10_000).response_code == "00"


def test_rejected_refund_leaves_the_money_refundable(sandbox: VnpaySandbox, config: VnpayConfig,
                                                    client: VnpayClient) -> None:
    sandbox.refund_final_status = "09"
    request, _ = paid(sandbox, config)
    assert refund(client, request, AMOUNT, full=True).transaction_status == "09"
    assert query(client, request).transaction_status == "09"
    assert sandbox.payments(request.txn_ref)[0].refunded_vnd == 0


def test_refund_of_an_unsuccessful_or_unknown_payment(sandbox: VnpaySandbox, config: VnpayConfig,
                                                      client: VnpayClient) -> None:
    cancelled = opened(config)
    sandbox.complete(cancelled.txn_ref, "cancel")
    assert refund(client, cancelled, AMOUNT, full=True).response_code == "95"
    request, _ = paid(sandbox, config)
    assert refund(client, request, AMOUNT, full=True, transaction_no="99999999").response_code == "91"


def test_refund_always_99_switch(sandbox: VnpaySandbox, config: VnpayConfig, client: VnpayClient) -> None:
    sandbox.refund_always_99 = True
    request, _ = paid(sandbox, config)
    answer = refund(client, request, AMOUNT, full=True)
    assert (answer.response_code, answer.transaction_status) == ("99", None)


# ------------------------------------------------------------------------------------------------ broken API answers

@pytest.fixture
def fake_api() -> Iterator[tuple[VnpayConfig, deque[tuple[int, bytes]]]]:
    answers: deque[tuple[int, bytes]] = deque()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers["Content-Length"]))
            status, body = answers.popleft()
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_port}/api"
    try:
        yield VnpayConfig(url, url, DEMO_TMN_CODE, DEMO_HASH_SECRET, 1, 1), answers
    finally:
        server.shutdown()
        server.server_close()


def test_api_answers_that_are_never_a_verdict(fake_api: tuple[VnpayConfig, deque[tuple[int, bytes]]]) -> None:
    config, answers = fake_api
    request = PayRequest("", "ORD1", AMOUNT, "20250101115500", "20250101121000")
    unsigned_00 = {"vnp_ResponseCode": "00", "vnp_TxnRef": "ORD1", "vnp_TransactionStatus": "00"}
    signed_13 = {**unsigned_00, "vnp_Amount": "15000000", "vnp_PromotionCode": "SUMMER"}
    signed_13["vnp_SecureHash"] = pipe_checksum(signed_13, QUERYDR_RESPONSE_FIELDS[:13], DEMO_HASH_SECRET)
    answers.extend([
        (200, json.dumps(unsigned_00).encode()),
        (200, json.dumps({**unsigned_00, "vnp_SecureHash": "ab" * 64}).encode()),
        (200, b"<html>maintenance</html>"),
        (503, b"busy"),
        (200, json.dumps({"vnp_ResponseCode": "91", "vnp_Message": "not found"}).encode()),
        (200, json.dumps(signed_13).encode()),
    ])
    client = VnpayClient(config)
    try:
        for expected in (VnpayBadResponse, VnpayBadResponse, VnpayBadResponse, VnpayUnavailable):
            with pytest.raises(expected):
                query(client, request)
        assert query(client, request).response_code == "91"
        fallback = query(client, request)  # signed over 13 values although a 14th is present
        assert (fallback.response_code, fallback.transaction_status, fallback.amount_vnd) == ("00", "00", AMOUNT)
    finally:
        client.close()


def test_unreachable_api_is_unavailable() -> None:
    closed = "http://127.0.0.1:9/api"
    client = VnpayClient(VnpayConfig(closed, closed, DEMO_TMN_CODE, DEMO_HASH_SECRET, 1, 1))
    try:
        with pytest.raises(VnpayUnavailable):
            query(client, PayRequest("", "ORD1", AMOUNT, "20250101115500", "20250101121000"))
    finally:
        client.close()

