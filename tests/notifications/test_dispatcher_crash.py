"""A dispatcher killed between sending and recording the outcome: its lease runs out, another dispatcher sends again,
and the user still gets one SMS and one notification on the phone."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from collections.abc import Iterator

import asyncpg
import pytest

from api.settings import Settings, with_overrides
from notifications.fcm_sandbox import FcmSandbox, demo_service_account
from notifications.sms_sandbox import SmsSandbox
from tests.conftest import server_env
from tests.notifications.delivery import DAYTIME, account_with_phone, add_device, dispatcher, queue, vaccination_notice

LEASE_S = 2
STALL_S = 4.0  # the sandboxes answer after this; the dispatcher is dead by then


@pytest.fixture
def fcm(settings: Settings) -> Iterator[FcmSandbox]:
    with FcmSandbox(project_id=settings.fcm_project_id) as sandbox:
        yield sandbox


async def wait_for(condition: object, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return
        await asyncio.sleep(0.05)
    raise TimeoutError(f"waited {timeout_s} s for {what}")


async def test_sigkill_between_send_and_commit_delivers_each_message_once(
        pool: asyncpg.Pool, settings: Settings, fcm: FcmSandbox, sms: SmsSandbox) -> None:
    configured = with_overrides(settings, fcm_sandbox_port=fcm.port, notification_lease_s=LEASE_S)
    fcm.trust_service_account(demo_service_account(configured))
    account = await account_with_phone(pool, "+84912300001")
    await add_device(pool, account, "fid-crash-phone")
    await queue(pool, configured, vaccination_notice(account, "vx:crash", channels=("push", "sms")))
    sms.fail_next(1, "timeout", delay_s=STALL_S)
    fcm.fail_next(1, "stall", delay_s=STALL_S)

    # the real `lienthong dispatcher` process, configured like the test's app
    # (no quiet hours for it: it runs on the real clock, which may be at night in Vietnam)
    env = server_env(configured, FCM_SANDBOX_PORT=str(fcm.port), LIENTHONG_NOTIFICATION_LEASE=str(LEASE_S),
                     LIENTHONG_QUIET_START_HOUR="0", LIENTHONG_QUIET_END_HOUR="0")
    process = await asyncio.create_subprocess_exec(sys.executable, "-m", "api.cli", "dispatcher", env=env,
                                                   stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
    try:
        await wait_for(lambda: sms.received >= 1 and fcm.send_requests >= 1, 60, "both sends to reach the sandboxes")
        os.kill(process.pid, signal.SIGKILL)  # the answers are still on their way: nothing can be recorded
        await asyncio.wait_for(process.wait(), 10)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert dict(await pool.fetch("SELECT channel, status FROM notification_outbox")) == \
        {"push": "sending", "sms": "sending"}

    # the stalled requests complete on the provider side: both messages were accepted
    await wait_for(lambda: len(sms.messages()) == 1 and len(fcm.messages()) == 1, STALL_S + 5, "the stalled sends")
    await asyncio.sleep(LEASE_S + 0.2)
    async with dispatcher(pool, configured, clock=lambda: DAYTIME) as survivor:
        stats = await survivor.dispatch_once()
    assert stats.claimed == 2

    rows = await pool.fetch("SELECT channel, status, attempts FROM notification_outbox ORDER BY channel")
    assert [(r["channel"], r["status"], r["attempts"]) for r in rows] == [("push", "sent", 2), ("sms", "sent", 2)]
    # SMS: the resend carried the same RequestId; the gateway answered 124 and delivered nothing new
    assert len(sms.messages("+84912300001")) == 1
    # push: FCM has no idempotency key, so the resend is a second request, but it carries the same collapse key and
    # notification tag: the phone replaces the first notification and shows one
    assert len(fcm.messages("fid-crash-phone")) == 2
    assert len(fcm.device_view("fid-crash-phone")) == 1
    pushes = fcm.messages("fid-crash-phone")
    assert pushes[0].data["notification_id"] == pushes[1].data["notification_id"]
