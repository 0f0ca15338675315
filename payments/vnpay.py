"""VNPay's wire format (API 2.1.0, spec ``vnpay.md``): the signed pay URL, verification of Return/IPN callbacks,
and the ``querydr``/``refund`` merchant API over ``requests``. No other module knows a ``vnp_*`` name.

Money is integer đồng here and ×100 only on the wire; dates are aware datetimes here and GMT+7 ``yyyyMMddHHmmss``
only on the wire. Neither the hash secret nor a ``vnp_SecureHash`` is ever logged.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import logging
import re
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl, quote, quote_plus
from zoneinfo import ZoneInfo

import requests

from notifications.text import strip_diacritics

VIETNAM = ZoneInfo("Asia/Ho_Chi_Minh")
VERSION = "2.1.0"
CURRENCY = "VND"
LOCALES = frozenset({"vn", "en"})

SECURE_HASH = "vnp_SecureHash"
SECURE_HASH_TYPE = "vnp_SecureHashType"
_NOT_SIGNED = frozenset({SECURE_HASH, SECURE_HASH_TYPE})

# §5.3 / §5.8: request checksums are the values joined with "|" in these orders.
QUERYDR_REQUEST_FIELDS = ("vnp_RequestId", "vnp_Version", "vnp_Command", "vnp_TmnCode", "vnp_TxnRef",
                          "vnp_TransactionDate", "vnp_CreateDate", "vnp_IpAddr", "vnp_OrderInfo")
REFUND_REQUEST_FIELDS = ("vnp_RequestId", "vnp_Version", "vnp_Command", "vnp_TmnCode", "vnp_TransactionType",
                         "vnp_TxnRef", "vnp_Amount", "vnp_TransactionNo", "vnp_TransactionDate", "vnp_CreateBy",
                         "vnp_CreateDate", "vnp_IpAddr", "vnp_OrderInfo")
# §5.5 / §5.9: a refund answer is signed over the first 13 of the querydr answer's 15 values; one third-party
# test signs querydr answers over 13 too, hence the fallback.
QUERYDR_RESPONSE_FIELDS = ("vnp_ResponseId", "vnp_Command", "vnp_ResponseCode", "vnp_Message", "vnp_TmnCode",
                           "vnp_TxnRef", "vnp_Amount", "vnp_BankCode", "vnp_PayDate", "vnp_TransactionNo",
                           "vnp_TransactionType", "vnp_TransactionStatus", "vnp_OrderInfo", "vnp_PromotionCode",
                           "vnp_PromotionAmount")
REFUND_RESPONSE_FIELDS = QUERYDR_RESPONSE_FIELDS[:13]

TRANSACTION_TYPE_PAYMENT = "01"
TRANSACTION_TYPE_FULL_REFUND = "02"
TRANSACTION_TYPE_PARTIAL_REFUND = "03"

# VNPay's field is Numeric[1,12] of đồng × 100.
MAX_AMOUNT_VND = (10**12 - 1) // 100
MAX_ORDER_INFO = 255

_DATE_FORMAT = "%Y%m%d%H%M%S"
_DATE = re.compile(r"[0-9]{14}")
_TXN_REF = re.compile(r"[A-Za-z0-9]{1,100}")
_REQUEST_ID = re.compile(r"[A-Za-z0-9]{1,32}")
_BANK_CODE = re.compile(r"[A-Za-z0-9]{3,20}")
_NOT_ORDER_INFO = re.compile(r"[^A-Za-z0-9 ]+")
_SPACES = re.compile(r" {2,}")
_DIGITS = re.compile(r"[0-9]{1,12}")
_HEX_HASH = re.compile(r"[0-9a-fA-F]{128}")
_MAX_QUERY_FIELDS = 100

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class VnpayConfig:
    pay_url: str  # e.g. https://sandbox.vnpayment.vn/paymentv2/vpcpay.html
    api_url: str  # e.g. https://sandbox.vnpayment.vn/merchant_webapi/api/transaction
    tmn_code: str
    hash_secret: str
    connect_timeout_s: float = 5.0
    read_timeout_s: float = 15.0

    def __repr__(self) -> str:  # the dataclass repr would print the secret into any log or traceback
        return f"VnpayConfig(pay_url={self.pay_url!r}, api_url={self.api_url!r}, tmn_code={self.tmn_code!r})"


# ------------------------------------------------------------------------------------------------ formats

def vnp_date(instant: datetime) -> str:
    """An aware instant as VNPay writes it: ``yyyyMMddHHmmss`` in GMT+7, whatever the server's zone."""
    if instant.tzinfo is None or instant.utcoffset() is None:
        raise ValueError("vnp_date needs an aware datetime; a naive one would be read in the server's zone")
    return instant.astimezone(VIETNAM).strftime(_DATE_FORMAT)


def parse_vnp_date(text: str) -> datetime:
    """``yyyyMMddHHmmss`` in GMT+7 -> the aware UTC instant."""
    if not _DATE.fullmatch(text):
        raise ValueError(f"not a VNPay date (14 digits): {text!r}")
    return datetime.strptime(text, _DATE_FORMAT).replace(tzinfo=VIETNAM).astimezone(UTC)


def order_info(text: str) -> str:
    """Free text made safe for ``vnp_OrderInfo``: accents stripped, anything but ``[A-Za-z0-9 ]`` turned into a
    space, spaces collapsed, at most 255 characters. Every VNPay sample encodes that alphabet alike (§3.4), so
    the signature cannot depend on VNPay's encoder. Never put patient data in it: banks display it."""
    bare = _NOT_ORDER_INFO.sub(" ", strip_diacritics(text))
    cleaned = _SPACES.sub(" ", bare).strip()[:MAX_ORDER_INFO].rstrip()
    if not cleaned:
        raise ValueError("order info is empty once reduced to letters, digits and spaces")
    return cleaned


def canonical(params: Mapping[str, str]) -> str:
    """§3.2: the ``vnp_*`` pairs except the hash fields, sorted by key, ``key=quote_plus(value)`` joined by ``&``.
    It is both the signed string and the query string of a pay URL."""
    return _joined(params, quote_plus)


def sign(params: Mapping[str, str], secret: str) -> str:
    """Lower-case hex HMAC-SHA512 of :func:`canonical` (pay URL, Return and IPN)."""
    return _hmac(secret, canonical(params))


def _joined(params: Mapping[str, str], encode: Callable[[str], str], *, skip_empty: bool = False) -> str:
    items = sorted((k, v) for k, v in params.items()
                   if k.startswith("vnp_") and k not in _NOT_SIGNED and not (skip_empty and v == ""))
    return "&".join(f"{key}={encode(value)}" for key, value in items)


def _hmac(secret: str, message: str) -> str:
    return hmac.new(secret.encode(), message.encode(), hashlib.sha512).hexdigest()


def pipe_checksum(values: Mapping[str, str], fields: Sequence[str], secret: str) -> str:
    """§5.1: HMAC-SHA512 of the raw values of ``fields`` joined with ``|`` (an absent value counts as empty)."""
    return _hmac(secret, "|".join(values.get(name, "") for name in fields))


def _same_hash(expected: str, received: str) -> bool:
    # VNPay's C# sample compares ignoring case; compare_digest keeps the comparison constant-time.
    return hmac.compare_digest(expected.encode(), received.lower().encode())


# ------------------------------------------------------------------------------------------------ pay URL

@dataclass(frozen=True, slots=True)
class PayRequest:
    url: str
    txn_ref: str
    amount_vnd: int
    create_date: str  # exactly as sent: querydr and refund must echo it as vnp_TransactionDate
    expire_date: str


def pay_url(config: VnpayConfig, *, txn_ref: str, amount_vnd: int, order_info: str, return_url: str, ip_addr: str,
            created_at: datetime, expires_at: datetime, locale: str = "vn", bank_code: str | None = None,
            order_type: str = "other") -> PayRequest:
    """The signed URL the customer's browser is sent to. ``order_info`` is reduced to VNPay's safe alphabet
    (see :func:`order_info`); everything else is checked and refused with ``ValueError``."""
    _check_txn_ref(txn_ref)
    _check_amount(amount_vnd)
    if locale not in LOCALES:
        raise ValueError(f"locale must be one of {sorted(LOCALES)}")
    if bank_code is not None and not _BANK_CODE.fullmatch(bank_code):
        raise ValueError("bank_code must be 3 to 20 letters or digits")
    if not 10 <= len(return_url) <= 255 or not return_url.startswith(("https://", "http://")):
        raise ValueError("return_url must be an http(s) URL of 10 to 255 characters")
    if expires_at <= created_at:
        raise ValueError("expires_at must be after created_at")
    create_date, expire_date = vnp_date(created_at), vnp_date(expires_at)
    params = {
        "vnp_Version": VERSION,
        "vnp_Command": "pay",
        "vnp_TmnCode": config.tmn_code,
        "vnp_Amount": str(amount_vnd * 100),
        "vnp_CreateDate": create_date,
        "vnp_CurrCode": CURRENCY,
        "vnp_IpAddr": _client_ip(ip_addr),
        "vnp_Locale": locale,
        "vnp_OrderInfo": _order_info(order_info),
        "vnp_OrderType": order_type,
        "vnp_ReturnUrl": return_url,
        "vnp_ExpireDate": expire_date,
        "vnp_TxnRef": txn_ref,
    }
    if bank_code is not None:
        params["vnp_BankCode"] = bank_code
    empty = sorted(key for key, value in params.items() if not value)
    if empty:  # the samples disagree on how an empty value is signed (§3.4), so none is ever sent
        raise ValueError(f"empty VNPay parameters: {', '.join(empty)}")
    url = f"{config.pay_url}?{canonical(params)}&{SECURE_HASH}={sign(params, config.hash_secret)}"
    return PayRequest(url=url, txn_ref=txn_ref, amount_vnd=amount_vnd, create_date=create_date,
                      expire_date=expire_date)


_order_info = order_info  # pay_url's keyword argument shadows the function inside it


def _check_txn_ref(txn_ref: str) -> None:
    if not _TXN_REF.fullmatch(txn_ref):
        raise ValueError("txn_ref must be 1 to 100 letters or digits")


def _check_amount(amount_vnd: int) -> None:
    if isinstance(amount_vnd, bool) or not isinstance(amount_vnd, int):
        raise ValueError("amount_vnd must be an integer number of đồng")
    if not 0 < amount_vnd <= MAX_AMOUNT_VND:
        raise ValueError(f"amount_vnd must be 1 to {MAX_AMOUNT_VND}")


def _check_date(value: str, name: str) -> None:
    if not _DATE.fullmatch(value):
        raise ValueError(f"{name} must be a VNPay date (14 digits, GMT+7), as sent in the pay URL")


def _client_ip(ip_addr: str) -> str:
    try:
        address = ipaddress.ip_address(ip_addr.strip())
    except ValueError:
        raise ValueError(f"not an IP address: {ip_addr!r}") from None
    if isinstance(address, ipaddress.IPv6Address):
        if address.is_loopback:  # local development behind no proxy
            return "127.0.0.1"
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
    return str(address)


# ------------------------------------------------------------------------------------------------ callbacks

class InvalidSignature(Exception):
    """A Return/IPN query that VNPay did not sign for our terminal (or that is ambiguous): answer 97, change
    nothing."""


# The primary construction first, then §3.4's fallbacks: space as %20, and empty values left out.
_VARIANTS: tuple[tuple[str, Callable[[str], str], bool], ...] = (
    ("quote_plus", quote_plus, False),
    ("quote", lambda value: quote(value, safe=""), False),
    ("quote_plus-without-empty", quote_plus, True),
    ("quote-without-empty", lambda value: quote(value, safe=""), True),
)


def verify_callback(raw_query: str | bytes, config: VnpayConfig) -> dict[str, str]:
    """Check the raw (still encoded) query string of a Return or IPN request and return its decoded ``vnp_*``
    parameters, without ``vnp_SecureHash``/``vnp_SecureHashType``. Keys not starting with ``vnp_`` (the merchant's
    own Return URL parameters) are ignored. Raises :class:`InvalidSignature` for a duplicate key, a missing or
    wrong hash, or another terminal."""
    try:
        text = raw_query.decode() if isinstance(raw_query, bytes) else raw_query
        pairs = parse_qsl(text.removeprefix("?"), keep_blank_values=True, errors="strict",
                          max_num_fields=_MAX_QUERY_FIELDS)
    except (UnicodeDecodeError, ValueError) as exc:
        raise InvalidSignature(f"unreadable query string ({type(exc).__name__})") from None
    params: dict[str, str] = {}
    for key, value in pairs:
        if key in params:
            raise InvalidSignature(f"duplicate parameter {key}")
        params[key] = value
    received = params.get(SECURE_HASH, "")
    if not _HEX_HASH.fullmatch(received):
        raise InvalidSignature("vnp_SecureHash missing or not 128 hex digits")
    signed = {key: value for key, value in params.items() if key.startswith("vnp_") and key not in _NOT_SIGNED}
    matched = next((name for name, encode, skip_empty in _VARIANTS
                    if _same_hash(_hmac(config.hash_secret, _joined(signed, encode, skip_empty=skip_empty)),
                                  received)), None)
    if matched is None:
        log.warning("vnpay callback signature invalid txn_ref=%s", signed.get("vnp_TxnRef"))
        raise InvalidSignature("vnp_SecureHash does not match")
    if matched != _VARIANTS[0][0]:
        log.warning("vnpay callback verified with fallback variant=%s txn_ref=%s", matched, signed.get("vnp_TxnRef"))
    if signed.get("vnp_TmnCode") != config.tmn_code:
        raise InvalidSignature("callback for another terminal")
    return signed


# ------------------------------------------------------------------------------------------------ merchant API

@dataclass(frozen=True, slots=True)
class QueryResult:
    response_code: str  # the API call's result (00, 91, 94, 97, 99...), not the payment's
    transaction_status: str | None
    transaction_type: str | None
    amount_vnd: int | None  # vnp_Amount // 100, read after the checksum was verified on the raw string
    transaction_no: str | None
    pay_date: str | None
    raw: dict[str, str]


@dataclass(frozen=True, slots=True)
class RefundResult:
    response_code: str
    transaction_status: str | None
    amount_vnd: int | None
    raw: dict[str, str]


class VnpayError(Exception):
    """VNPay's answer is not something to act on."""


class VnpayUnavailable(VnpayError):
    """Network error, timeout or HTTP 5xx: the outcome is unknown; ask again later (query before re-refunding)."""


class VnpayBadResponse(VnpayError):
    """An answer that cannot be trusted (not JSON, or a 00 whose checksum does not verify): never a verdict."""


class VnpayClient:
    """Client of VNPay's merchant web API for one terminal, keeping its HTTP connections open.

    Answers that are not ``00`` usually come unsigned; they are returned with their code and ``None`` in every
    field read from the body, because they are verdicts on the call (not found, rate limited, bad checksum...)
    and say nothing trustworthy about the payment. A ``00`` answer must verify (15 values, or 13 for querydr's
    fallback order) and be about our terminal and TxnRef; so must any answer that carries a hash at all, because a
    hash that fails means the answer was altered or came from elsewhere."""

    def __init__(self, config: VnpayConfig) -> None:
        self._config = config
        self._session = requests.Session()

    def querydr(self, *, txn_ref: str, transaction_date: str, ip_addr: str, order_info: str,
                now: datetime | None = None, request_id: str | None = None,
                transaction_no: str | None = None) -> QueryResult:
        """Ask what happened to a payment. ``transaction_date`` is the pay URL's ``vnp_CreateDate``, unchanged."""
        _check_txn_ref(txn_ref)
        _check_date(transaction_date, "transaction_date")
        body = self._request_body("querydr", request_id, now, ip_addr, order_info)
        body.update({"vnp_TxnRef": txn_ref, "vnp_TransactionDate": transaction_date})
        body[SECURE_HASH] = pipe_checksum(body, QUERYDR_REQUEST_FIELDS, self._config.hash_secret)
        if transaction_no is not None:  # sent when known, not part of the checksum (§5.3)
            body["vnp_TransactionNo"] = transaction_no
        raw = self._post(body)
        code = raw["vnp_ResponseCode"]
        signed = self._verify(raw, body, QUERYDR_RESPONSE_FIELDS, REFUND_RESPONSE_FIELDS)
        if not signed:
            return QueryResult(code, None, None, None, None, None, raw)
        return QueryResult(
            response_code=code,
            transaction_status=raw.get("vnp_TransactionStatus") or None,
            transaction_type=raw.get("vnp_TransactionType") or None,
            amount_vnd=_amount_vnd(raw),
            transaction_no=raw.get("vnp_TransactionNo") or None,
            pay_date=raw.get("vnp_PayDate") or None,
            raw=raw,
        )

    def refund(self, *, txn_ref: str, amount_vnd: int, full: bool, transaction_date: str, transaction_no: str | None,
               create_by: str, ip_addr: str, order_info: str, now: datetime | None = None,
               request_id: str | None = None) -> RefundResult:
        """Ask VNPay to refund ``amount_vnd`` of a successful payment. Refunds are asynchronous: follow up with
        :meth:`querydr`. Never resend after :class:`VnpayUnavailable` without querying first."""
        _check_txn_ref(txn_ref)
        _check_amount(amount_vnd)
        _check_date(transaction_date, "transaction_date")
        if not create_by:
            raise ValueError("create_by (the operator asking for the refund) is required")
        body = self._request_body("refund", request_id, now, ip_addr, order_info)
        body.update({
            "vnp_TransactionType": TRANSACTION_TYPE_FULL_REFUND if full else TRANSACTION_TYPE_PARTIAL_REFUND,
            "vnp_TxnRef": txn_ref,
            "vnp_Amount": str(amount_vnd * 100),
            # VNPay's own demos send "0" when the transaction number is unknown
            "vnp_TransactionNo": transaction_no or "0",
            "vnp_TransactionDate": transaction_date,
            "vnp_CreateBy": create_by,
        })
        body[SECURE_HASH] = pipe_checksum(body, REFUND_REQUEST_FIELDS, self._config.hash_secret)
        raw = self._post(body)
        code = raw["vnp_ResponseCode"]
        if not self._verify(raw, body, REFUND_RESPONSE_FIELDS):
            return RefundResult(code, None, None, raw)
        return RefundResult(code, raw.get("vnp_TransactionStatus") or None, _amount_vnd(raw), raw)

    def close(self) -> None:
        self._session.close()

    def _request_body(self, command: str, request_id: str | None, now: datetime | None, ip_addr: str,
                      info: str) -> dict[str, str]:
        request_id = request_id if request_id is not None else uuid.uuid4().hex
        if not _REQUEST_ID.fullmatch(request_id):
            raise ValueError("request_id must be 1 to 32 letters or digits")
        return {
            "vnp_RequestId": request_id,
            "vnp_Version": VERSION,
            "vnp_Command": command,
            "vnp_TmnCode": self._config.tmn_code,
            "vnp_CreateDate": vnp_date(now if now is not None else datetime.now(UTC)),
            "vnp_IpAddr": _client_ip(ip_addr),
            "vnp_OrderInfo": _order_info(info),
        }

    def _post(self, body: dict[str, str]) -> dict[str, str]:
        config = self._config
        command, txn_ref, request_id = body["vnp_Command"], body["vnp_TxnRef"], body["vnp_RequestId"]
        try:
            response = self._session.post(config.api_url, json=body,
                                          timeout=(config.connect_timeout_s, config.read_timeout_s))
        except (requests.Timeout, requests.ConnectionError, requests.exceptions.ChunkedEncodingError) as exc:
            log.warning("vnpay %s unreachable txn_ref=%s request_id=%s error=%s", command, txn_ref, request_id,
                        type(exc).__name__)
            raise VnpayUnavailable(f"VNPay {command} unreachable ({type(exc).__name__})") from exc
        status = response.status_code
        if status >= 500:
            log.warning("vnpay %s failed txn_ref=%s request_id=%s http=%d", command, txn_ref, request_id, status)
            raise VnpayUnavailable(f"VNPay {command} answered HTTP {status}")
        try:
            data: object = response.json()
        except ValueError:
            data = None
        if status != 200 or not isinstance(data, dict) or not isinstance(data.get("vnp_ResponseCode"), str):
            log.warning("vnpay %s answer unreadable txn_ref=%s request_id=%s http=%d", command, txn_ref,
                        request_id, status)
            raise VnpayBadResponse(f"VNPay {command} answered HTTP {status} without a vnp_ResponseCode")
        raw = _strings(data)
        log.info("vnpay %s answered txn_ref=%s request_id=%s code=%s status=%s", command, txn_ref, request_id,
                 raw["vnp_ResponseCode"], raw.get("vnp_TransactionStatus"))
        return raw

    def _verify(self, raw: dict[str, str], request: Mapping[str, str], fields: Sequence[str],
                fallback: Sequence[str] | None = None) -> bool:
        """True when the answer is signed by our secret and is about our request; False for an unsigned
        non-00 answer. Raises VnpayBadResponse for a 00 that is not, or for any signature that fails."""
        command, code = request["vnp_Command"], raw["vnp_ResponseCode"]
        received = raw.get(SECURE_HASH, "")
        if not received and code != "00":
            return False
        orders = [fields] if fallback is None else [fields, fallback]
        matched = next((order for order in orders if _HEX_HASH.fullmatch(received)
                        and _same_hash(pipe_checksum(raw, order, self._config.hash_secret), received)), None)
        if matched is None:
            log.warning("vnpay %s answer checksum invalid txn_ref=%s code=%s", command, request["vnp_TxnRef"], code)
            raise VnpayBadResponse(f"VNPay {command} answer (code {code}) fails its checksum")
        if matched is not fields:
            log.warning("vnpay %s answer verified with the %d-value order txn_ref=%s", command, len(matched),
                        request["vnp_TxnRef"])
        for name in ("vnp_TmnCode", "vnp_TxnRef"):
            if raw.get(name, request[name]) != request[name]:
                raise VnpayBadResponse(f"VNPay {command} answer is about another {name}")
        if raw.get("vnp_Amount") and not _DIGITS.fullmatch(raw["vnp_Amount"]):
            raise VnpayBadResponse(f"VNPay {command} answer has a malformed vnp_Amount")
        return True


def _strings(data: dict[Any, Any]) -> dict[str, str]:
    # VNPay answers with strings; a number is kept in its JSON spelling so the checksum still sees the raw text.
    raw: dict[str, str] = {}
    for key, value in data.items():
        if isinstance(value, str):
            raw[str(key)] = value
        elif isinstance(value, int) and not isinstance(value, bool):
            raw[str(key)] = str(value)
        elif value is None:
            raw[str(key)] = ""
    return raw


def _amount_vnd(raw: Mapping[str, str]) -> int | None:
    amount = raw.get("vnp_Amount", "")
    return int(amount) // 100 if _DIGITS.fullmatch(amount) else None
