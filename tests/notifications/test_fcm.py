"""notifications.fcm: the real firebase-admin SDK, with the real service-account OAuth flow, against the FCM
sandbox over HTTP."""

from __future__ import annotations

import asyncio
import time
import warnings
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from api.settings import Settings
from notifications import fcm
from notifications.fcm import PushMessage, PushSender, push_sender_for
from notifications.fcm_sandbox import FcmSandbox, demo_service_account

PROJECT = "lienthong-test"


@pytest.fixture(scope="session")
def fcm_sandbox_server() -> Iterator[FcmSandbox]:
    with FcmSandbox(project_id=PROJECT, retry_after_s=17) as running:
        yield running


@pytest.fixture(scope="session")
def fcm_settings(fcm_sandbox_server: FcmSandbox, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """One demo service account for the run (RSA key generation is slow), trusted by the sandbox."""
    settings = Settings(data_dir=tmp_path_factory.mktemp("fcm"), fcm_project_id=PROJECT,
                        fcm_sandbox_port=fcm_sandbox_server.port, fcm_timeout_s=1)
    fcm_sandbox_server.trust_service_account(demo_service_account(settings))
    return settings


@pytest.fixture
def fcm_sandbox(fcm_sandbox_server: FcmSandbox) -> FcmSandbox:
    fcm_sandbox_server.clear()
    return fcm_sandbox_server


@pytest.fixture
async def sender(fcm_settings: Settings, fcm_sandbox: FcmSandbox) -> AsyncIterator[PushSender]:
    made = push_sender_for(fcm_settings)
    yield made
    await made.close()


def push(target: str = "fid-android-0001", **changes: Any) -> PushMessage:
    fields: dict[str, Any] = {
        "target_kind": "fid", "target": target, "platform": "android", "title": "Nhắc lịch tiêm",
        "body": "Bé An có lịch tiêm 5 trong 1 ngày mai", "data": {"notification_id": "n-1", "link": "lienthong://vx"},
        "collapse_key": "vx:child-1:dtp-2", "ttl_s": 3600, "priority": "high",
    }
    fields.update(changes)
    return PushMessage(**fields)


async def test_android_push_is_encoded_with_ttl_collapse_key_and_tag(sender: PushSender,
                                                                    fcm_sandbox: FcmSandbox) -> None:
    grants_before = fcm_sandbox.token_grants
    [outcome] = await sender.send([push()])

    assert outcome.disposition == "sent"
    assert outcome.message_name is not None and outcome.message_name.startswith(f"projects/{PROJECT}/messages/")
    [received] = fcm_sandbox.messages("fid-android-0001")
    assert received.name == outcome.message_name
    assert (received.target_kind, received.title, received.body) == ("fid", "Nhắc lịch tiêm",
                                                                    "Bé An có lịch tiêm 5 trong 1 ngày mai")
    assert received.data == {"notification_id": "n-1", "link": "lienthong://vx"}
    assert received.android == {"priority": "high", "ttl": "3600s", "collapse_key": "vx:child-1:dtp-2",
                                "notification": {"tag": "vx:child-1:dtp-2"}}
    assert received.apns == {} and received.webpush == {}
    assert fcm_sandbox.token_grants == grants_before + 1  # the service-account JWT grant ran against the sandbox


async def test_ios_push_carries_apns_headers(sender: PushSender, fcm_sandbox: FcmSandbox) -> None:
    before = int(time.time())
    outcomes = await sender.send([
        push("fid-ios-high-0001", platform="ios", ttl_s=86_400),
        push("fid-ios-normal-01", platform="ios", priority="normal", ttl_s=0, collapse_key="k" * 80),
    ])

    assert [o.disposition for o in outcomes] == ["sent", "sent"]
    high = fcm_sandbox.messages("fid-ios-high-0001")[0].apns["headers"]
    assert {k: v for k, v in high.items() if k != "apns-expiration"} == {
        "apns-priority": "10", "apns-collapse-id": "vx:child-1:dtp-2", "apns-push-type": "alert"}
    assert before + 86_400 <= int(high["apns-expiration"]) <= int(time.time()) + 86_400
    normal = fcm_sandbox.messages("fid-ios-normal-01")[0].apns["headers"]
    assert normal["apns-priority"] == "5"
    assert normal["apns-expiration"] == "0"  # TTL 0: now or never
    assert len(normal["apns-collapse-id"]) == 64  # APNs' limit; the 80-byte key is replaced by its digest


async def test_data_only_ios_push_uses_priority_5_and_background_type(sender: PushSender,
                                                                      fcm_sandbox: FcmSandbox) -> None:
    [outcome] = await sender.send([push("fid-ios-silent-01", platform="ios", title="", body="")])

    assert outcome.disposition == "sent"  # the sandbox refuses priority 10 for data-only pushes, as Apple does
    received = fcm_sandbox.messages("fid-ios-silent-01")[0]
    assert received.title is None
    assert received.apns["headers"]["apns-priority"] == "5"
    assert received.apns["headers"]["apns-push-type"] == "background"
    assert received.apns["payload"] == {"aps": {"content-available": 1}}


async def test_web_push_carries_ttl_urgency_and_tag(sender: PushSender, fcm_sandbox: FcmSandbox) -> None:
    [outcome] = await sender.send([push("fid-web-00000001", platform="web", priority="normal", ttl_s=600)])

    assert outcome.disposition == "sent"
    webpush = fcm_sandbox.messages("fid-web-00000001")[0].webpush
    assert webpush == {"headers": {"TTL": "600", "Urgency": "normal"}, "notification": {"tag": "vx:child-1:dtp-2"}}


async def test_token_target_is_sent_as_token_without_deprecation_warning(sender: PushSender,
                                                                         fcm_sandbox: FcmSandbox) -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        [outcome] = await sender.send([push("legacy-registration-token:APA91b", target_kind="token")])

    assert outcome.disposition == "sent"
    assert fcm_sandbox.messages("legacy-registration-token:APA91b")[0].target_kind == "token"
    assert not [w for w in caught if issubclass(w.category, DeprecationWarning)]


def _unregister(sandbox: FcmSandbox, target: str) -> None:
    sandbox.unregister(target)


def _target_error(code: Any) -> Callable[[FcmSandbox, str], None]:
    return lambda sandbox, target: sandbox.set_target_error(target, code)


def _fault(mode: Any) -> Callable[[FcmSandbox, str], None]:
    return lambda sandbox, _: sandbox.fail_next(1, mode)


@pytest.mark.parametrize(("arrange", "disposition", "code", "retry_after_s"), [
    (_unregister, "target_gone", "UNREGISTERED", None),
    (_target_error("INVALID_ARGUMENT"), "target_gone", "INVALID_ARGUMENT", None),
    (_target_error("SENDER_ID_MISMATCH"), "target_gone", "SENDER_ID_MISMATCH", None),
    (_target_error("THIRD_PARTY_AUTH_ERROR"), "config_error", "THIRD_PARTY_AUTH_ERROR", None),
    (_fault("quota"), "retry", "QUOTA_EXCEEDED", 17.0),
    (_fault("unavailable"), "retry", "UNAVAILABLE", 17.0),
    (_fault("internal"), "retry", "INTERNAL", None),
], ids=["unregistered", "invalid-token", "sender-id-mismatch", "third-party-auth", "quota", "unavailable",
        "internal"])
async def test_fcm_error_maps_to_disposition(sender: PushSender, fcm_sandbox: FcmSandbox,
                                             arrange: Callable[[FcmSandbox, str], None], disposition: str,
                                             code: str, retry_after_s: float | None) -> None:
    target = "fid-failing-00001"
    arrange(fcm_sandbox, target)
    requests_before = fcm_sandbox.send_requests

    [outcome] = await sender.send([push(target)])

    assert (outcome.disposition, outcome.error_code, outcome.retry_after_s) == (disposition, code, retry_after_s)
    assert outcome.message_name is None
    assert fcm_sandbox.messages(target) == []
    if disposition == "retry":  # the SDK's inner retries of 500/503 are off: the outbox retries, with jitter
        assert fcm_sandbox.send_requests == requests_before + 1


async def test_one_failure_does_not_affect_the_rest_of_the_batch(sender: PushSender, fcm_sandbox: FcmSandbox) -> None:
    fcm_sandbox.unregister("fid-uninstalled-01")

    outcomes = await sender.send([push("fid-ok-000000001"), push("fid-uninstalled-01"), push("fid-ok-000000002")])

    assert [o.disposition for o in outcomes] == ["sent", "target_gone", "sent"]
    assert len(fcm_sandbox.messages()) == 2


@pytest.mark.parametrize(("changes", "sent_to_fcm"), [
    ({"data": {"from": "x"}}, True),  # a key FCM reserves
    ({"body": "x" * 5000}, True),  # over FCM's 4096-byte payload limit
    ({"ttl_s": 2_419_201}, False),  # over 28 days: refused before sending
    ({"ttl_s": -1}, False),
    ({"data": {"n": 1}}, False),  # the SDK's encoder refuses non-string data values
], ids=["reserved-data-key", "too-big", "ttl-too-long", "ttl-negative", "non-string-data"])
async def test_bad_payload_is_a_payload_error_and_the_rest_is_sent(sender: PushSender, fcm_sandbox: FcmSandbox,
                                                                   changes: dict[str, Any], sent_to_fcm: bool) -> None:
    requests_before = fcm_sandbox.send_requests

    outcomes = await sender.send([push("fid-bad-payload-1", **changes), push("fid-fine-payload1")])

    assert [(o.disposition, o.error_code) for o in outcomes] == [("payload_error", "INVALID_ARGUMENT"),
                                                                  ("sent", None)]
    assert fcm_sandbox.send_requests == requests_before + (2 if sent_to_fcm else 1)


def test_chunks_are_the_sdk_maximum_of_500() -> None:
    assert fcm.MAX_BATCH == 500


async def test_a_batch_larger_than_a_chunk_is_split_and_keeps_its_order(
        sender: PushSender, fcm_sandbox: FcmSandbox, monkeypatch: pytest.MonkeyPatch) -> None:
    # Chunks of 5 instead of 500: 501 real sends take ~13 s against the sandbox, spent in httpcore's pool
    # bookkeeping for 400 requests queued behind its 100 HTTP/1.1 connections (Google speaks HTTP/2).
    monkeypatch.setattr(fcm, "MAX_BATCH", 5)
    chunks: list[int] = []
    original = fcm.messaging.send_each_async

    async def recording(messages: list[Any], *args: Any, **kwargs: Any) -> Any:
        chunks.append(len(messages))
        return await original(messages, *args, **kwargs)

    monkeypatch.setattr(fcm.messaging, "send_each_async", recording)
    batch = [push(f"fid-batch-{i:05d}", collapse_key=f"k{i}") for i in range(11)]
    batch.insert(3, push("fid-bad-ttl-00001", ttl_s=-5))  # refused locally: not in any chunk

    outcomes = await sender.send(batch)

    assert chunks == [5, 5, 1]
    assert [o.disposition for o in outcomes] == ["sent"] * 3 + ["payload_error"] + ["sent"] * 8
    target_of = {received.name: received.target for received in fcm_sandbox.messages()}
    assert [target_of.get(o.message_name or "") for o in outcomes] == [
        m.target if m.ttl_s >= 0 else None for m in batch]


async def test_stalled_send_is_retried_and_the_resend_replaces_the_notification(
        sender: PushSender, fcm_sandbox: FcmSandbox) -> None:
    fcm_sandbox.fail_next(1, "stall", delay_s=1.5)  # longer than the 1 s FCM_TIMEOUT

    [first] = await sender.send([push("fid-stalled-00001")])

    assert (first.disposition, first.error_code) == ("retry", "DEADLINE_EXCEEDED")
    for _ in range(100):  # FCM took it after all; only the answer was lost
        if fcm_sandbox.messages("fid-stalled-00001"):
            break
        await asyncio.sleep(0.05)
    [second] = await sender.send([push("fid-stalled-00001")])
    assert second.disposition == "sent"
    assert len(fcm_sandbox.messages("fid-stalled-00001")) == 2
    assert [p.name for p in fcm_sandbox.device_view("fid-stalled-00001")] == [second.message_name]


async def test_untrusted_service_account_is_a_config_error(fcm_settings: Settings, fcm_sandbox: FcmSandbox,
                                                           tmp_path: Path) -> None:
    stranger = push_sender_for(Settings(data_dir=tmp_path, fcm_project_id=PROJECT,
                                        fcm_sandbox_port=fcm_settings.fcm_sandbox_port, fcm_timeout_s=1))
    requests_before = fcm_sandbox.send_requests
    try:
        outcomes = await stranger.send([push("fid-a-0000000001"), push("fid-b-0000000001")])
    finally:
        await stranger.close()

    assert [(o.disposition, o.error_code) for o in outcomes] == [("config_error", "UNAUTHENTICATED")] * 2
    assert fcm_sandbox.send_requests == requests_before  # no token, nothing sent


async def test_unreachable_token_endpoint_is_retried_later(tmp_path: Path) -> None:
    with FcmSandbox(project_id=PROJECT) as gone:
        port = gone.port
    offline = push_sender_for(Settings(data_dir=tmp_path, fcm_project_id=PROJECT, fcm_sandbox_port=port,
                                       fcm_timeout_s=1))
    try:
        outcomes = await offline.send([push()])
    finally:
        await offline.close()

    assert [(o.disposition, o.error_code) for o in outcomes] == [("retry", "UNAVAILABLE")]


async def test_close_is_idempotent_and_a_closed_sender_refuses_to_send(fcm_settings: Settings) -> None:
    closing = push_sender_for(fcm_settings)
    await closing.close()
    await closing.close()

    with pytest.raises(RuntimeError, match="closed"):
        await closing.send([push()])


async def test_empty_send_sends_nothing(sender: PushSender, fcm_sandbox: FcmSandbox) -> None:
    requests_before = fcm_sandbox.send_requests
    assert await sender.send([]) == []
    assert fcm_sandbox.send_requests == requests_before


def test_masked_target_keeps_only_the_ends() -> None:
    assert fcm.mask_target("cT9x-abcdefghijklmnopqrstuvwxyz:APA91b") == "cT9x…A91b(38)"
    assert fcm.mask_target("short") == "…(5)"
