"""Doctors, pharmacists and admins sign in with password + TOTP; enrolment, recovery codes, lockout."""

from __future__ import annotations

import time

import asyncpg
import pyotp
import pytest

from tests.helpers import Client, bearer, demo_password, demo_totp_secret, sign_in_staff

pytestmark = pytest.mark.usefixtures("demo")


async def _login(client: Client, username: str, *, password: str | None = None, totp: str | None = None,
                 recovery: str | None = None) -> tuple[int, dict[str, object]]:
    body: dict[str, object] = {"username": username, "password": password or demo_password(username)}
    if totp is not None:
        body["totp_code"] = totp
    if recovery is not None:
        body["recovery_code"] = recovery
    response = await client.post("/auth/login", json=body)
    return response.status_code, response.json()


@pytest.mark.parametrize(("username", "role"), [("bs.lan", "doctor"), ("ds.hoa", "pharmacist"), ("admin", "admin")])
async def test_each_staff_role_signs_in_with_password_and_totp(client: Client, username: str, role: str) -> None:
    session = await sign_in_staff(client, username)
    assert session["role"] == role
    me = (await client.get("/me", headers=bearer(session))).json()
    assert me["username"] == username
    assert (me["facility_id"] is not None) == (role == "doctor")
    assert (me["pharmacy_id"] is not None) == (role == "pharmacist")


async def test_password_alone_is_not_enough(client: Client) -> None:
    status, body = await _login(client, "bs.lan")
    assert status == 401
    assert body["type"] == "/problems/totp-required"


@pytest.mark.parametrize("case", ["wrong password", "wrong code", "unknown user"])
async def test_wrong_credentials_get_one_indistinct_answer(client: Client, case: str) -> None:
    secret = demo_totp_secret("bs.lan")
    username = "no.such.user" if case == "unknown user" else "bs.lan"
    password = "wrong-password-123" if case == "wrong password" else ("x" * 12 if case == "unknown user" else None)
    code = pyotp.TOTP(secret).now()
    if case == "wrong code":
        code = f"{(int(code) + 1) % 1_000_000:06d}"
    status, body = await _login(client, username, password=password, totp=code)
    assert status == 401
    assert body["type"] == "/problems/invalid-credentials"


async def test_totp_accepts_one_step_of_clock_skew_each_way_and_no_replay(client: Client) -> None:
    totp = pyotp.TOTP(demo_totp_secret("ds.hoa"))
    now = time.time()
    assert (await _login(client, "ds.hoa", totp=totp.at(now - 30)))[0] == 200
    assert (await _login(client, "ds.hoa", totp=totp.at(now + 30)))[0] == 200
    # the same code again, or any code of an earlier step, is a replay
    assert (await _login(client, "ds.hoa", totp=totp.at(now + 30)))[0] == 401
    assert (await _login(client, "ds.hoa", totp=totp.at(now)))[0] == 401


async def test_codes_two_steps_away_are_refused(client: Client) -> None:
    totp = pyotp.TOTP(demo_totp_secret("bs.minh"))
    now = time.time()
    for skew in (-90, 90):
        status, _ = await _login(client, "bs.minh", totp=totp.at(now + skew))
        assert status == 401


async def test_five_failures_lock_the_account_and_are_audited(client: Client, pool: asyncpg.Pool) -> None:
    for _ in range(5):
        status, _ = await _login(client, "bs.lan", password="wrong-password-123", totp="123456")
        assert status == 401
    status, body = await _login(client, "bs.lan", totp=pyotp.TOTP(demo_totp_secret("bs.lan")).now())
    assert status == 429
    assert body["type"] == "/problems/account-locked"
    actions = [r["action"] for r in await pool.fetch(
        "SELECT action FROM audit_log WHERE action LIKE 'auth.%' ORDER BY id")]
    assert actions.count("auth.login.failed") == 5
    assert "auth.account.locked" in actions
    assert actions[-1] == "auth.login.locked_out"
    await pool.execute("UPDATE accounts SET locked_until = now() - interval '1 second' WHERE username = 'bs.lan'")
    assert (await _login(client, "bs.lan", totp=pyotp.TOTP(demo_totp_secret("bs.lan")).now()))[0] == 200


async def test_new_doctor_enrols_totp_at_first_sign_in_and_can_use_a_recovery_code_once(client: Client) -> None:
    admin = await sign_in_staff(client, "admin")
    created = await client.post("/admin/accounts", headers=bearer(admin), json={
        "role": "doctor", "username": "bs.tuan", "password": "a-long-password-1", "full_name": "Võ Minh Tuấn",
        "facility_code": "79026", "title": "BS", "licence_number": "009999/HCM-CCHN"})
    assert created.status_code == 201, created.text

    status, body = await _login(client, "bs.tuan", password="a-long-password-1")
    assert status == 200
    assert body["kind"] == "totp_enrolment_required"
    enrol_headers = {"Authorization": f"Bearer {body['enrolment_token']}"}
    # the enrolment token opens nothing but enrolment
    assert (await client.get("/me", headers=enrol_headers)).status_code == 401

    enrolment = (await client.post("/auth/totp/enrol", headers=enrol_headers)).json()
    assert enrolment["provisioning_uri"].startswith("otpauth://totp/Lienthong:bs.tuan?")
    assert enrolment["qr_svg"].startswith("<svg") and 'xmlns="http://www.w3.org/2000/svg"' in enrolment["qr_svg"]
    secret = pyotp.parse_uri(enrolment["provisioning_uri"]).secret
    confirmed = await client.post("/auth/totp/confirm", headers=enrol_headers,
                                  json={"code": pyotp.TOTP(secret).now()})
    assert confirmed.status_code == 200, confirmed.text
    codes = confirmed.json()["recovery_codes"]
    assert len(codes) == 10
    assert (await client.get("/me", headers=bearer(confirmed.json()["session"]))).status_code == 200

    status, _ = await _login(client, "bs.tuan", password="a-long-password-1", recovery=codes[0])
    assert status == 200
    status, _ = await _login(client, "bs.tuan", password="a-long-password-1", recovery=codes[0])
    assert status == 401


async def test_wrong_confirmation_code_keeps_the_old_factor(client: Client) -> None:
    session = await sign_in_staff(client, "bs.minh")
    await client.post("/auth/totp/enrol", headers=bearer(session))
    wrong = await client.post("/auth/totp/confirm", headers=bearer(session), json={"code": "000000"})
    assert wrong.status_code == 401
    status, _ = await _login(client, "bs.minh", totp=pyotp.TOTP(demo_totp_secret("bs.minh")).at(time.time() + 30))
    assert status == 200


async def test_admin_account_creation_rejects_short_passwords_and_duplicates(client: Client) -> None:
    admin = await sign_in_staff(client, "admin")
    short = await client.post("/admin/accounts", headers=bearer(admin), json={
        "role": "admin", "username": "admin2", "password": "short", "full_name": "A"})
    assert short.status_code == 422
    assert short.json()["errors"][0]["path"] == "body.password"
    duplicate = await client.post("/admin/accounts", headers=bearer(admin), json={
        "role": "admin", "username": "bs.lan", "password": "a-long-password-1", "full_name": "A"})
    assert duplicate.status_code == 409
    assert duplicate.json()["type"] == "/problems/username-taken"


async def test_totp_secret_is_encrypted_at_rest(pool: asyncpg.Pool) -> None:
    stored = await pool.fetchval("SELECT totp_secret_enc FROM accounts WHERE username = 'bs.lan'")
    assert demo_totp_secret("bs.lan").encode() not in stored
    assert await pool.fetchval("SELECT password_hash LIKE '$argon2id$%' FROM accounts WHERE username = 'bs.lan'")
