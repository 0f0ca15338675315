"""SMS sending through an eSMS-compatible JSON gateway, for OTP sign-in and the notification outbox.

Protocol and error codes: eSMS's published docs (repository devesms/gitbook_esms_for_develop_v2_en,
``esms-api/send-sms-api/send-otp-customer-care-message.md`` and ``esms-api/table-of-error-codes.md``).
Message content is never logged: it may carry an OTP.
"""

import logging
from dataclasses import dataclass

import requests

from notifications.phone import mask_phone, to_domestic
from notifications.text import SmsEncoding, sms_segments

SEND_PATH = "/MainService.svc/json/SendMultipleMessage_V4_post_json/"

CODE_ACCEPTED = "100"
# eSMS answers a repeated RequestId with 124 ("Request exist", SendStatus 5) and no SMSID: the first
# request was accepted, so for us it is a success.
CODE_DUPLICATE_REQUEST = "124"
# Codes of eSMS's table that describe the account, sender, recipient or content: retrying cannot help.
# (99 blocked number, 101 credentials, 102 no price list, 103 balance, 104 brandname, 108 phone format,
# 140 IP not whitelisted, 146 customer-care template, 177 carrier not registered, 300 missing SmsType.)
# Any other code is undocumented and treated as transient; retrying is safe because of RequestId.
PERMANENT_CODES = frozenset({"99", "101", "102", "103", "104", "108", "140", "146", "177", "300"})

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class SmsGatewayConfig:
    base_url: str
    api_key: str
    secret_key: str
    brandname: str
    sms_type: str = "2"  # eSMS: 2 = customer care / OTP through a registered brandname
    timeout_s: float = 5.0
    sandbox_flag: bool = False  # eSMS "Sandbox": "1": validated and answered, never delivered or charged


@dataclass(frozen=True, slots=True)
class SmsReceipt:
    # The gateway's SMSID; None when it reported the request as a duplicate of one it already accepted
    # (its delivery callback still carries our RequestId).
    provider_ref: str | None
    encoding: SmsEncoding
    segments: int


class SmsError(Exception):
    """The gateway did not take the message."""


class SmsRejected(SmsError):
    """The gateway refused the message for a reason that sending it again will not fix."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"SMS gateway rejected the message (code {code}): {message}")
        self.code = code
        self.message = message


class SmsUnavailable(SmsError):
    """The gateway could not be reached or was busy; send again later with the same request_id."""


class SmsGateway:
    """Client of one gateway account, keeping its HTTP connections open between sends."""

    def __init__(self, config: SmsGatewayConfig) -> None:
        self._config = config
        self._url = config.base_url.rstrip("/") + SEND_PATH
        self._session = requests.Session()

    def send(self, phone_e164: str, content: str, request_id: str) -> SmsReceipt:
        """Hand one SMS to the gateway. ``request_id`` must be stable across retries of the same message."""
        config = self._config
        encoding, segments = sms_segments(content)
        body = {
            "ApiKey": config.api_key,
            "SecretKey": config.secret_key,
            "Phone": to_domestic(phone_e164),
            "Content": content,
            "Brandname": config.brandname,
            "SmsType": config.sms_type,
            "IsUnicode": "1" if encoding == "UCS-2" else "0",
            "Sandbox": "1" if config.sandbox_flag else "0",
            "RequestId": request_id,
        }
        masked = mask_phone(phone_e164)
        try:
            # requests has no overall deadline: bound the connect and each read separately.
            response = self._session.post(self._url, json=body, timeout=(config.timeout_s, config.timeout_s))
        except (requests.Timeout, requests.ConnectionError, requests.exceptions.ChunkedEncodingError) as exc:
            log.warning(
                "sms gateway unreachable phone=%s request_id=%s error=%s",
                masked,
                request_id,
                type(exc).__name__,
            )
            raise SmsUnavailable(f"SMS gateway unreachable ({type(exc).__name__})") from exc

        status = response.status_code
        if status >= 500 or status == 429:
            log.warning("sms gateway busy phone=%s request_id=%s http=%d", masked, request_id, status)
            raise SmsUnavailable(f"SMS gateway answered HTTP {status}")
        if status != 200:
            log.warning("sms gateway refused phone=%s request_id=%s http=%d", masked, request_id, status)
            raise SmsRejected(f"HTTP {status}", response.reason or "")

        try:
            data: object = response.json()
        except ValueError:
            data = None
        if not isinstance(data, dict) or not isinstance(data.get("CodeResult"), str):
            # Whether the message was accepted is unknown; a retry with the same RequestId settles it.
            log.warning("sms gateway answer unreadable phone=%s request_id=%s", masked, request_id)
            raise SmsUnavailable("SMS gateway answered without a CodeResult")

        code: str = data["CodeResult"]
        if code in (CODE_ACCEPTED, CODE_DUPLICATE_REQUEST):
            sms_id = data.get("SMSID")
            provider_ref = sms_id if isinstance(sms_id, str) and sms_id else None
            log.info(
                "sms accepted phone=%s request_id=%s code=%s sms_id=%s segments=%d",
                masked,
                request_id,
                code,
                provider_ref,
                segments,
            )
            return SmsReceipt(provider_ref=provider_ref, encoding=encoding, segments=segments)

        error_message = data.get("ErrorMessage")
        detail = error_message if isinstance(error_message, str) else ""
        log.warning("sms not accepted phone=%s request_id=%s code=%s", masked, request_id, code)
        if code in PERMANENT_CODES:
            raise SmsRejected(code, detail)
        raise SmsUnavailable(f"SMS gateway answered code {code}: {detail}")

    def close(self) -> None:
        self._session.close()
