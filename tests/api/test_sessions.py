"""Access tokens expire; refresh tokens rotate, and reusing a spent one revokes the whole sign-in."""

from __future__ import annotations

import asyncio

import asyncpg

from notifications.sms_sandbox import SmsSandbox
from tests.helpers import Client, bearer, sign_in_patient

PHONE = "+84909876543"


async def test_refresh_rotates_and_the_new_access_token_works(client: Client, sms: SmsSandbox) -> None:
    session = await sign_in_patient(client, sms, PHONE)
    rotated = await client.post("/auth/refresh", json={"refresh_token": session["refresh_token"]})
    assert rotated.status_code == 200
    fresh = rotated.json()
    assert fresh["refresh_token"] != session["refresh_token"]
    assert fresh["patient_id"] == session["patient_id"]
    assert (await client.get("/me", headers=bearer(fresh))).status_code == 200


async def test_reusing_a_rotated_refresh_token_revokes_the_family(client: Client, sms: SmsSandbox,
                                                                  pool: asyncpg.Pool) -> None:
    session = await sign_in_patient(client, sms, PHONE)
    fresh = (await client.post("/auth/refresh", json={"refresh_token": session["refresh_token"]})).json()
    stolen_replay = await client.post("/auth/refresh", json={"refresh_token": session["refresh_token"]})
    assert stolen_replay.status_code == 401
    assert stolen_replay.json()["type"] == "/problems/refresh-token-reused"
    # the legitimate holder's newer token died with it
    after = await client.post("/auth/refresh", json={"refresh_token": fresh["refresh_token"]})
    assert after.status_code == 401
    assert after.json()["type"] == "/problems/refresh-token-invalid"
    assert await pool.fetchval("SELECT count(*) FROM audit_log WHERE action = 'auth.refresh.reuse_detected'") == 1


async def test_concurrent_use_of_one_refresh_token_yields_one_new_session(client: Client, sms: SmsSandbox) -> None:
    session = await sign_in_patient(client, sms, PHONE)
    results = await asyncio.gather(*(client.post("/auth/refresh", json={"refresh_token": session["refresh_token"]})
                                     for _ in range(5)))
    assert sorted(r.status_code for r in results) == [200, 401, 401, 401, 401]


async def test_expired_refresh_token_is_refused(client: Client, sms: SmsSandbox, pool: asyncpg.Pool) -> None:
    session = await sign_in_patient(client, sms, PHONE)
    await pool.execute("UPDATE refresh_tokens SET expires_at = now() - interval '1 second'")
    response = await client.post("/auth/refresh", json={"refresh_token": session["refresh_token"]})
    assert response.status_code == 401
    assert response.json()["type"] == "/problems/refresh-token-invalid"


async def test_logout_ends_the_sign_in(client: Client, sms: SmsSandbox) -> None:
    session = await sign_in_patient(client, sms, PHONE)
    out = await client.post("/auth/logout", headers=bearer(session), json={"refresh_token": session["refresh_token"]})
    assert out.status_code == 204
    response = await client.post("/auth/refresh", json={"refresh_token": session["refresh_token"]})
    assert response.status_code == 401


async def test_refresh_tokens_are_stored_hashed(client: Client, sms: SmsSandbox, pool: asyncpg.Pool) -> None:
    session = await sign_in_patient(client, sms, PHONE)
    rows = await pool.fetch("SELECT t::text AS row FROM refresh_tokens t")
    assert rows
    assert all(session["refresh_token"] not in r["row"] for r in rows)
