"""Patients sign in with their phone number and an SMS code (pyotp, hashed at rest, throttled, 5 tries)."""

from __future__ import annotations

import asyncio

import asyncpg
import httpx
import pytest

from notifications.sms_sandbox import SmsSandbox
from notifications.text import sms_segments
from tests.helpers import Client, bearer, latest_otp, sign_in_patient

PHONE = "+84901234567"


async def test_first_sign_in_creates_account_and_second_reuses_it(client: Client, sms: SmsSandbox,
                                                                  pool: asyncpg.Pool) -> None:
    first = await sign_in_patient(client, sms, "0901 234 567")
    assert first["new_account"] is True
    assert first["role"] == "patient"
    me = (await client.get("/me", headers=bearer(first))).json()
    assert me["phone"] == PHONE
    assert me["patient"]["id"] == first["patient_id"]

    await pool.execute("UPDATE otp_challenges SET created_at = created_at - interval '2 minutes'")
    second = await sign_in_patient(client, sms, "+84 90 123 4567")
    assert second["new_account"] is False
    assert second["account_id"] == first["account_id"]


async def test_sms_is_unaccented_single_segment_and_code_is_stored_only_hashed(
        client: Client, sms: SmsSandbox, pool: asyncpg.Pool) -> None:
    response = await client.post("/auth/otp/request", json={"phone": PHONE})
    assert response.status_code == 202
    assert response.json() == {"phone": PHONE, "expires_in": 300, "resend_after": 60}
    code = latest_otp(sms, PHONE)
    assert sms_segments(sms.messages(PHONE)[0].content) == ("GSM-7", 1)
    rows = await pool.fetch("SELECT t::text AS row FROM otp_challenges t")
    assert len(rows) == 1
    assert code not in rows[0]["row"]


@pytest.mark.parametrize("phone", ["12345", "+14155550123", "0281234567", "09123456789012345678", "số điện thoại"])
async def test_invalid_phone_is_a_422_naming_the_field(client: Client, sms: SmsSandbox, phone: str) -> None:
    response = await client.post("/auth/otp/request", json={"phone": phone})
    assert response.status_code == 422
    body = response.json()
    assert response.headers["content-type"].startswith("application/problem+json")
    assert body["errors"][0]["path"] == "body.phone"
    assert sms.messages() == []


async def test_expired_code_is_refused(client: Client, sms: SmsSandbox, pool: asyncpg.Pool) -> None:
    await client.post("/auth/otp/request", json={"phone": PHONE})
    code = latest_otp(sms, PHONE)
    await pool.execute("UPDATE otp_challenges SET expires_at = now() - interval '1 second'")
    response = await client.post("/auth/otp/verify", json={"phone": PHONE, "code": code})
    assert response.status_code == 401
    assert response.json()["type"] == "/problems/otp-expired"


async def test_code_dies_after_five_wrong_tries(client: Client, sms: SmsSandbox) -> None:
    await client.post("/auth/otp/request", json={"phone": PHONE})
    code = latest_otp(sms, PHONE)
    wrong = "000000" if code != "000000" else "111111"
    left = []
    for _ in range(5):
        response = await client.post("/auth/otp/verify", json={"phone": PHONE, "code": wrong})
        assert response.status_code == 401
        assert response.json()["type"] == "/problems/otp-invalid"
        left.append(response.json()["attempts_left"])
    assert left == [4, 3, 2, 1, 0]
    response = await client.post("/auth/otp/verify", json={"phone": PHONE, "code": code})
    assert response.status_code == 401
    assert response.json()["type"] == "/problems/otp-expired"


async def test_code_is_single_use(client: Client, sms: SmsSandbox) -> None:
    await sign_in_patient(client, sms, PHONE)
    again = await client.post("/auth/otp/verify", json={"phone": PHONE, "code": latest_otp(sms, PHONE)})
    assert again.status_code == 401


async def test_a_new_code_replaces_the_previous_one(client: Client, sms: SmsSandbox, pool: asyncpg.Pool) -> None:
    await client.post("/auth/otp/request", json={"phone": PHONE})
    old = latest_otp(sms, PHONE)
    await pool.execute("UPDATE otp_challenges SET created_at = created_at - interval '2 minutes'")
    await client.post("/auth/otp/request", json={"phone": PHONE})
    new = latest_otp(sms, PHONE)
    if old != new:
        assert (await client.post("/auth/otp/verify", json={"phone": PHONE, "code": old})).status_code == 401
    assert (await client.post("/auth/otp/verify", json={"phone": PHONE, "code": new})).status_code == 200


async def test_resend_is_throttled_per_minute_and_per_hour(client: Client, sms: SmsSandbox,
                                                           pool: asyncpg.Pool) -> None:
    assert (await client.post("/auth/otp/request", json={"phone": PHONE})).status_code == 202
    too_soon = await client.post("/auth/otp/request", json={"phone": PHONE})
    assert too_soon.status_code == 429
    assert too_soon.json()["type"] == "/problems/otp-throttled"
    assert 1 <= int(too_soon.headers["retry-after"]) <= 60
    for _ in range(4):
        await pool.execute("UPDATE otp_challenges SET created_at = created_at - interval '61 seconds'")
        assert (await client.post("/auth/otp/request", json={"phone": PHONE})).status_code == 202
    await pool.execute("UPDATE otp_challenges SET created_at = created_at - interval '61 seconds'")
    sixth = await client.post("/auth/otp/request", json={"phone": PHONE})
    assert sixth.status_code == 429
    assert int(sixth.headers["retry-after"]) > 60
    assert len(sms.messages(PHONE)) == 5


def test_resend_is_throttled_per_client_ip(live_server: str, sms: SmsSandbox) -> None:
    # Over real HTTP every request comes from 127.0.0.1, like many phones behind one carrier NAT address.
    statuses = [httpx.post(f"{live_server}/auth/otp/request", json={"phone": f"+8490123450{i}"}).status_code
                for i in range(7)]
    assert statuses == [202] * 5 + [429] * 2
    assert len(sms.messages()) == 5


async def test_concurrent_requests_for_one_number_send_one_sms(client: Client, sms: SmsSandbox) -> None:
    responses = await asyncio.gather(*(client.post("/auth/otp/request", json={"phone": PHONE}) for _ in range(8)))
    assert sorted(r.status_code for r in responses) == [202] + [429] * 7
    assert len(sms.messages(PHONE)) == 1


async def test_gateway_failure_is_503_and_does_not_use_up_the_allowance(client: Client, sms: SmsSandbox) -> None:
    sms.fail_next(1, "http500")
    failed = await client.post("/auth/otp/request", json={"phone": PHONE})
    assert failed.status_code == 503
    assert failed.json()["type"] == "/problems/sms-unavailable"
    retried = await client.post("/auth/otp/request", json={"phone": PHONE})
    assert retried.status_code == 202
    assert len(sms.messages(PHONE)) == 1


async def test_otp_never_appears_in_logs(client: Client, sms: SmsSandbox, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("DEBUG")
    await sign_in_patient(client, sms, PHONE)
    code = latest_otp(sms, PHONE)
    assert code not in caplog.text
