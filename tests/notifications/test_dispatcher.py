"""The dispatcher end to end: outbox rows in real PostgreSQL, firebase-admin talking to the FCM sandbox and the eSMS
client talking to the SMS sandbox over HTTP on 127.0.0.1."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from api.settings import Settings, with_overrides
from notifications.fcm_sandbox import FcmSandbox, demo_service_account
from notifications.sms_sandbox import SmsSandbox
from tests.notifications.delivery import (
    DAYTIME,
    account_with_phone,
    add_device,
    dispatcher,
    queue,
    statuses,
    vaccination_notice,
)


def vn(text: str) -> datetime:
    return datetime.fromisoformat(text + "+07:00").astimezone(UTC)


@pytest.fixture
def fcm(settings: Settings) -> Iterator[FcmSandbox]:
    with FcmSandbox(project_id=settings.fcm_project_id) as sandbox:
        yield sandbox


@pytest.fixture
def delivery(settings: Settings, fcm: FcmSandbox) -> Settings:
    """Settings whose push sender uses the FCM sandbox with the demo service account it trusts."""
    configured = with_overrides(settings, fcm_sandbox_port=fcm.port)
    fcm.trust_service_account(demo_service_account(configured))
    return configured


async def test_push_reaches_the_device_with_text_deep_link_and_collapse_key(
        pool: asyncpg.Pool, delivery: Settings, fcm: FcmSandbox) -> None:
    account = await account_with_phone(pool, "+84912100001")
    await add_device(pool, account, "fid-mother-phone-1")
    await queue(pool, delivery, vaccination_notice(account))
    async with dispatcher(pool, delivery) as d:
        stats = await d.dispatch_once()
    assert stats.outcomes == {"sent": 1}
    [push] = fcm.messages("fid-mother-phone-1")
    assert push.title == "Sắp đến lịch tiêm của bé Bảo"
    assert "khám sàng lọc" in (push.body or "")
    assert push.data["link"] == "lienthong://children/c1/vaccinations"
    row = await pool.fetchrow("SELECT id, status, provider_ref, sent_at FROM notification_outbox")
    assert push.data["notification_id"] == str(row["id"])
    assert row["status"] == "sent" and row["provider_ref"] == push.name and row["sent_at"] is not None
    assert fcm.token_grants == 1  # the real OAuth flow ran against the sandbox


async def test_account_without_a_device_gets_the_sms_instead(
        pool: asyncpg.Pool, delivery: Settings, sms: SmsSandbox, fcm: FcmSandbox) -> None:
    account = await account_with_phone(pool, "+84912100002")
    await queue(pool, delivery, vaccination_notice(account))
    async with dispatcher(pool, delivery) as d:
        await d.dispatch_once()  # push: no device -> fallback row
        await d.dispatch_once()  # the fallback SMS
    assert fcm.messages() == []
    [text] = sms.messages("+84912100002")
    assert text.content.startswith("Lienthong: be Bao co lich tiem ngay 18/11/2025.")
    assert await statuses(pool) == {"push": "failed", "sms": "sent"}
    fallback_for = await pool.fetchval("SELECT fallback_for FROM notification_outbox WHERE channel = 'sms'")
    assert fallback_for == await pool.fetchval("SELECT id FROM notification_outbox WHERE channel = 'push'")


async def test_unregistered_device_is_disabled_and_sms_takes_over(
        pool: asyncpg.Pool, delivery: Settings, sms: SmsSandbox, fcm: FcmSandbox) -> None:
    account = await account_with_phone(pool, "+84912100003")
    await add_device(pool, account, "fid-uninstalled-app")
    fcm.unregister("fid-uninstalled-app")
    await queue(pool, delivery, vaccination_notice(account))
    async with dispatcher(pool, delivery) as d:
        await d.dispatch_once()
        await d.dispatch_once()
    device = await pool.fetchrow("SELECT disabled_at, disabled_reason FROM push_devices")
    assert device["disabled_at"] is not None and device["disabled_reason"] == "FCM: UNREGISTERED"
    assert len(sms.messages("+84912100003")) == 1
    assert "UNREGISTERED" in await pool.fetchval("SELECT last_error FROM notification_outbox WHERE channel='push'")


async def test_one_dead_device_does_not_stop_the_others(
        pool: asyncpg.Pool, delivery: Settings, sms: SmsSandbox, fcm: FcmSandbox) -> None:
    account = await account_with_phone(pool, "+84912100004")
    await add_device(pool, account, "fid-old-tablet")
    await add_device(pool, account, "fid-new-phone", "ios")
    fcm.set_target_error("fid-old-tablet", "SENDER_ID_MISMATCH")
    await queue(pool, delivery, vaccination_notice(account))
    async with dispatcher(pool, delivery) as d:
        await d.dispatch_once()
    assert len(fcm.messages("fid-new-phone")) == 1
    assert await statuses(pool) == {"push": "sent"}
    assert sms.messages("+84912100004") == []
    disabled = await pool.fetchval("SELECT array_agg(target) FROM push_devices WHERE disabled_at IS NOT NULL")
    assert disabled == ["fid-old-tablet"]


async def test_gateway_busy_retries_with_backoff_then_succeeds(
        pool: asyncpg.Pool, delivery: Settings, sms: SmsSandbox) -> None:
    account = await account_with_phone(pool, "+84912100005")
    await queue(pool, delivery, vaccination_notice(account, channels=("sms",)))
    sms.fail_next(1, "busy")
    async with dispatcher(pool, delivery) as d:
        await d.dispatch_once()
        row = await pool.fetchrow("SELECT status, attempts, available_at, last_error FROM notification_outbox")
        assert row["status"] == "retry" and row["attempts"] == 1
        assert "503" in row["last_error"]
        assert DAYTIME <= row["available_at"] <= DAYTIME + timedelta(seconds=30)  # first backoff: up to 30 s
        await d.dispatch_once()
    assert await statuses(pool) == {"sms": "sent"}
    assert len(sms.messages("+84912100005")) == 1
    history = await pool.fetch("SELECT attempt, outcome FROM notification_attempts ORDER BY id")
    assert [(r["attempt"], r["outcome"]) for r in history] == [(1, "retry"), (2, "sent")]


async def test_quota_exceeded_waits_at_least_retry_after(
        pool: asyncpg.Pool, delivery: Settings, fcm: FcmSandbox) -> None:
    account = await account_with_phone(pool, "+84912100006")
    await add_device(pool, account, "fid-busy-project")
    fcm.retry_after_s = 120
    fcm.fail_next(1, "quota")
    await queue(pool, delivery, vaccination_notice(account))
    async with dispatcher(pool, delivery) as d:
        await d.dispatch_once()
    row = await pool.fetchrow("SELECT status, available_at FROM notification_outbox")
    assert row["status"] == "retry"
    assert row["available_at"] - DAYTIME >= timedelta(seconds=120)


async def test_dead_letter_after_max_attempts_is_listed_for_admins_and_can_be_requeued(
        pool: asyncpg.Pool, delivery: Settings, sms: SmsSandbox) -> None:
    settings = with_overrides(delivery, notification_max_attempts=2)
    account = await account_with_phone(pool, "+84912100007")
    await queue(pool, settings, vaccination_notice(account, channels=("sms",)))
    sms.fail_next(2, "http500")
    async with dispatcher(pool, settings) as d:
        await d.dispatch_once()
        await d.dispatch_once()  # the backoff ends in the past of the real clock: due again at once
        row = await pool.fetchrow("SELECT status, attempts, last_error FROM notification_outbox")
        assert (row["status"], row["attempts"]) == ("dead", 2)
        assert "HTTP 500" in row["last_error"]
        assert sms.messages("+84912100007") == []
        await pool.execute("UPDATE notification_outbox SET status = 'pending', attempts = 0")  # an admin's requeue
        await d.dispatch_once()
    assert len(sms.messages("+84912100007")) == 1


async def test_permanent_gateway_refusal_fails_without_retrying(pool: asyncpg.Pool, delivery: Settings,
                                                                  sms: SmsSandbox) -> None:
    wrong_brand = with_overrides(delivery, sms_brandname="NOT-REGISTERED")
    account = await account_with_phone(pool, "+84912100008")
    await queue(pool, wrong_brand, vaccination_notice(account, channels=("sms",)))
    async with dispatcher(pool, wrong_brand) as d:
        await d.dispatch_once()
    row = await pool.fetchrow("SELECT status, attempts, last_error FROM notification_outbox")
    assert (row["status"], row["attempts"]) == ("failed", 1)
    assert "code 104" in row["last_error"]


async def test_quiet_hours_defer_reminders_but_not_calls_or_confirmations(pool: asyncpg.Pool, delivery: Settings,
                                                                            fcm: FcmSandbox) -> None:
    account = await account_with_phone(pool, "+84912100009")
    await add_device(pool, account, "fid-night-phone")
    consultation = {"consultation_id": "k", "doctor_name": "BS. Minh", "starts_at": "08:00 02/12/2026"}
    await queue(pool, delivery, vaccination_notice(account), vaccination_notice(
        account, "call", kind="call_started", category="call", params=consultation), vaccination_notice(
        account, "booked", kind="appointment_booked", category="appointment", params=consultation))
    night = vn("2026-12-01 21:05")
    async with dispatcher(pool, delivery, clock=lambda: night) as d:
        stats = await d.dispatch_once()
    assert stats.outcomes == {"sent": 2, "deferred": 1}
    assert sorted(p.title for p in fcm.messages()) == ["Bác sĩ đã vào cuộc gọi", "Đã đặt lịch khám"]
    row = await pool.fetchrow("SELECT status, attempts, available_at FROM notification_outbox WHERE kind = $1",
                              "vaccination_due_soon")
    assert (row["status"], row["attempts"]) == ("pending", 0)
    assert row["available_at"] == vn("2026-12-02 08:00")


async def test_daily_cap_holds_extra_reminders_until_tomorrow(pool: asyncpg.Pool, delivery: Settings,
                                                              fcm: FcmSandbox) -> None:
    settings = with_overrides(delivery, notification_daily_cap=2)
    account = await account_with_phone(pool, "+84912100010")
    await add_device(pool, account, "fid-busy-parent")
    await queue(pool, settings, *(vaccination_notice(account, f"vx:{i}") for i in range(3)))
    noon = vn("2026-12-01 12:00")
    async with dispatcher(pool, settings, clock=lambda: noon) as d:
        stats = await d.dispatch_once()
    assert stats.outcomes == {"sent": 2, "deferred": 1}
    assert len(fcm.messages()) == 2
    assert await pool.fetchval("SELECT available_at FROM notification_outbox WHERE status = 'pending'") \
        == vn("2026-12-02 08:00")


async def test_opted_out_reminders_are_cancelled_at_send_time(pool: asyncpg.Pool, delivery: Settings,
                                                              fcm: FcmSandbox) -> None:
    account = await account_with_phone(pool, "+84912100011")
    await add_device(pool, account, "fid-quiet-user")
    await queue(pool, delivery, vaccination_notice(account))
    # the preference changed after the reminder was queued: it is read when sending
    await pool.execute("INSERT INTO notification_preferences (account_id, category, channel, enabled) "
                       "VALUES ($1, 'vaccination', 'push', false)", account)
    async with dispatcher(pool, delivery) as d:
        await d.dispatch_once()
    assert fcm.messages() == []
    assert await statuses(pool) == {"push": "cancelled"}


async def test_expired_reminder_is_dropped_not_sent_late(pool: asyncpg.Pool, delivery: Settings,
                                                         sms: SmsSandbox) -> None:
    account = await account_with_phone(pool, "+84912100012")
    await queue(pool, delivery, vaccination_notice(account, channels=("sms",),
                                                   expires_at=DAYTIME + timedelta(minutes=10)))
    async with dispatcher(pool, delivery, clock=lambda: DAYTIME + timedelta(minutes=11)) as d:
        await d.dispatch_once()
    assert await statuses(pool) == {"sms": "expired"}
    assert sms.messages("+84912100012") == []


async def test_unopened_vaccination_push_is_followed_by_one_sms(pool: asyncpg.Pool, delivery: Settings,
                                                                sms: SmsSandbox) -> None:
    opened_account = await account_with_phone(pool, "+84912100013")
    unopened_account = await account_with_phone(pool, "+84912100014")
    for account, device in ((opened_account, "fid-opened-1"), (unopened_account, "fid-unopened-1")):
        await add_device(pool, account, device)
        await queue(pool, delivery, vaccination_notice(account, f"vx:{device}"))
    async with dispatcher(pool, delivery) as d:
        await d.dispatch_once()
        await pool.execute("UPDATE notification_outbox SET opened_at = now() WHERE account_id = $1", opened_account)
        assert await d.enqueue_unopened_fallbacks() == 0  # not yet: the window has not passed
        await pool.execute("UPDATE notification_outbox SET sent_at = sent_at - interval '5 hours'")
        assert await d.enqueue_unopened_fallbacks() == 1
        assert await d.enqueue_unopened_fallbacks() == 0  # once only
        await d.dispatch_once()
    assert sms.messages("+84912100013") == []
    assert len(sms.messages("+84912100014")) == 1


async def test_two_dispatchers_share_the_outbox_without_sending_twice(
        pool: asyncpg.Pool, delivery: Settings, sms: SmsSandbox) -> None:
    settings = with_overrides(delivery, notification_batch=25, notification_daily_cap=1000)
    accounts = [await account_with_phone(pool, f"+849122{i:05d}") for i in range(60)]
    await queue(pool, settings, *(vaccination_notice(a, f"vx:{a}", channels=("sms",)) for a in accounts))
    async with dispatcher(pool, settings) as first, dispatcher(pool, settings) as second:
        async def drain(d: object) -> None:
            while (await d.dispatch_once()).claimed:  # type: ignore[attr-defined]
                pass
        await asyncio.gather(drain(first), drain(second))
    assert await statuses(pool) == {"sms": "sent"}
    assert await pool.fetchval("SELECT count(*) FROM notification_outbox WHERE status = 'sent'") == 60
    assert sms.received == 60  # every message was sent once: no RequestId had to be deduplicated
    assert len(sms.messages()) == 60
