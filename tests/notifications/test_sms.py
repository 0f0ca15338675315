"""The real SMS gateway client against the local sandbox over HTTP: what reaches a phone, and when not."""

import logging
from collections.abc import Callable

import pytest
import requests

from notifications.sms import SEND_PATH, SmsGateway, SmsRejected, SmsUnavailable
from notifications.sms_sandbox import FaultMode, SmsSandbox

MakeGateway = Callable[..., SmsGateway]

PHONE = "+84912345678"
OTP = "Lienthong: ma dang nhap cua ban la 482913. Khong chia se ma nay."


def test_sent_sms_lands_in_the_inbox(gateway: SmsGateway, sandbox: SmsSandbox) -> None:
    receipt = gateway.send(PHONE, OTP, "otp-1")

    assert receipt.provider_ref
    assert (receipt.encoding, receipt.segments) == ("GSM-7", 1)
    [sms] = sandbox.messages()
    assert (sms.sms_id, sms.phone, sms.phone_e164) == (receipt.provider_ref, "0912345678", PHONE)
    assert (sms.content, sms.brandname, sms.request_id) == (OTP, "LIENTHONG", "otp-1")

    inbox = requests.get(f"{sandbox.base_url}/inbox", timeout=5)
    assert inbox.status_code == 200
    [listed] = inbox.json()["messages"]
    assert (listed["sms_id"], listed["phone"], listed["content"]) == (receipt.provider_ref, "0912345678", OTP)
    assert listed["received_at"].endswith("+00:00")


def test_logs_name_the_masked_phone_but_never_the_message(
    gateway: SmsGateway, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    gateway.send(PHONE, OTP, "otp-log")

    assert "+8491*****78" in caplog.text
    assert "otp-log" in caplog.text
    assert "482913" not in caplog.text
    assert "912345678" not in caplog.text


def test_accented_text_is_sent_as_unicode_and_arrives_intact(
    gateway: SmsGateway, sandbox: SmsSandbox
) -> None:
    receipt = gateway.send(PHONE, "Mã đăng nhập Liên Thông: 482913", "otp-2")

    assert (receipt.encoding, receipt.segments) == ("UCS-2", 1)
    assert sandbox.messages()[0].content == "Mã đăng nhập Liên Thông: 482913"


@pytest.mark.parametrize(
    ("changes", "code"),
    [
        ({"api_key": "wrong-key"}, "101"),
        ({"secret_key": "wrong-secret"}, "101"),
        ({"brandname": "NOT-REGISTERED"}, "104"),
        ({"sms_type": "1"}, "300"),
    ],
)
def test_misconfigured_account_is_rejected_and_nothing_is_sent(
    make_gateway: MakeGateway, sandbox: SmsSandbox, changes: dict[str, str], code: str
) -> None:
    with pytest.raises(SmsRejected) as caught:
        make_gateway(**changes).send(PHONE, OTP, "otp-3")
    assert caught.value.code == code
    assert sandbox.messages() == []


def test_content_longer_than_the_gateway_takes_is_rejected(gateway: SmsGateway, sandbox: SmsSandbox) -> None:
    with pytest.raises(SmsRejected) as caught:
        gateway.send(PHONE, "a" * 460, "long-1")
    assert caught.value.code == "146"
    assert sandbox.messages() == []


def test_repeated_request_id_is_delivered_once(gateway: SmsGateway, sandbox: SmsSandbox) -> None:
    first = gateway.send(PHONE, OTP, "otp-dup")
    again = gateway.send(PHONE, OTP, "otp-dup")
    other = gateway.send(PHONE, OTP, "otp-other")

    assert first.provider_ref
    assert again.provider_ref is None  # eSMS answers 124 "Request exist" without repeating the SMSID
    assert [sms.sms_id for sms in sandbox.messages()] == [other.provider_ref, first.provider_ref]


def test_sandbox_flag_validates_without_delivering(make_gateway: MakeGateway, sandbox: SmsSandbox) -> None:
    assert make_gateway(sandbox_flag=True).send(PHONE, OTP, "dry-run").provider_ref
    assert sandbox.messages() == []
    with pytest.raises(SmsRejected):
        make_gateway(sandbox_flag=True, api_key="wrong-key").send(PHONE, OTP, "dry-run")


@pytest.mark.parametrize("mode", ["http500", "busy"])
def test_failing_gateway_is_retryable_and_the_retry_is_delivered(
    gateway: SmsGateway, sandbox: SmsSandbox, mode: FaultMode
) -> None:
    sandbox.fail_next(2, mode)
    for _ in range(2):
        with pytest.raises(SmsUnavailable):
            gateway.send(PHONE, OTP, "otp-retry")
    assert sandbox.messages() == []

    receipt = gateway.send(PHONE, OTP, "otp-retry")
    assert [sms.sms_id for sms in sandbox.messages()] == [receipt.provider_ref]


def test_timed_out_send_is_retryable_and_not_delivered_twice(
    make_gateway: MakeGateway, sandbox: SmsSandbox
) -> None:
    gateway = make_gateway(timeout_s=0.3)
    sandbox.fail_next(1, "timeout", delay_s=1.0)
    with pytest.raises(SmsUnavailable):
        gateway.send(PHONE, OTP, "otp-slow")

    receipt = gateway.send(PHONE, OTP, "otp-slow")
    sandbox.stop()  # waits until the stalled first request has been handled as well

    assert [sms.sms_id for sms in sandbox.messages()] == [receipt.provider_ref]


def test_unreachable_gateway_is_retryable(make_gateway: MakeGateway, sandbox: SmsSandbox) -> None:
    gateway = make_gateway()
    sandbox.stop()
    with pytest.raises(SmsUnavailable):
        gateway.send(PHONE, OTP, "otp-down")


def test_inbox_filters_by_phone_written_any_way_newest_first(
    gateway: SmsGateway, sandbox: SmsSandbox
) -> None:
    gateway.send(PHONE, "first", "a")
    gateway.send("+84321234567", "other phone", "b")
    gateway.send(PHONE, "second", "c")

    def contents(**params: str) -> list[str]:
        response = requests.get(f"{sandbox.base_url}/inbox", params=params, timeout=5)
        assert response.status_code == 200
        return [sms["content"] for sms in response.json()["messages"]]

    assert contents() == ["second", "other phone", "first"]
    assert contents(phone="0912 345 678") == ["second", "first"]
    assert contents(phone="+84912345678", limit="1") == ["second"]
    assert contents(phone="01621234567") == ["other phone"]  # the old 11-digit form of 0321234567
    assert [sms.content for sms in sandbox.messages("84912345678")] == ["second", "first"]

    assert requests.delete(f"{sandbox.base_url}/inbox", timeout=5).json() == {"deleted": 3}
    assert contents() == []


@pytest.mark.parametrize("query", ["phone=not-a-phone", "phone=024 3812 3456", "limit=0", "limit=many"])
def test_inbox_refuses_bad_queries(sandbox: SmsSandbox, query: str) -> None:
    response = requests.get(f"{sandbox.base_url}/inbox?{query}", timeout=5)
    assert response.status_code == 400
    assert response.json()["error"]


BODY = {
    "ApiKey": "sandbox-key",
    "SecretKey": "sandbox-secret",
    "Phone": "0912345678",
    "Content": OTP,
    "Brandname": "LIENTHONG",
    "SmsType": "2",
    "IsUnicode": "0",
    "Sandbox": "0",
    "RequestId": "raw-1",
}


@pytest.mark.parametrize(
    ("changes", "code"),
    [
        ({}, "100"),
        ({"SecretKey": "nope"}, "101"),
        ({"SmsType": None}, "300"),
        ({"Brandname": "lienthong"}, "104"),
        ({"Phone": "84912345678"}, "108"),
        ({"Phone": "+84912345678"}, "108"),
        ({"Phone": "091234567"}, "108"),
        ({"Content": ""}, "146"),
        ({"Content": "Mã OTP: 482913"}, "146"),
        ({"Content": "Mã OTP: 482913", "IsUnicode": "1"}, "100"),
    ],
)
def test_sandbox_answers_each_request_fault_with_its_code(
    sandbox: SmsSandbox, changes: dict[str, str | None], code: str
) -> None:
    body = {key: value for key, value in {**BODY, **changes}.items() if value is not None}
    response = requests.post(sandbox.base_url + SEND_PATH, json=body, timeout=5)
    assert response.status_code == 200
    assert response.json()["CodeResult"] == code
    assert len(sandbox.messages()) == (1 if code == "100" else 0)


@pytest.mark.parametrize("payload", [b"{not json", b"[1, 2]", b"\xff\xfe"])
def test_sandbox_answers_malformed_bodies_with_http_400(sandbox: SmsSandbox, payload: bytes) -> None:
    response = requests.post(sandbox.base_url + SEND_PATH, data=payload, timeout=5)
    assert response.status_code == 400
    assert response.json()["error"]
