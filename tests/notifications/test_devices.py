"""Push device registration over HTTP, and the device queries the dispatcher uses, on a real database."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import asyncpg
import pytest

from api.settings import Settings, with_overrides
from notifications import devices
from tests.helpers import Client, bearer, make_patients

FID = "fKx3m9Qp-2Rt7Vw1Yz4aBc"
TOKEN = "cT9x-abc:APA91bHun4MxP5egoKMwt2KZFBaFUH-1RYqx"


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return with_overrides(settings, run_dispatcher=False)  # no pushes here, only the device table


@pytest.fixture
async def two(pool: asyncpg.Pool, settings: Settings) -> list[dict[str, str]]:
    return await make_patients(pool, settings, 2, consent=False)


def device_body(**changes: Any) -> dict[str, Any]:
    return {"target_kind": "fid", "target": FID, "platform": "android", "app_version": "1.4.0", **changes}


async def register(client: Client, who: dict[str, str], **changes: Any) -> Any:
    return await client.post("/notifications/devices", json=device_body(**changes), headers=bearer(who))


async def test_register_then_refresh_the_same_installation(client: Client, pool: asyncpg.Pool,
                                                           two: list[dict[str, str]]) -> None:
    first = await register(client, two[0])
    assert first.status_code == 201, first.text
    created = first.json()
    assert created["target_masked"] == f"{FID[:4]}…{FID[-4:]}({len(FID)})"
    assert FID not in first.text

    again = await register(client, two[0], app_version="1.5.0")

    assert again.status_code == 200
    assert again.json()["id"] == created["id"]
    assert again.json()["app_version"] == "1.5.0"
    assert again.json()["last_seen_at"] > created["last_seen_at"]
    assert await pool.fetchval("SELECT count(*) FROM push_devices") == 1
    actions = await pool.fetch("SELECT action FROM audit_log WHERE target_type = 'push_device'")
    assert [r["action"] for r in actions] == ["push_device.registered"]  # a refresh is not audited


async def test_list_shows_own_active_devices_masked(client: Client, two: list[dict[str, str]]) -> None:
    await register(client, two[0])
    await register(client, two[0], target_kind="token", target=TOKEN, platform="ios")
    await register(client, two[1], target="someone-elses-fid-00001")

    listed = await client.get("/notifications/devices", headers=bearer(two[0]))

    assert listed.status_code == 200
    assert [(d["target_kind"], d["platform"]) for d in listed.json()] == [("token", "ios"), ("fid", "android")]
    assert TOKEN not in listed.text and FID not in listed.text


async def test_registering_on_another_account_moves_the_installation(client: Client, pool: asyncpg.Pool,
                                                                     two: list[dict[str, str]]) -> None:
    mine = (await register(client, two[0])).json()

    moved = await register(client, two[1])

    assert moved.status_code == 200
    assert moved.json()["id"] == mine["id"]
    assert (await client.get("/notifications/devices", headers=bearer(two[0]))).json() == []
    assert [d["id"] for d in (await client.get("/notifications/devices", headers=bearer(two[1]))).json()] == [
        mine["id"]]
    audit = await pool.fetchrow("SELECT actor_account_id, details FROM audit_log WHERE action = 'push_device.moved'")
    assert str(audit["actor_account_id"]) == two[1]["account_id"]
    assert audit["details"]["moved_from_account_id"] == two[0]["account_id"]


async def test_remove_own_device_stops_pushes_and_is_audited(client: Client, pool: asyncpg.Pool,
                                                             two: list[dict[str, str]]) -> None:
    device_id = (await register(client, two[0])).json()["id"]

    removed = await client.delete(f"/notifications/devices/{device_id}", headers=bearer(two[0]))

    assert removed.status_code == 204
    assert (await client.get("/notifications/devices", headers=bearer(two[0]))).json() == []
    row = await pool.fetchrow("SELECT disabled_at, disabled_reason FROM push_devices WHERE id = $1", UUID(device_id))
    assert row["disabled_at"] is not None and row["disabled_reason"] == "signed out"
    assert await pool.fetchval("SELECT count(*) FROM audit_log WHERE action = 'push_device.removed'") == 1
    # removing it again is harmless; registering again (signing back in) re-enables it
    assert (await client.delete(f"/notifications/devices/{device_id}", headers=bearer(two[0]))).status_code == 204
    assert (await register(client, two[0])).status_code == 200
    assert len((await client.get("/notifications/devices", headers=bearer(two[0]))).json()) == 1


async def test_another_account_cannot_remove_my_device(client: Client, pool: asyncpg.Pool,
                                                       two: list[dict[str, str]]) -> None:
    device_id = (await register(client, two[0])).json()["id"]

    attempt = await client.delete(f"/notifications/devices/{device_id}", headers=bearer(two[1]))

    assert attempt.status_code == 404
    assert attempt.headers["content-type"].startswith("application/problem+json")
    assert await pool.fetchval("SELECT disabled_at FROM push_devices WHERE id = $1", UUID(device_id)) is None
    missing = await client.delete("/notifications/devices/00000000-0000-4000-8000-000000000000",
                                  headers=bearer(two[1]))
    assert missing.status_code == 404  # same answer as for someone else's: nothing to learn


async def test_devices_need_a_signed_in_account(client: Client) -> None:
    assert (await client.post("/notifications/devices", json=device_body())).status_code == 401
    assert (await client.get("/notifications/devices")).status_code == 401


@pytest.mark.parametrize(("changes", "path"), [
    ({"target_kind": "apns"}, "body.target_kind"),
    ({"target": "short"}, "body.target"),
    ({"target": "has spaces in it"}, "body.target"),
    ({"platform": "symbian"}, "body.platform"),
    ({"app_version": "9" * 51}, "body.app_version"),
    ({"extra": "field"}, "body.extra"),
], ids=["target-kind", "short-target", "target-chars", "platform", "app-version", "unknown-field"])
async def test_invalid_registration_is_a_problem_with_the_field_path(client: Client, two: list[dict[str, str]],
                                                                     changes: dict[str, Any], path: str) -> None:
    response = await register(client, two[0], **changes)

    assert response.status_code == 422
    assert response.headers["content-type"].startswith("application/problem+json")
    assert [e["path"] for e in response.json()["errors"]] == [path]


async def test_missing_field_is_reported_by_path(client: Client, two: list[dict[str, str]]) -> None:
    response = await client.post("/notifications/devices", json={"target_kind": "fid", "platform": "ios"},
                                 headers=bearer(two[0]))

    assert response.status_code == 422
    assert [e["path"] for e in response.json()["errors"]] == ["body.target"]


async def test_dispatcher_queries_active_devices_and_disables_gone_targets(client: Client, pool: asyncpg.Pool,
                                                                           two: list[dict[str, str]]) -> None:
    await register(client, two[0])
    await register(client, two[0], target_kind="token", target=TOKEN, platform="ios")
    await register(client, two[1], target="second-account-fid-01", platform="web")
    first, second = UUID(two[0]["account_id"]), UUID(two[1]["account_id"])
    nobody = UUID("00000000-0000-4000-8000-000000000000")

    async with pool.acquire() as conn:
        found = await devices.active_devices(conn, [first, second, nobody])
        assert {k: [(d.target_kind, d.target, d.platform) for d in v] for k, v in found.items()} == {
            first: [("token", TOKEN, "ios"), ("fid", FID, "android")],
            second: [("fid", "second-account-fid-01", "web")],
            nobody: [],
        }

        disabled = await devices.disable_targets(conn, [("token", TOKEN), ("fid", "never-registered-0001"),
                                                        ("token", FID)], "UNREGISTERED")
        assert disabled == 1  # the same string as a FID is a different installation than as a token
        assert await devices.disable_targets(conn, [("token", TOKEN)], "UNREGISTERED") == 0
        assert await devices.disable_targets(conn, [], "UNREGISTERED") == 0
        after = await devices.active_devices(conn, [first])

    assert [d.target for d in after[first]] == [FID]
    assert await pool.fetchval("SELECT disabled_reason FROM push_devices WHERE target = $1", TOKEN) == "UNREGISTERED"
