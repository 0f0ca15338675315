"""The notification endpoints: one's own preferences and feed, acknowledgements, administrators' dead letters."""

from __future__ import annotations

from uuid import UUID

import asyncpg
import pytest

from api.settings import Settings
from tests.eprescription.prescribing import staff_headers
from tests.helpers import Client, make_patients
from tests.notifications.delivery import queue, vaccination_notice


def auth(session: dict[str, str]) -> dict[str, str]:
    return {"Authorization": f"Bearer {session['access_token']}"}


async def sent_push(pool: asyncpg.Pool, settings: Settings, account_id: str, key: str) -> UUID:
    await queue(pool, settings, vaccination_notice(UUID(account_id), key))
    notification_id: UUID = await pool.fetchval(
        "UPDATE notification_outbox SET status = 'sent', sent_at = now() WHERE idempotency_key LIKE $1 || ':%' "
        "RETURNING id", key)
    return notification_id


async def test_preferences_default_on_and_can_be_turned_off_per_channel(client: Client, pool: asyncpg.Pool,
                                                                        settings: Settings) -> None:
    [me] = await make_patients(pool, settings, 1)
    initial = (await client.get("/notifications/preferences", headers=auth(me))).json()["preferences"]
    assert len(initial) == 8 and all(p["enabled"] for p in initial)
    assert {p["category"] for p in initial} == {"vaccination", "appointment", "prescription", "payment"}
    changed = await client.put("/notifications/preferences", headers=auth(me), json={
        "preferences": [{"category": "vaccination", "channel": "sms", "enabled": False}]})
    assert changed.status_code == 200, changed.text
    off = [p for p in changed.json()["preferences"] if not p["enabled"]]
    assert off == [{"category": "vaccination", "channel": "sms", "enabled": False}]
    assert await pool.fetchval("SELECT count(*) FROM audit_log WHERE action = 'notification.preferences_changed'") \
        == 1


@pytest.mark.parametrize("category", ["security", "call"])
async def test_security_and_call_messages_cannot_be_turned_off(client: Client, pool: asyncpg.Pool,
                                                               settings: Settings, category: str) -> None:
    [me] = await make_patients(pool, settings, 1)
    refused = await client.put("/notifications/preferences", headers=auth(me), json={
        "preferences": [{"category": category, "channel": "push", "enabled": False}]})
    assert refused.status_code == 422
    problem = refused.json()
    assert refused.headers["content-type"].startswith("application/problem+json")
    assert problem["errors"][0]["path"].startswith("body.preferences[0].category")


async def test_feed_shows_only_my_sent_pushes_and_opening_anothers_is_404(client: Client, pool: asyncpg.Pool,
                                                                          settings: Settings) -> None:
    me, other = await make_patients(pool, settings, 2)
    mine = await sent_push(pool, settings, me["account_id"], "vx:mine")
    theirs = await sent_push(pool, settings, other["account_id"], "vx:theirs")
    await queue(pool, settings, vaccination_notice(UUID(me["account_id"]), "vx:unsent"))  # not sent: not listed
    feed = (await client.get("/notifications", headers=auth(me))).json()
    assert [item["id"] for item in feed] == [str(mine)]
    assert feed[0]["title"] == "Sắp đến lịch tiêm của bé Bảo" and feed[0]["opened_at"] is None
    assert (await client.post(f"/notifications/{theirs}/opened", headers=auth(me))).status_code == 404
    assert await pool.fetchval("SELECT opened_at FROM notification_outbox WHERE id = $1", theirs) is None
    assert (await client.post(f"/notifications/{mine}/opened", headers=auth(me))).status_code == 204
    assert (await client.get("/notifications", headers=auth(me))).json()[0]["opened_at"] is not None


@pytest.mark.usefixtures("demo")
async def test_admin_sees_dead_letters_with_history_and_requeues_them(client: Client, pool: asyncpg.Pool,
                                                                      settings: Settings) -> None:
    [me] = await make_patients(pool, settings, 1)
    await queue(pool, settings, vaccination_notice(UUID(me["account_id"]), "vx:dead", channels=("sms",)))
    dead_id = await pool.fetchval(
        "UPDATE notification_outbox SET status = 'dead', attempts = 6, last_error = 'SMS gateway answered HTTP 500' "
        "RETURNING id")
    await pool.execute("INSERT INTO notification_attempts (outbox_id, attempt, outcome, error) "
                       "VALUES ($1, 6, 'dead', 'SMS gateway answered HTTP 500')", dead_id)
    assert (await client.get("/admin/notifications", headers=auth(me))).status_code == 403
    admin = await staff_headers(pool, settings, "admin")
    listed = (await client.get("/admin/notifications", headers=admin)).json()
    assert [d["id"] for d in listed] == [str(dead_id)]
    assert listed[0]["history"][0]["error"] == "SMS gateway answered HTTP 500"
    counts = (await client.get("/admin/notifications/counts", headers=admin)).json()
    assert counts["by_status"] == {"dead": 1}
    assert (await client.post(f"/admin/notifications/{dead_id}/requeue", headers=admin)).status_code == 204
    assert await pool.fetchval("SELECT status FROM notification_outbox") == "pending"
    assert (await client.post(f"/admin/notifications/{dead_id}/requeue", headers=admin)).status_code == 404
    assert await pool.fetchval("SELECT count(*) FROM audit_log WHERE action = 'notification.requeued'") == 1


async def test_anonymous_callers_get_401_problem(client: Client) -> None:
    for path in ("/notifications", "/notifications/preferences", "/admin/notifications"):
        response = await client.get(path)
        assert response.status_code == 401
        assert response.headers["content-type"].startswith("application/problem+json")
