"""Personal data and secrets never reach a log line in clear (Decree 13/2023): real flows that log, through the app's
own logging configuration (``configure_logging``: the JSON formatter on the root logger), read back as JSON lines."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any

import asyncpg
import pytest
from litestar.testing import AsyncTestClient

from api.app import create_app
from api.logs import configure_logging
from api.settings import Settings
from notifications.sms_sandbox import SmsSandbox
from tests.conftest import free_port
from tests.helpers import Client, latest_otp

PHONE = "+84912345678"
DOMESTIC = "0912345678"
SUBSCRIBER = "912345678"
CITIZEN_ID = "079123456789"

Lines = Callable[[], list[dict[str, Any]]]


@pytest.fixture
def json_log() -> Iterator[Lines]:
    """The app's logging set up as ``lienthong serve`` does it (at DEBUG, so every library speaks), its handler
    writing to a buffer; the JSON lines written so far, parsed."""
    root = logging.getLogger()
    saved_handlers, saved_level = root.handlers[:], root.level
    configure_logging("DEBUG")
    [handler] = root.handlers
    assert isinstance(handler, logging.StreamHandler)
    buffer = io.StringIO()
    handler.setStream(buffer)
    root.handlers[:] = [*saved_handlers, handler]  # pytest's own capture keeps working beside ours

    def lines() -> list[dict[str, Any]]:
        return [json.loads(line) for line in buffer.getvalue().splitlines() if line.strip()]

    yield lines
    root.handlers[:] = saved_handlers
    root.setLevel(saved_level)


def _clear_text(lines: list[dict[str, Any]]) -> str:
    return "\n".join(json.dumps(line, ensure_ascii=False) for line in lines)


def _assert_no_phone(text: str) -> None:
    for form in (PHONE, DOMESTIC, SUBSCRIBER, "0912 345 678"):
        assert form not in text


async def test_otp_request_with_the_sms_gateway_down_logs_the_phone_masked(settings: Settings,
                                                                          json_log: Lines) -> None:
    dead = replace(settings, sms_gateway_url=f"http://127.0.0.1:{free_port()}")  # nothing listens there
    async with AsyncTestClient(create_app(dead)) as client:
        response = await client.post("/auth/otp/request", json={"phone": DOMESTIC})

    assert response.status_code == 503
    lines = json_log()
    failures = [line for line in lines if line["msg"] == "otp sms failed"]
    assert failures and failures[0]["phone"] == "+8491*****78"
    assert any("sms gateway unreachable phone=+8491*****78" in line["msg"] for line in lines)
    _assert_no_phone(_clear_text(lines))


async def test_a_whole_patient_sign_in_logs_neither_phone_nor_code_nor_tokens(client: Client, sms: SmsSandbox,
                                                                             json_log: Lines) -> None:
    sent = await client.post("/auth/otp/request", json={"phone": PHONE})
    assert sent.status_code == 202
    code = latest_otp(sms, PHONE)
    wrong = "000000" if code != "000000" else "111111"
    assert (await client.post("/auth/otp/verify", json={"phone": PHONE, "code": wrong})).status_code == 401
    verified = await client.post("/auth/otp/verify", json={"phone": PHONE, "code": code})
    assert verified.status_code == 200
    session = verified.json()
    refreshed = await client.post("/auth/refresh", json={"refresh_token": session["refresh_token"]})
    assert refreshed.status_code == 200

    lines = json_log()
    assert any("sms accepted phone=+8491*****78" in line["msg"] for line in lines)
    text = _clear_text(lines)
    _assert_no_phone(text)
    for secret in (code, session["access_token"], session["refresh_token"], refreshed.json()["refresh_token"]):
        assert secret not in text


async def test_a_database_error_naming_a_citizen_id_is_logged_masked(pool: asyncpg.Pool, json_log: Lines) -> None:
    await pool.execute("INSERT INTO patients (full_name, citizen_id) VALUES ('Người thứ nhất', $1)", CITIZEN_ID)
    with pytest.raises(asyncpg.UniqueViolationError) as raised:
        await pool.execute("INSERT INTO patients (full_name, citizen_id) VALUES ('Người thứ hai', $1)", CITIZEN_ID)
    assert CITIZEN_ID in str(raised.value.detail)  # PostgreSQL names the value: exactly what must not be logged

    log = logging.getLogger("lienthong.errors")
    log.error("unhandled error", exc_info=raised.value)
    log.warning("could not save patient: %s", raised.value.detail)

    lines = json_log()
    assert len(lines) == 2
    text = _clear_text(lines)
    assert CITIZEN_ID not in text
    assert "*********789" in lines[0]["exc"] and "*********789" in lines[1]["msg"]


@pytest.mark.parametrize(("extra", "shown"), [
    ({"phone": PHONE}, {"phone": "+8491*****78"}),
    ({"phone": DOMESTIC}, {"phone": "+8491*****78"}),
    ({"citizen_id": CITIZEN_ID}, {"citizen_id": "*********789"}),
    ({"id_number": "B1234567"}, {"id_number": "*****567"}),
    ({"otp": "482913", "password": "demo-Lan-2026", "token": "abc.def"},
     {"otp": "[redacted]", "password": "[redacted]", "token": "[redacted]"}),
    ({"code": "482913"}, {"code": "[redacted]"}),
    ({"code": "79026ab1cd2e-c"}, {"code": "79026ab1cd2e-c"}),  # a prescription code stays traceable
    ({"details": {"recipient": {"id_number": CITIZEN_ID, "name": "call 0912 345 678"}}},
     {"details": {"recipient": {"id_number": "*********789", "name": "call +8491*****78"}}}),
    ({"rows": 12, "retry_after": 30}, {"rows": 12, "retry_after": 30}),
])
def test_extra_values_are_redacted_by_key_and_by_content(json_log: Lines, extra: dict[str, Any],
                                                         shown: dict[str, Any]) -> None:
    logging.getLogger("lienthong.test").info("event", extra=extra)

    [line] = json_log()
    assert {k: line[k] for k in shown} == shown


@pytest.mark.parametrize(("message", "shown"), [
    ("sent to +84912345678 and 0987654321", "sent to +8491*****78 and +8498*****21"),
    ("sent to 84 912 345 678", "sent to +8491*****78"),
    ("citizen 079123456789 insurance 0123456789", "citizen *********789 insurance ********89"),
    ("verify code=482913, gateway code=100", "verify code=[redacted], gateway code=100"),
    ('body {"otp": "482913", "password": "x y"}', 'body {"otp": "[redacted]", "password": "[redacted]"}'),
    ("Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl", "Authorization: [redacted]"),
    ("refresh rt_Zm9vYmFyYmF6cXV4cXV1eHF1dXg", "refresh [redacted]"),
    ("consultation 1b4e28ba-2fa1-41d2-883f-0016d3cca427 at 2026-03-01T09:30:00+07:00",
     "consultation 1b4e28ba-2fa1-41d2-883f-0016d3cca427 at 2026-03-01T09:30:00+07:00"),
])
def test_free_text_is_masked(json_log: Lines, message: str, shown: str) -> None:
    logging.getLogger("lienthong.test").warning("%s", message)

    [line] = json_log()
    assert line["msg"] == shown
