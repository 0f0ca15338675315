"""API keys of pharmacy software: created and shown once, stored as keyed hashes, exchanged for short-lived
pharmacist tokens of their own pharmacy only, rotated, revoked; the software's account can never sign in with a
password nor substitute drugs."""

from __future__ import annotations

import uuid
from typing import Any
from uuid import UUID

import asyncpg
import httpx
import jwt
import pytest

from api import db
from api.auth.secrets_box import keyed_hash
from api.demo import PHARMACY_ID
from api.settings import Settings
from pharmacy_link.api_keys import FAILED_EXCHANGES_ALLOWED, MACHINE_TOKEN_TTL_S
from tests.helpers import Client
from tests.pharmacy_link.conftest import MakePharmacy, PharmacistOf
from tests.pharmacy_link.dispensing_helpers import key, sale, signed_prescription


async def create_key(client: Client, headers: dict[str, str], pharmacy_id: uuid.UUID = PHARMACY_ID,
                     label: str = "Phần mềm quầy 1") -> dict[str, Any]:
    response = await client.post(f"/pharmacies/{pharmacy_id}/api-keys", headers=headers, json={"label": label})
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


async def machine_headers(client: Client, api_key: str) -> dict[str, str]:
    response = await client.post("/pharmacies/token", json={"api_key": api_key})
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


async def test_a_new_key_is_shown_once_and_stored_only_as_a_keyed_hash(
        client: Client, hoa: dict[str, str], database: db.DatabaseTarget, settings: Settings) -> None:
    created = await create_key(client, hoa)
    api_key = created["api_key"]
    assert api_key.startswith(created["key"]["prefix"] + "_")
    listed = await client.get(f"/pharmacies/{PHARMACY_ID}/api-keys", headers=hoa)
    assert api_key not in listed.text
    assert [k["prefix"] for k in listed.json()] == [created["key"]["prefix"]]
    conn = await asyncpg.connect(database.admin_dsn)
    try:
        stored = await conn.fetchval("SELECT secret_hash FROM pharmacy_api_keys WHERE id = $1",
                                     uuid.UUID(created["key"]["id"]))
        assert stored == keyed_hash(settings.otp_pepper, "pharmacy_api_key", api_key)
        secret = api_key.removeprefix(created["key"]["prefix"] + "_")
        tables = await conn.fetch("""SELECT quote_ident(table_name) AS name FROM information_schema.tables
                                     WHERE table_schema = 'public' AND table_type = 'BASE TABLE'""")
        for table in tables:
            everything = await conn.fetchval(
                f"SELECT coalesce(string_agg(t::text, ' '), '') FROM {table['name']} AS t")  # noqa: S608
            assert secret not in everything, table["name"]
    finally:
        await conn.close()


async def test_key_buys_a_short_lived_pharmacist_token_for_its_own_pharmacy_only(
        client: Client, hoa: dict[str, str], pool: asyncpg.Pool, make_pharmacy: MakePharmacy) -> None:
    created = await create_key(client, hoa)
    response = await client.post("/pharmacies/token", json={"api_key": created["api_key"]})
    assert response.status_code == 200, response.text
    token = response.json()
    assert token["pharmacy_id"] == str(PHARMACY_ID)
    assert token["expires_in"] == MACHINE_TOKEN_TTL_S
    claims = jwt.decode(token["access_token"], options={"verify_signature": False})
    extras = claims["extras"]
    assert (extras["role"], extras["phid"], claims["sub"]) == ("pharmacist", str(PHARMACY_ID),
                                                               created["key"]["account_id"])
    assert claims["exp"] - claims["iat"] == MACHINE_TOKEN_TTL_S
    software = {"Authorization": f"Bearer {token['access_token']}"}
    assert (await client.get(f"/pharmacies/{PHARMACY_ID}/stock", headers=software)).status_code == 200
    other = await client.get(f"/pharmacies/{await make_pharmacy()}/stock", headers=software)
    assert other.status_code == 403
    assert other.json()["type"] == "/problems/other-pharmacy"
    used = await pool.fetchrow(
        """SELECT k.last_used_at IS NOT NULL AS used, a.actor_account_id FROM pharmacy_api_keys k
           JOIN audit_log a ON a.target_id = k.id::text AND a.action = 'pharmacy_api_key.exchanged'
           WHERE k.id = $1""", uuid.UUID(created["key"]["id"]))
    assert used["used"] is True
    assert str(used["actor_account_id"]) == created["key"]["account_id"]


async def test_software_uploads_stock_and_the_audit_log_names_its_service_account(
        client: Client, hoa: dict[str, str], pool: asyncpg.Pool) -> None:
    created = await create_key(client, hoa, label="KiotViet")
    software = await machine_headers(client, created["api_key"])
    drug_id = await pool.fetchval("SELECT id FROM drugs WHERE inn = 'Paracetamol' ORDER BY strength LIMIT 1")
    uploaded = await client.put(f"/pharmacies/{PHARMACY_ID}/stock", headers=software,
                                json={"items": [{"drug_id": str(drug_id), "quantity": 7}]})
    assert uploaded.status_code == 200, uploaded.text
    actor = await pool.fetchrow(
        """SELECT a.actor_role, acc.full_name FROM audit_log a JOIN accounts acc ON acc.id = a.actor_account_id
           WHERE a.action = 'pharmacy_stock.uploaded'""")
    assert (actor["actor_role"], actor["full_name"]) == ("pharmacist", "Phần mềm nhà thuốc: KiotViet")


async def test_revoked_key_gets_401_and_tokens_it_bought_end_with_their_short_lifetime(
        client: Client, hoa: dict[str, str], pool: asyncpg.Pool) -> None:
    created = await create_key(client, hoa)
    software = await machine_headers(client, created["api_key"])
    revoked = await client.post(f"/pharmacies/{PHARMACY_ID}/api-keys/{created['key']['id']}/revoke", headers=hoa)
    assert revoked.status_code == 200
    assert revoked.json()["status"] == "revoked"
    refused = await client.post("/pharmacies/token", json={"api_key": created["api_key"]})
    assert refused.status_code == 401
    assert refused.json()["type"] == "/problems/api-key-invalid"
    # Access tokens are verified without the database, so one bought before the revocation works until it expires,
    # at most MACHINE_TOKEN_TTL_S (5 minutes) later.
    assert (await client.get(f"/pharmacies/{PHARMACY_ID}/stock", headers=software)).status_code == 200
    again = await client.post(f"/pharmacies/{PHARMACY_ID}/api-keys/{created['key']['id']}/revoke", headers=hoa)
    assert again.status_code == 409
    actions = await pool.fetch("SELECT action FROM audit_log WHERE action LIKE 'pharmacy_api_key.%' ORDER BY id")
    assert [a["action"] for a in actions] == ["pharmacy_api_key.created", "pharmacy_api_key.exchanged",
                                              "pharmacy_api_key.revoked", "pharmacy_api_key.exchange_failed"]


async def test_rotation_gives_a_new_key_for_the_same_software_and_retires_the_old_one(
        client: Client, hoa: dict[str, str]) -> None:
    old = await create_key(client, hoa)
    rotated = await client.post(f"/pharmacies/{PHARMACY_ID}/api-keys/{old['key']['id']}/rotate", headers=hoa,
                                json={})
    assert rotated.status_code == 201, rotated.text
    new = rotated.json()
    assert new["api_key"] != old["api_key"]
    assert new["key"]["account_id"] == old["key"]["account_id"]
    assert new["key"]["label"] == old["key"]["label"]
    assert (await client.post("/pharmacies/token", json={"api_key": old["api_key"]})).status_code == 401
    await machine_headers(client, new["api_key"])
    listed = {k["id"]: k for k in (await client.get(f"/pharmacies/{PHARMACY_ID}/api-keys", headers=hoa)).json()}
    assert listed[old["key"]["id"]]["status"] == "revoked"
    assert listed[old["key"]["id"]]["replaced_by"] == new["key"]["id"]
    assert listed[new["key"]["id"]]["status"] == "active"
    twice = await client.post(f"/pharmacies/{PHARMACY_ID}/api-keys/{old['key']['id']}/rotate", headers=hoa, json={})
    assert twice.status_code == 409


async def test_rotation_with_an_overlap_keeps_the_old_key_working_until_it_ends_or_is_revoked(
        client: Client, hoa: dict[str, str]) -> None:
    old = await create_key(client, hoa)
    rotated = await client.post(f"/pharmacies/{PHARMACY_ID}/api-keys/{old['key']['id']}/rotate", headers=hoa,
                                json={"overlap_s": 600})
    new = rotated.json()
    await machine_headers(client, old["api_key"])
    await machine_headers(client, new["api_key"])
    listed = {k["id"]: k["status"] for k in (await client.get(f"/pharmacies/{PHARMACY_ID}/api-keys",
                                                              headers=hoa)).json()}
    assert listed == {old["key"]["id"]: "expiring", new["key"]["id"]: "active"}
    revoked = await client.post(f"/pharmacies/{PHARMACY_ID}/api-keys/{old['key']['id']}/revoke", headers=hoa)
    assert revoked.json()["status"] == "revoked"
    assert (await client.post("/pharmacies/token", json={"api_key": old["api_key"]})).status_code == 401
    await machine_headers(client, new["api_key"])


@pytest.mark.parametrize("presented", ["ltpk_AAAAAAAA_" + "x" * 43, "not-a-key", "ltpk_"])
async def test_unknown_keys_get_401_and_the_audit_keeps_only_the_prefix(client: Client, pool: asyncpg.Pool,
                                                                       presented: str) -> None:
    response = await client.post("/pharmacies/token", json={"api_key": presented})
    assert response.status_code == 401
    assert response.json()["type"] == "/problems/api-key-invalid"
    details = await pool.fetchval(
        "SELECT details FROM audit_log WHERE action = 'pharmacy_api_key.exchange_failed'")
    assert details == {"prefix": "ltpk_AAAAAAAA" if presented.startswith("ltpk_A") else None}


async def test_software_account_cannot_sign_in_with_a_password(client: Client, hoa: dict[str, str],
                                                                pool: asyncpg.Pool) -> None:
    created = await create_key(client, hoa)
    username = await pool.fetchval("SELECT username FROM accounts WHERE id = $1",
                                   uuid.UUID(created["key"]["account_id"]))
    stored = await pool.fetchval("SELECT password_hash FROM accounts WHERE id = $1",
                                 uuid.UUID(created["key"]["account_id"]))
    for password in ("", stored, created["api_key"], "a-long-password-1"):
        response = await client.post("/auth/login", json={"username": username, "password": password or "x",
                                                          "totp_code": "123456"})
        assert response.status_code == 401, password
        assert response.json()["type"] == "/problems/invalid-credentials"


async def test_software_never_holds_a_pharmacist_degree_so_it_cannot_substitute(
        client: Client, hoa: dict[str, str], pool: asyncpg.Pool) -> None:
    created = await create_key(client, hoa)
    account_id = uuid.UUID(created["key"]["account_id"])
    assert await pool.fetchval("SELECT has_pharmacist_degree FROM pharmacists WHERE account_id = $1",
                               account_id) is False
    with pytest.raises(asyncpg.CheckViolationError):
        await pool.execute("UPDATE pharmacists SET has_pharmacist_degree = true WHERE account_id = $1", account_id)


async def test_software_cannot_list_create_rotate_or_revoke_keys(client: Client, hoa: dict[str, str]) -> None:
    created = await create_key(client, hoa)
    software = await machine_headers(client, created["api_key"])
    base = f"/pharmacies/{PHARMACY_ID}/api-keys"
    for method, path, body in [("GET", base, None), ("POST", base, {"label": "more"}),
                               ("POST", f"{base}/{created['key']['id']}/rotate", {}),
                               ("POST", f"{base}/{created['key']['id']}/revoke", None)]:
        response = await client.request(method, path, headers=software, json=body)
        assert response.status_code == 403, (method, path)
        assert response.json()["type"] == "/problems/software-cannot-manage-keys"


async def test_staff_list_shows_people_not_software(client: Client, hoa: dict[str, str]) -> None:
    await create_key(client, hoa)
    staff = await client.get(f"/pharmacies/{PHARMACY_ID}/pharmacists", headers=hoa)
    assert [m["full_name"] for m in staff.json()] == ["Phạm Thu Hoa"]


async def test_admin_manages_keys_of_any_pharmacy_and_key_ids_do_not_cross_pharmacies(
        client: Client, admin: dict[str, str], hoa: dict[str, str], make_pharmacy: MakePharmacy,
        pharmacist_of: PharmacistOf) -> None:
    other = await make_pharmacy()
    theirs = await create_key(client, admin, other)
    ours = await create_key(client, hoa)
    crossed = await client.post(f"/pharmacies/{PHARMACY_ID}/api-keys/{theirs['key']['id']}/revoke", headers=hoa)
    assert crossed.status_code == 404
    assert crossed.json()["type"] == "/problems/api-key-not-found"
    also = await client.post(f"/pharmacies/{other}/api-keys/{ours['key']['id']}/rotate",
                             headers=await pharmacist_of(other), json={})
    assert also.status_code == 404
    await machine_headers(client, theirs["api_key"])


async def test_patient_and_doctor_cannot_create_keys(client: Client, mai: dict[str, str],
                                                     doctor: dict[str, str]) -> None:
    for headers in (mai, doctor):
        response = await client.post(f"/pharmacies/{PHARMACY_ID}/api-keys", headers=headers, json={"label": "x"})
        assert response.status_code == 403


async def test_key_of_a_deactivated_pharmacy_is_refused_with_403(client: Client, hoa: dict[str, str],
                                                                  admin: dict[str, str]) -> None:
    created = await create_key(client, hoa)
    await client.patch(f"/admin/pharmacies/{PHARMACY_ID}", headers=admin, json={"active": False})
    refused = await client.post("/pharmacies/token", json={"api_key": created["api_key"]})
    assert refused.status_code == 403
    assert refused.json()["type"] == "/problems/pharmacy-inactive"


async def test_repeated_rejected_keys_from_one_address_are_rate_limited(live_server: str, admin: dict[str, str],
                                                                        pool: asyncpg.Pool) -> None:
    async with httpx.AsyncClient(base_url=live_server) as http:
        created = (await http.post(f"/pharmacies/{PHARMACY_ID}/api-keys", headers=admin,
                                   json={"label": "POS"})).json()
        for _ in range(FAILED_EXCHANGES_ALLOWED):
            wrong = await http.post("/pharmacies/token", json={"api_key": "ltpk_AAAAAAAA_" + "x" * 43})
            assert wrong.status_code == 401
        throttled = await http.post("/pharmacies/token", json={"api_key": created["api_key"]})
        assert throttled.status_code == 429
        assert int(throttled.headers["Retry-After"]) > 0
    assert await pool.fetchval(
        "SELECT count(*) FROM audit_log WHERE action = 'pharmacy_api_key.exchange_throttled'") == 1


async def test_software_sells_but_cannot_substitute_and_its_sale_takes_stock_off(
        client: Client, hoa: dict[str, str], pool: asyncpg.Pool, settings: Settings) -> None:
    rx = await signed_prescription(client, pool, settings, lines=1)  # paracetamol 500 mg × 10
    software = await machine_headers(client, (await create_key(client, hoa))["api_key"])
    generic = await pool.fetchval(
        """INSERT INTO drugs (inn, ingredients, strength, dosage_form, route, atc_code, source_code, source_ref)
           VALUES ('Paracetamol', '{paracetamol}', '500mg', 'viên nén sủi', 'oral', 'N02BE01', 'lienthong-demo-seed',
                   'test generic') RETURNING id""")
    dispenses = f"/dispensing/prescriptions/{rx['code']}/dispenses"
    substituted = await client.post(dispenses, headers={**software, **key()},
                                    json=sale((1, 2), substitute_drug_id=str(generic), buyer_consent=True))
    assert substituted.status_code == 422
    assert "degree" in substituted.json()["errors"][0]["message"]
    paracetamol = UUID(rx["lines"][0]["drug_id"])
    before = await pool.fetchval("SELECT quantity FROM pharmacy_stock WHERE pharmacy_id = $1 AND drug_id = $2",
                                 PHARMACY_ID, paracetamol)
    sold = await client.post(dispenses, headers={**software, **key()}, json=sale((1, 2)))
    assert sold.status_code == 201, sold.text
    assert await pool.fetchval("SELECT quantity FROM pharmacy_stock WHERE pharmacy_id = $1 AND drug_id = $2",
                               PHARMACY_ID, paracetamol) == before - 2
