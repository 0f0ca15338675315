"""VNPay's wire format: canonical string and known-answer vectors (spec vnpay.md §8), callback verification,
GMT+7 dates, OrderInfo sanitising and pay URL validation."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from urllib.parse import parse_qsl, quote, quote_plus, urlsplit

import pytest

from payments.vnpay import (
    QUERYDR_REQUEST_FIELDS,
    QUERYDR_RESPONSE_FIELDS,
    REFUND_REQUEST_FIELDS,
    InvalidSignature,
    VnpayConfig,
    canonical,
    order_info,
    parse_vnp_date,
    pay_url,
    pipe_checksum,
    sign,
    verify_callback,
    vnp_date,
)

SECRET = "TESTSECRETTESTSECRETTESTSECRET12"
CONFIG = VnpayConfig(pay_url="https://sandbox.vnpayment.vn/paymentv2/vpcpay.html",
                     api_url="https://sandbox.vnpayment.vn/merchant_webapi/api/transaction",
                     tmn_code="TESTTMN1", hash_secret=SECRET)
CREATED = datetime(2025, 1, 1, 4, 55, tzinfo=UTC)  # 11:55 in Hà Nội

V1_PARAMS = {
    "vnp_Amount": "1806000", "vnp_Command": "pay", "vnp_CreateDate": "20210801153333", "vnp_CurrCode": "VND",
    "vnp_IpAddr": "127.0.0.1", "vnp_Locale": "vn", "vnp_OrderInfo": "Thanh toan don hang :5",
    "vnp_OrderType": "other", "vnp_ReturnUrl": "https://domainmerchant.vn/ReturnUrl", "vnp_TmnCode": "DEMOV210",
    "vnp_TxnRef": "5", "vnp_Version": "2.1.0",
}
V1_CANONICAL = (
    "vnp_Amount=1806000&vnp_Command=pay&vnp_CreateDate=20210801153333&vnp_CurrCode=VND&vnp_IpAddr=127.0.0.1"
    "&vnp_Locale=vn&vnp_OrderInfo=Thanh+toan+don+hang+%3A5&vnp_OrderType=other"
    "&vnp_ReturnUrl=https%3A%2F%2Fdomainmerchant.vn%2FReturnUrl&vnp_TmnCode=DEMOV210&vnp_TxnRef=5&vnp_Version=2.1.0"
)


def callback(params: dict[str, str], secret: str = SECRET, prefix: str = "") -> str:
    return f"{prefix}{canonical(params)}&vnp_SecureHash={sign(params, secret)}"


def result_params(**changes: str) -> dict[str, str]:
    params = {"vnp_Amount": "15000000", "vnp_BankCode": "NCB", "vnp_BankTranNo": "VNP14226112",
              "vnp_CardType": "ATM", "vnp_OrderInfo": "Thanh toan phi kham ORD20250101115500X7",
              "vnp_PayDate": "20250101115812", "vnp_ResponseCode": "00", "vnp_TmnCode": "TESTTMN1",
              "vnp_TransactionNo": "14226112", "vnp_TransactionStatus": "00", "vnp_TxnRef": "ORD20250101115500X7"}
    params.update(changes)
    return params


# ------------------------------------------------------------------------------------------------ vectors

def test_v1_canonical_string_equals_the_official_example_query() -> None:
    assert canonical(V1_PARAMS) == V1_CANONICAL


def test_canonical_ignores_hash_fields_and_keys_without_the_vnp_prefix() -> None:
    extra = {**V1_PARAMS, "vnp_SecureHash": "ab", "vnp_SecureHashType": "HmacSHA512", "order_id": "7"}
    assert canonical(extra) == V1_CANONICAL


def test_v4_hmac_sha512_sanity() -> None:
    assert pipe_checksum({"x": "data"}, ("x",), "secret") == (
        "6274071d33dec2728a2a1c903697fc1210b3252221c3d137e12d9f1ae5c8ed53"
        "e05e692b05a9eefff289667e2387c0fc0bd8a3d9bd7000782730c856a77a77d5"
    )


def pipe_values(fields: tuple[str, ...], joined: str) -> dict[str, str]:
    values = joined.split("|")
    assert len(values) == len(fields)
    return dict(zip(fields, values, strict=True))


@pytest.mark.parametrize(("fields", "joined", "expected"), [
    (QUERYDR_REQUEST_FIELDS,
     "REQ20250101120000a1|2.1.0|querydr|TESTTMN1|ORD20250101115500X7|20250101115500|20250101120000|203.0.113.10"
     "|Truy van giao dich ORD20250101115500X7",
     "63bd99593633bff12c2cea204c39438b4f90be61737652e6cc6ee1beca46a6c5"
     "6e037e430c3e2a2b628d98b894022209709613f8a8e766615e4e08b2a521b439"),
    (REFUND_REQUEST_FIELDS,
     "REF20250102090000b2|2.1.0|refund|TESTTMN1|02|ORD20250101115500X7|15000000|14226112|20250101115500|ops01"
     "|20250102090000|203.0.113.10|Hoan tien ORD20250101115500X7",
     "f430c250de86dce2d98f2c951eea3a76574198006a00137579b95bf5de60326d"
     "7b1860ae117d1991475576c9c5c52a8998453be02155d00ed839dc295923f766"),
    (QUERYDR_RESPONSE_FIELDS,
     "a1b2c3|querydr|00|QueryDR Success|TESTTMN1|ORD20250101115500X7|15000000|NCB|20250101115812|14226112|01|00"
     "|Thanh toan kham benh ORD20250101115500X7||",
     "3d09bfb71e2abf75cfc26542733c56f67245f04d05820d13423dde24bfe3f514"
     "5afa7764210eb4f1c1f97f3a62485ad0d38b4972e2b2723beb6f95cd10654755"),
], ids=["querydr-request", "refund-request", "querydr-response"])
def test_v6_pipe_checksum_pins(fields: tuple[str, ...], joined: str, expected: str) -> None:
    assert pipe_checksum(pipe_values(fields, joined), fields, SECRET) == expected


def test_absent_pipe_values_count_as_empty() -> None:
    full = pipe_values(QUERYDR_RESPONSE_FIELDS, "a|querydr|00|m|T|R|100|NCB|d|1|01|00|info||")
    without = {k: v for k, v in full.items() if v}
    assert pipe_checksum(without, QUERYDR_RESPONSE_FIELDS, SECRET) == pipe_checksum(full, QUERYDR_RESPONSE_FIELDS,
                                                                                    SECRET)


# ------------------------------------------------------------------------------------------------ callbacks

@pytest.mark.parametrize("info", [
    "Thanh toán phí khám: bé Đức",
    "a b  c",
    "https://x.vn/a?b=c&d=e",
    "1+1=2 100% ~*!'()",
])
def test_signed_callback_round_trips_awkward_text(info: str) -> None:
    params = result_params(vnp_OrderInfo=info)
    assert verify_callback(callback(params), CONFIG) == params


def test_bytes_and_a_leading_question_mark_are_accepted() -> None:
    params = result_params()
    assert verify_callback(callback(params, prefix="?").encode(), CONFIG) == params


def test_uppercase_hex_is_accepted() -> None:
    params = result_params()
    query = f"{canonical(params)}&vnp_SecureHash={sign(params, SECRET).upper()}"
    assert verify_callback(query, CONFIG) == params


def test_merchant_parameters_on_the_return_url_are_ignored() -> None:
    params = result_params()
    query = callback(params, prefix="order_id=5f9c&lang=vi&")
    assert verify_callback(query, CONFIG) == params


def test_secure_hash_type_is_not_signed_and_not_returned() -> None:
    params = result_params()
    query = callback(params) + "&vnp_SecureHashType=HmacSHA512"
    assert verify_callback(query, CONFIG) == params


def test_duplicate_key_is_invalid_even_when_both_values_agree() -> None:
    params = result_params()
    with pytest.raises(InvalidSignature, match="duplicate"):
        verify_callback(callback(params) + "&vnp_TxnRef=ORD20250101115500X7", CONFIG)


@pytest.mark.parametrize(("key", "value"), [("vnp_Amount", "150000000"), ("vnp_ResponseCode", "24"),
                                            ("vnp_TxnRef", "ORD20250101115500X8")])
def test_tampered_value_is_invalid(key: str, value: str) -> None:
    params = result_params()
    tampered = callback(params).replace(f"{key}={params[key]}", f"{key}={value}")
    with pytest.raises(InvalidSignature):
        verify_callback(tampered, CONFIG)


def test_added_vnp_parameter_is_invalid() -> None:
    with pytest.raises(InvalidSignature):
        verify_callback(callback(result_params()) + "&vnp_PromotionCode=X", CONFIG)


@pytest.mark.parametrize("query", [
    "vnp_TxnRef=1",  # no hash
    "vnp_TxnRef=1&vnp_SecureHash=abc",  # not 128 hex digits
    "vnp_TxnRef=%FF&vnp_SecureHash=" + "a" * 128,  # not UTF-8
])
def test_malformed_callback_is_invalid(query: str) -> None:
    with pytest.raises(InvalidSignature):
        verify_callback(query, CONFIG)


def test_other_secret_or_other_terminal_is_invalid() -> None:
    with pytest.raises(InvalidSignature):
        verify_callback(callback(result_params(), secret="another-secret"), CONFIG)
    with pytest.raises(InvalidSignature, match="terminal"):
        verify_callback(callback(result_params(vnp_TmnCode="OTHERTMN")), CONFIG)


def test_fallback_space_as_percent_20_is_accepted() -> None:
    params = result_params()
    signed = "&".join(f"{k}={quote(v, safe='')}" for k, v in sorted(params.items()))
    query = f"{canonical(params)}&vnp_SecureHash={pipe_checksum({'m': signed}, ('m',), SECRET)}"
    assert verify_callback(query, CONFIG) == params


def test_fallback_without_empty_values_is_accepted() -> None:
    params = result_params(vnp_BankTranNo="")
    signed = "&".join(f"{k}={quote_plus(v)}" for k, v in sorted(params.items()) if v)
    query = f"{canonical(params)}&vnp_SecureHash={pipe_checksum({'m': signed}, ('m',), SECRET)}"
    assert verify_callback(query, CONFIG) == params


# ------------------------------------------------------------------------------------------------ dates

@pytest.mark.parametrize(("instant", "expected"), [
    (datetime(2025, 1, 1, 4, 55, tzinfo=UTC), "20250101115500"),
    (datetime(2025, 1, 1, 17, 0, tzinfo=UTC), "20250102000000"),  # 17:00 UTC is midnight of the next day
    (datetime(2024, 12, 31, 16, 59, 59, tzinfo=UTC), "20241231235959"),
    (datetime(2025, 1, 1, 7, 0, tzinfo=timezone(timedelta(hours=-5))), "20250101190000"),
])
def test_vnp_date_is_gmt_plus_7_whatever_the_instant_zone(instant: datetime, expected: str) -> None:
    assert vnp_date(instant) == expected
    parsed = parse_vnp_date(expected)
    assert parsed == instant and parsed.tzinfo is UTC


def test_naive_datetimes_and_malformed_dates_are_refused() -> None:
    with pytest.raises(ValueError, match="aware"):
        vnp_date(datetime(2025, 1, 1, 12, 0))
    for text in ("2025010112000", "20251301120000", "2025-01-01 12:0", "２０２５０１０１１２００００"):
        with pytest.raises(ValueError):
            parse_vnp_date(text)


# ------------------------------------------------------------------------------------------------ order info

@pytest.mark.parametrize(("text", "expected"), [
    ("Thanh toán phí khám ORD1", "Thanh toan phi kham ORD1"),
    ("Đơn hàng #42: thuốc/đơn  (x2)", "Don hang 42 thuoc don x2"),
    ("  a\tb\nc  ", "a b c"),
])
def test_order_info_keeps_letters_digits_and_single_spaces(text: str, expected: str) -> None:
    assert order_info(text) == expected


def test_order_info_is_cut_to_255_without_a_trailing_space() -> None:
    cleaned = order_info("ab " * 200)
    assert len(cleaned) <= 255 and not cleaned.endswith(" ") and cleaned.startswith("ab ab")


@pytest.mark.parametrize("text", ["", "   ", "!!! ??? ---"])
def test_order_info_that_reduces_to_nothing_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="empty"):
        order_info(text)


# ------------------------------------------------------------------------------------------------ pay URL

def make_pay_url(**changes: Any) -> Any:
    arguments: dict[str, Any] = {
        "txn_ref": "ORD20250101115500X7", "amount_vnd": 150_000,
        "order_info": "Thanh toán phí khám ORD20250101115500X7",
        "return_url": "https://lienthong.vn/payments/return?lang=vi", "ip_addr": "203.0.113.10",
        "created_at": CREATED, "expires_at": CREATED + timedelta(minutes=15),
    }
    arguments.update(changes)
    return pay_url(CONFIG, **arguments)


def test_pay_url_is_the_signed_canonical_query() -> None:
    request = make_pay_url(bank_code="VNBANK")
    base, _, query = request.url.partition("?")
    params = dict(parse_qsl(query, keep_blank_values=True))
    received = params.pop("vnp_SecureHash")

    assert base == CONFIG.pay_url
    assert query == f"{canonical(params)}&vnp_SecureHash={received}"
    assert received == sign(params, SECRET)
    assert params == {
        "vnp_Amount": "15000000", "vnp_BankCode": "VNBANK", "vnp_Command": "pay", "vnp_CreateDate": "20250101115500",
        "vnp_CurrCode": "VND", "vnp_ExpireDate": "20250101121000", "vnp_IpAddr": "203.0.113.10", "vnp_Locale": "vn",
        "vnp_OrderInfo": "Thanh toan phi kham ORD20250101115500X7", "vnp_OrderType": "other",
        "vnp_ReturnUrl": "https://lienthong.vn/payments/return?lang=vi", "vnp_TmnCode": "TESTTMN1",
        "vnp_TxnRef": "ORD20250101115500X7", "vnp_Version": "2.1.0",
    }
    assert (request.txn_ref, request.amount_vnd, request.create_date, request.expire_date) == (
        "ORD20250101115500X7", 150_000, "20250101115500", "20250101121000")
    assert "vnp_SecureHashType" not in query


@pytest.mark.parametrize(("ip", "sent"), [("::1", "127.0.0.1"), ("::ffff:203.0.113.9", "203.0.113.9"),
                                          ("2001:db8::1", "2001:db8::1"), (" 10.0.0.1 ", "10.0.0.1")])
def test_pay_url_normalises_the_client_ip(ip: str, sent: str) -> None:
    query = urlsplit(make_pay_url(ip_addr=ip).url).query
    assert dict(parse_qsl(query))["vnp_IpAddr"] == sent


@pytest.mark.parametrize(("changes", "message"), [
    ({"txn_ref": "ORD-2025-0001"}, "txn_ref"),
    ({"txn_ref": ""}, "txn_ref"),
    ({"txn_ref": "A" * 101}, "txn_ref"),
    ({"amount_vnd": 0}, "amount_vnd"),
    ({"amount_vnd": -5}, "amount_vnd"),
    ({"amount_vnd": 150000.0}, "amount_vnd"),
    ({"amount_vnd": True}, "amount_vnd"),
    ({"amount_vnd": 10**10}, "amount_vnd"),
    ({"order_info": "%%%"}, "empty"),
    ({"ip_addr": "localhost"}, "IP"),
    ({"ip_addr": ""}, "IP"),
    ({"return_url": "/return"}, "return_url"),
    ({"locale": "vi"}, "locale"),
    ({"bank_code": "N-B"}, "bank_code"),
    ({"order_type": ""}, "empty VNPay parameters: vnp_OrderType"),
    ({"expires_at": CREATED}, "expires_at"),
    ({"created_at": datetime(2025, 1, 1, 12, 0), "expires_at": datetime(2025, 1, 1, 12, 15)}, "aware"),
])
def test_pay_url_refuses_bad_input(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make_pay_url(**changes)


def test_config_repr_hides_the_secret() -> None:
    assert SECRET not in repr(CONFIG)
