"""The audit log and consents are append-only history; sign-ins and record views land in the audit log, and a
patient sees who looked at their (and their children's) data."""

from __future__ import annotations

import asyncpg
import pytest

from api.db import DatabaseTarget
from notifications.phone import mask_phone
from notifications.sms_sandbox import SmsSandbox
from tests.helpers import Client, bearer, latest_otp, sign_in_patient

GUARDIAN_PHONE = "+84912345678"  # demo patient Nguyễn Thị Mai, mother of the demo child
OTHER_PHONE = "+84987654321"  # demo patient Lê Văn Hùng
NEW_PHONE = "+84901234567"

APPEND_ONLY = ["audit_log", "consents"]
REWRITES = {
    "update": "UPDATE {table} SET user_agent = 'rewritten'",
    "delete": "DELETE FROM {table}",
}


@pytest.mark.parametrize("table", APPEND_ONLY)
@pytest.mark.parametrize("statement", [*REWRITES.values(), "TRUNCATE {table}"], ids=[*REWRITES, "truncate"])
async def test_application_role_cannot_rewrite_history(pool: asyncpg.Pool, demo: None, table: str,
                                                       statement: str) -> None:
    before = await pool.fetchval(f"SELECT count(*) FROM {table}")  # noqa: S608 - fixed table names
    assert before > 0

    with pytest.raises(asyncpg.InsufficientPrivilegeError):
        await pool.execute(statement.format(table=table))

    assert await pool.fetchval(f"SELECT count(*) FROM {table}") == before  # noqa: S608


@pytest.mark.parametrize("table", APPEND_ONLY)
@pytest.mark.parametrize("statement", [*REWRITES.values(), "TRUNCATE {table}"], ids=[*REWRITES, "truncate"])
async def test_even_the_owner_cannot_rewrite_history(database: DatabaseTarget, demo: None, table: str,
                                                     statement: str) -> None:
    owner = await asyncpg.connect(database.admin_dsn)
    try:
        before = await owner.fetchval(f"SELECT count(*) FROM {table}")  # noqa: S608 - fixed table names
        assert before > 0

        with pytest.raises(asyncpg.InsufficientPrivilegeError, match="append-only"):
            await owner.execute(statement.format(table=table))

        assert await owner.fetchval(f"SELECT count(*) FROM {table}") == before  # noqa: S608
    finally:
        await owner.close()


async def test_application_role_may_still_append_to_the_audit_log(pool: asyncpg.Pool) -> None:
    await pool.execute("INSERT INTO audit_log (action, actor_role) VALUES ('system.check', 'system')")

    assert await pool.fetchval("SELECT count(*) FROM audit_log WHERE action = 'system.check'") == 1


async def test_patient_sign_in_is_audited_with_actor_and_request_id_but_no_phone_or_code(
        client: Client, sms: SmsSandbox, pool: asyncpg.Pool) -> None:
    sent = await client.post("/auth/otp/request", json={"phone": "0901 234 567"})
    assert sent.status_code == 202
    code = latest_otp(sms, NEW_PHONE)
    verified = await client.post("/auth/otp/verify", json={"phone": NEW_PHONE, "code": code},
                                 headers={"User-Agent": "LienthongApp/1.0 (Android 14)"})
    assert verified.status_code == 200
    session = verified.json()

    rows = await pool.fetch("SELECT * FROM audit_log WHERE action = 'auth.login.succeeded'")
    assert len(rows) == 1
    login = rows[0]
    assert str(login["actor_account_id"]) == session["account_id"]
    assert login["actor_role"] == "patient"
    assert str(login["subject_patient_id"]) == session["patient_id"]
    assert login["request_id"] == verified.headers["x-request-id"]
    assert login["user_agent"] == "LienthongApp/1.0 (Android 14)"
    assert login["details"]["method"] == "otp"

    sent_row = await pool.fetchrow("SELECT * FROM audit_log WHERE action = 'auth.otp.sent'")
    assert sent_row is not None
    assert sent_row["target_id"] == mask_phone(NEW_PHONE)
    assert sent_row["request_id"] == sent.headers["x-request-id"]

    everything = " ".join(r["row"] for r in await pool.fetch("SELECT t::text AS row FROM audit_log t"))
    for secret in (NEW_PHONE, "0901234567", "901234567", code):
        assert secret not in everything


async def test_guardian_sees_their_view_of_the_childs_record_in_the_access_log(
        client: Client, sms: SmsSandbox, demo: None) -> None:
    guardian = await sign_in_patient(client, sms, GUARDIAN_PHONE)
    children = (await client.get("/me/dependents", headers=bearer(guardian))).json()
    assert len(children) == 1
    child_id = children[0]["id"]

    viewed = await client.get(f"/patients/{child_id}", headers=bearer(guardian))
    assert viewed.status_code == 200

    log = await client.get("/me/access-log", headers=bearer(guardian))
    assert log.status_code == 200
    views = [e for e in log.json()["entries"] if e["action"] == "patient.viewed" and e["patient_id"] == child_id]
    assert len(views) == 1
    assert views[0]["by_you"] is True
    assert views[0]["actor_role"] == "patient"
    assert views[0]["actor_name"] == "Nguyễn Thị Mai"

    other = await sign_in_patient(client, sms, OTHER_PHONE)
    others_log = await client.get("/me/access-log", headers=bearer(other))
    assert others_log.status_code == 200
    assert all(e["patient_id"] != child_id for e in others_log.json()["entries"])
    assert all(e["patient_id"] == other["patient_id"] for e in others_log.json()["entries"])
