"""Guessing is limited: failed staff sign-ins and wrong SMS codes per client address, unknown prescription codes per
pharmacist account. Past the limit the caller gets 429 with Retry-After until the window ends, the lockout is in the
audit log, nobody else is locked out, and the counters live in PostgreSQL (shared by every API process) under keyed
hashes, never the address in clear.

The limits are set small here (LIENTHONG_*_FAILURES_*, LIENTHONG_FAILURE_WINDOW); requests come from distinct
loopback addresses through the real app (tests/reliability/access_support.py).
"""

from __future__ import annotations

import asyncio
import secrets
from dataclasses import replace
from typing import Any

import asyncpg
import httpx
import jwt
import pyotp
import pytest

from api.app import create_app
from api.settings import Settings
from eprescription.codes import new_code
from notifications.sms_sandbox import SmsSandbox
from tests.helpers import demo_password, demo_totp_secret, latest_otp
from tests.pharmacy_link.dispensing_helpers import other_pharmacist, signed_prescription
from tests.reliability.access_support import app_running, client_from

pytestmark = pytest.mark.usefixtures("demo")
HUNG = "+84987654321"


def _limited(settings: Settings, **limits: int) -> Settings:
    return replace(settings, **{"login_failures_per_ip": 3, "otp_verify_failures_per_ip": 3,
                                "rx_verify_failures_per_account": 3, "failure_window_s": 60, **limits})


async def _wrong_login(client: httpx.AsyncClient) -> httpx.Response:
    return await client.post("/auth/login", json={"username": f"nobody.{secrets.token_hex(3)}",
                                                  "password": "not-the-password", "totp_code": "000000"})


async def _good_login(client: httpx.AsyncClient) -> httpx.Response:
    return await client.post("/auth/login", json={"username": "bs.lan", "password": demo_password("bs.lan"),
                                                  "totp_code": pyotp.TOTP(demo_totp_secret("bs.lan")).now()})


def _assert_rate_limited(response: httpx.Response, window_s: int) -> int:
    assert response.status_code == 429, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["type"] == "/problems/rate-limited"
    retry_after = int(response.headers["retry-after"])
    assert 1 <= retry_after <= window_s
    assert response.json()["retry_after"] == retry_after
    return retry_after


async def _lockouts(pool: asyncpg.Pool, limit: str) -> list[asyncpg.Record]:
    return list(await pool.fetch(
        """SELECT host(client_ip) AS ip, actor_account_id, details FROM audit_log
           WHERE action = 'security.rate_limit.locked' AND target_id = $1""", limit))


async def test_failed_sign_ins_from_one_address_are_limited_audited_and_lock_out_nobody_else(
        settings: Settings, pool: asyncpg.Pool) -> None:
    app = create_app(_limited(settings))
    async with app_running(app), client_from(app, "127.0.0.2") as guesser, client_from(app, "127.0.0.3") as other:
        for _ in range(3):
            refused = await _wrong_login(guesser)
            assert refused.status_code == 401
            assert refused.json()["type"] == "/problems/invalid-credentials"

        _assert_rate_limited(await _good_login(guesser), 60)  # even the right password, from there, until it ends
        _assert_rate_limited(await _wrong_login(guesser), 60)
        signed_in = await _good_login(other)

    assert signed_in.status_code == 200, signed_in.text
    lockouts = await _lockouts(pool, "login-by-address")
    assert [(r["ip"], r["details"]) for r in lockouts] == [("127.0.0.2", {"max_failures": 3, "window_s": 60})]
    stored = await pool.fetch("SELECT key, hits, expires_at FROM rate_limit_windows")
    assert [r["hits"] for r in stored] == [3]  # refused attempts are not failures: the window does not grow
    assert all(b"127.0.0.2" not in r["key"] and len(r["key"]) == 32 for r in stored)


async def test_the_count_is_shared_by_every_api_process(settings: Settings) -> None:
    """Two app instances on one database stand for two processes: failures counted by one are refused by the
    other."""
    limited = _limited(settings)
    first, second = create_app(limited), create_app(limited)
    async with app_running(first), app_running(second), client_from(first, "127.0.0.4") as via_first, \
            client_from(second, "127.0.0.4") as via_second:
        for _ in range(3):
            assert (await _wrong_login(via_first)).status_code == 401
        _assert_rate_limited(await _good_login(via_second), 60)


async def _request_code(client: httpx.AsyncClient, sms: SmsSandbox, phone: str) -> str:
    sent = await client.post("/auth/otp/request", json={"phone": phone})
    assert sent.status_code == 202, sent.text
    return latest_otp(sms, phone)


def _another(code: str) -> str:
    return f"{(int(code) + 1) % 1_000_000:06d}"


async def test_wrong_sms_codes_lock_out_the_address_until_the_window_ends(settings: Settings, sms: SmsSandbox,
                                                                        pool: asyncpg.Pool) -> None:
    app = create_app(_limited(settings, otp_verify_failures_per_ip=2, failure_window_s=2))
    async with app_running(app), client_from(app, "127.0.0.5") as phone_app:
        code = await _request_code(phone_app, sms, HUNG)
        for _ in range(2):
            wrong = await phone_app.post("/auth/otp/verify", json={"phone": HUNG, "code": _another(code)})
            assert wrong.status_code == 401
        locked = await phone_app.post("/auth/otp/verify", json={"phone": HUNG, "code": code})
        retry_after = _assert_rate_limited(locked, 2)

        await asyncio.sleep(retry_after + 0.2)
        after_window = await phone_app.post("/auth/otp/verify", json={"phone": HUNG, "code": code})

    assert after_window.status_code == 200, after_window.text
    assert [r["ip"] for r in await _lockouts(pool, "otp-verify-by-address")] == ["127.0.0.5"]


async def test_a_locked_out_address_does_not_stop_the_owner_of_the_number_elsewhere(settings: Settings,
                                                                                    sms: SmsSandbox) -> None:
    app = create_app(_limited(settings))
    async with app_running(app), client_from(app, "127.0.0.6") as guesser, client_from(app, "127.0.0.7") as owner:
        code = await _request_code(owner, sms, HUNG)
        for _ in range(3):
            assert (await guesser.post("/auth/otp/verify", json={"phone": HUNG, "code": _another(code)})
                    ).status_code == 401
        _assert_rate_limited(await guesser.post("/auth/otp/verify", json={"phone": HUNG, "code": code}), 60)
        signed_in = await owner.post("/auth/otp/verify", json={"phone": HUNG, "code": code})

    assert signed_in.status_code == 200, signed_in.text


def _unknown_code() -> str:
    return str(new_code("79026", "c"))


async def test_unknown_prescription_codes_lock_the_pharmacist_account_not_the_pharmacy_next_door(
        settings: Settings, pool: asyncpg.Pool) -> None:
    app = create_app(_limited(settings))
    async with app_running(app), client_from(app) as client:
        rx: dict[str, Any] = await signed_prescription(client, pool, settings, lines=1)
        # a new account for the guesser: this process remembers exhausted accounts (api/ratelimit.py)
        _, guesser = await other_pharmacist(pool, settings)
        _, colleague = await other_pharmacist(pool, settings)
        for _ in range(3):
            unknown = await client.post("/dispensing/verify", headers=guesser, json={"code": _unknown_code()})
            assert unknown.status_code == 404
            assert unknown.json()["type"] == "/problems/prescription-not-found"

        _assert_rate_limited(await client.post("/dispensing/verify", headers=guesser, json={"code": rx["code"]}), 60)
        found = await client.post("/dispensing/verify", headers=colleague, json={"code": rx["code"]})

    assert found.status_code == 200, found.text
    assert [str(r["actor_account_id"]) for r in await _lockouts(pool, "rx-verify-by-account")] == [
        _account_of(guesser)]


def _account_of(headers: dict[str, str]) -> str:
    token = headers["Authorization"].removeprefix("Bearer ")
    subject: str = jwt.decode(token, options={"verify_signature": False})["sub"]
    return subject
