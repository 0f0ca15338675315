"""App installations that receive pushes (table ``push_devices``): registration by the app, and the two queries
the dispatcher needs (the active devices of some accounts; disabling targets FCM says are gone).

A token/FID names one installation, so registering it again moves it to the caller's account: the last account
signed in on a shared phone gets its pushes, the previous one no longer does.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Annotated, Literal
from uuid import UUID

import asyncpg
import msgspec

from api import audit
from api.audit import AuditContext
from api.db import Conn
from api.errors import NotFound
from notifications.fcm import mask_target

TargetKind = Literal["token", "fid"]
Platform = Literal["android", "ios", "web"]
SIGNED_OUT = "signed out"
_MAX_REASON = 200  # push_devices.disabled_reason CHECK

# FCM registration tokens and FIDs are URL-safe base64 with ':' separators; the length bounds are the table's.
Target = Annotated[str, msgspec.Meta(min_length=8, max_length=4096, pattern=r"^[A-Za-z0-9_:.\-]+$",
                                     description="FCM registration token or Firebase installation ID")]


class DeviceIn(msgspec.Struct, forbid_unknown_fields=True):
    target_kind: TargetKind
    target: Target
    platform: Platform
    app_version: Annotated[str, msgspec.Meta(max_length=50)] = ""


class DeviceView(msgspec.Struct):
    """A device as its owner sees it; the target is masked (it is a credential to push to the phone)."""

    id: UUID
    target_kind: TargetKind
    target_masked: str
    platform: Platform
    app_version: str
    created_at: datetime
    last_seen_at: datetime


class Device(msgspec.Struct, frozen=True):
    """What the dispatcher needs to push to one installation."""

    id: UUID
    target_kind: TargetKind
    target: str
    platform: Platform


_VIEW_COLUMNS = "id, target_kind, target, platform, app_version, created_at, last_seen_at"


def _view(row: asyncpg.Record) -> DeviceView:
    fields = dict(row)
    fields["target_masked"] = mask_target(fields.pop("target"))
    return msgspec.convert(fields, DeviceView)


async def register(pool: asyncpg.Pool, account_id: UUID, data: DeviceIn, ctx: AuditContext) -> tuple[DeviceView, bool]:
    """Upsert by (target_kind, target): the installation now belongs to ``account_id``, is enabled again and was
    seen now. Returns the device and whether it was new."""
    async with pool.acquire() as conn, conn.transaction():
        previous = await conn.fetchval(
            "SELECT account_id FROM push_devices WHERE target_kind = $1 AND target = $2 FOR UPDATE",
            data.target_kind, data.target)
        row = await conn.fetchrow(
            f"""INSERT INTO push_devices (account_id, target_kind, target, platform, app_version)
                VALUES ($1, $2, $3, $4, $5)
                ON CONFLICT (target_kind, target) DO UPDATE
                  SET account_id = EXCLUDED.account_id, platform = EXCLUDED.platform,
                      app_version = EXCLUDED.app_version, last_seen_at = now(), disabled_at = NULL,
                      disabled_reason = NULL
                RETURNING {_VIEW_COLUMNS}""",  # noqa: S608 - a constant column list
            account_id, data.target_kind, data.target, data.platform, data.app_version)
        assert row is not None
        created = previous is None
        moved = previous is not None and previous != account_id
        if created or moved:  # a refresh of the caller's own device changes nothing worth auditing
            details: dict[str, object] = {"platform": data.platform, "target_kind": data.target_kind}
            if moved:
                details["moved_from_account_id"] = str(previous)
            await audit.record(conn, ctx, "push_device.moved" if moved else "push_device.registered",
                               target_type="push_device", target_id=row["id"], details=details)
        return _view(row), created


async def list_own(pool: asyncpg.Pool, account_id: UUID) -> list[DeviceView]:
    async with pool.acquire() as conn:
        rows = await conn.fetch(
            f"""SELECT {_VIEW_COLUMNS} FROM push_devices
                WHERE account_id = $1 AND disabled_at IS NULL ORDER BY last_seen_at DESC, id""",  # noqa: S608
            account_id)
    return [_view(row) for row in rows]


async def remove_own(pool: asyncpg.Pool, account_id: UUID, device_id: UUID, ctx: AuditContext) -> None:
    """Sign-out of one installation: no more pushes to it. Someone else's device is reported as absent."""
    async with pool.acquire() as conn, conn.transaction():
        row = await conn.fetchrow(
            "SELECT account_id, disabled_at IS NULL AS active FROM push_devices WHERE id = $1 FOR UPDATE", device_id)
        if row is None or row["account_id"] != account_id:
            raise NotFound("No such device, or it is not yours.")
        if row["active"]:  # removing it again keeps the first reason (e.g. FCM's UNREGISTERED)
            await conn.execute("UPDATE push_devices SET disabled_at = now(), disabled_reason = $2 WHERE id = $1",
                               device_id, SIGNED_OUT)
            await audit.record(conn, ctx, "push_device.removed", target_type="push_device", target_id=device_id)


async def disable_targets(conn: Conn, targets: Sequence[tuple[str, str]], reason: str) -> int:
    """Stop pushing to these installations (FCM said UNREGISTERED, invalid token or SENDER_ID_MISMATCH); returns
    how many active devices were disabled. Whoever owns them now: a gone token is gone for every account."""
    if not targets:
        return 0
    result = await conn.execute(
        """UPDATE push_devices d SET disabled_at = now(), disabled_reason = $3
           FROM unnest($1::text[], $2::text[]) AS t(kind, target)
           WHERE d.target_kind = t.kind AND d.target = t.target AND d.disabled_at IS NULL""",
        [kind for kind, _ in targets], [target for _, target in targets], reason[:_MAX_REASON])
    return int(result.rsplit(" ", 1)[1])


async def active_devices(conn: Conn, account_ids: list[UUID]) -> dict[UUID, list[Device]]:
    """The enabled devices of each account, most recently seen first; every requested account is a key (with an
    empty list when it has none, i.e. the SMS fallback applies)."""
    found: dict[UUID, list[Device]] = {account_id: [] for account_id in account_ids}
    rows = await conn.fetch(
        """SELECT account_id, id, target_kind, target, platform FROM push_devices
           WHERE account_id = ANY($1::uuid[]) AND disabled_at IS NULL
           ORDER BY account_id, last_seen_at DESC, id""",
        list(found))
    for row in rows:
        found[row["account_id"]].append(Device(id=row["id"], target_kind=row["target_kind"], target=row["target"],
                                               platform=row["platform"]))
    return found
