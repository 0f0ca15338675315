"""Delivers the outbox: claim a batch, send it by push or SMS outside any transaction, record each outcome.

Several dispatchers may run at once (``lienthong serve`` runs one, ``lienthong dispatcher`` more): a batch is
claimed with ``FOR UPDATE SKIP LOCKED`` and leased for ``LIENTHONG_NOTIFICATION_LEASE`` seconds. A dispatcher that
dies mid-batch leaves its rows ``sending``; when the lease runs out another one takes them over and sends again.

That resend is where duplicates could come from, so each channel carries the row's identity:
* SMS: the outbox row id is eSMS's ``RequestId``; the gateway answers a repeat with code 124 and does not deliver
  it a second time.
* Push: FCM has no idempotency key. The message's collapse key, Android notification tag and apns-collapse-id are
  the row's subject, so a resend replaces the notification on the phone instead of stacking a second one, and the
  app sees the same ``notification_id`` in the data. On the wire a resend is a second request; the phone shows one.

Outcomes are written only while the lease is still ours (same ``attempts`` as claimed, still ``sending``): a slow
dispatcher whose lease expired cannot overwrite the result of the one that took over.

Per row, at claim time (preferences and devices may have changed since it was queued): expired rows are dropped,
opted-out rows cancelled, reminders deferred out of quiet hours and past the daily cap, pushes to an account with
no device turned into an SMS when the kind has one. Retryable failures back off exponentially with full jitter
(floor: the provider's Retry-After); after ``max_attempts`` the row is dead and listed for administrators.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import random
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from typing import Any
from uuid import UUID

import asyncpg
import msgspec

from api.settings import Settings
from notifications import devices as device_registry
from notifications.fcm import PushMessage, PushOutcome, PushSender
from notifications.outbox import VIETNAM, WAKE_CHANNEL, next_send_time
from notifications.sms import SmsError, SmsGateway, SmsRejected
from notifications.templates import (
    REMINDER_KINDS,
    VACCINATION_SMS_KINDS,
    UnknownTemplate,
    has_sms,
    is_reminder,
    render_push,
    render_sms,
    template,
)

log = logging.getLogger("lienthong.notifications")

BACKOFF_BASE_S = 30.0
BACKOFF_CAP_S = 3600.0
SMS_CONCURRENCY = 8  # requests is blocking: this many sends at once, each in a worker thread
POLL_S = 1.0  # NOTIFY wakes us at once; polling catches retries and deferred rows coming due
FALLBACK_SWEEP_S = 60.0
MAX_ERROR_CHARS = 500

_CLAIM = """
WITH next AS (
  SELECT id FROM notification_outbox
  WHERE (status IN ('pending', 'retry') AND available_at <= now())
     OR (status = 'sending' AND locked_until < now())
  ORDER BY available_at
  LIMIT $1
  FOR UPDATE SKIP LOCKED),
claimed AS (
  UPDATE notification_outbox o
  SET status = 'sending', attempts = o.attempts + 1, locked_until = now() + make_interval(secs => $2),
      updated_at = now()
  FROM next WHERE o.id = next.id
  RETURNING o.id, o.account_id, o.kind, o.category, o.channel, o.params, o.subject, o.attempts, o.max_attempts,
            o.expires_at, o.idempotency_key)
SELECT c.*, a.phone,
       coalesce((SELECT p.enabled FROM notification_preferences p
                 WHERE p.account_id = c.account_id AND p.category = c.category AND p.channel = c.channel), true)
         AS enabled,
       (SELECT count(*) FROM notification_outbox s
        WHERE s.account_id = c.account_id AND s.status = 'sent' AND s.sent_at >= $3
          AND s.kind = ANY($4::text[])) AS sent_today
FROM claimed c JOIN accounts a ON a.id = c.account_id
"""

# Only while the lease is still ours: same attempt number, still sending.
_FINISH = """
UPDATE notification_outbox o
SET status = u.status, available_at = coalesce(u.available_at, o.available_at),
    attempts = CASE WHEN u.status = 'pending' THEN o.attempts - 1 ELSE o.attempts END,
    last_error = coalesce(u.error, o.last_error), provider_ref = coalesce(u.provider_ref, o.provider_ref),
    sent_at = CASE WHEN u.status = 'sent' THEN now() END, locked_until = NULL, updated_at = now()
FROM unnest($1::uuid[], $2::int[], $3::text[], $4::timestamptz[], $5::text[], $6::text[])
  AS u(id, attempts, status, available_at, error, provider_ref)
WHERE o.id = u.id AND o.status = 'sending' AND o.attempts = u.attempts
RETURNING o.id
"""

_LOG_ATTEMPTS = """
INSERT INTO notification_attempts (outbox_id, attempt, outcome, error, provider_ref)
SELECT * FROM unnest($1::uuid[], $2::int[], $3::text[], $4::text[], $5::text[])
"""

# The SMS standing in for a push: same notice, same expiry. Its key is the push's with ':sms' for ':push', so when the
# notice was queued for SMS as well (a D-1 reminder) the key conflicts and nothing is added.
_FALLBACK_SMS_OF = """
INSERT INTO notification_outbox (idempotency_key, account_id, kind, category, channel, params, subject,
                                 available_at, expires_at, max_attempts, fallback_for)
SELECT left(p.idempotency_key, length(p.idempotency_key) - length(':push')) || ':sms', p.account_id, p.kind,
       p.category, 'sms', p.params, p.subject, now(), p.expires_at, p.max_attempts, p.id
FROM notification_outbox p
WHERE p.idempotency_key LIKE '%:push' AND """

_FALLBACK_SMS = _FALLBACK_SMS_OF + "p.id = ANY($1::uuid[]) ON CONFLICT DO NOTHING"

# Vaccination pushes nobody opened within the fallback window.
_UNOPENED_FALLBACK = _FALLBACK_SMS_OF + """
  p.status = 'sent' AND p.channel = 'push' AND p.category = 'vaccination' AND p.opened_at IS NULL
  AND p.sent_at < now() - make_interval(mins => $1) AND p.sent_at > now() - interval '3 days'
  AND (p.expires_at IS NULL OR p.expires_at > now()) AND p.kind = ANY($2::text[])
ON CONFLICT DO NOTHING
"""


class _Claimed(msgspec.Struct, frozen=True):
    id: UUID
    account_id: UUID
    kind: str
    category: str
    channel: str
    params: dict[str, Any]
    subject: str
    attempts: int
    max_attempts: int
    expires_at: datetime | None
    idempotency_key: str
    phone: str | None
    enabled: bool
    sent_today: int


@dataclass(slots=True)
class _Outcome:
    row: _Claimed
    status: str  # sent | retry | failed | dead | cancelled | expired | pending (deferred, attempt not counted)
    log_as: str
    error: str | None = None
    provider_ref: str | None = None
    available_at: datetime | None = None
    fallback_sms: bool = False


@dataclass(slots=True)
class BatchStats:
    claimed: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)


def _collapse_key(subject: str) -> str:
    # FCM collapse keys and APNs collapse ids are short (APNs: 64 bytes); the subject may not be.
    return hashlib.sha256(subject.encode()).hexdigest()[:32]


def _vietnam_midnight(now: datetime) -> datetime:
    return datetime.combine(now.astimezone(VIETNAM).date(), time(0), VIETNAM).astimezone(UTC)


class Dispatcher:
    def __init__(self, pool: asyncpg.Pool, settings: Settings, push: PushSender, sms: SmsGateway,
                 *, clock: Callable[[], datetime] | None = None, rng: random.Random | None = None) -> None:
        self._pool = pool
        self._settings = settings
        self._push = push
        self._sms = sms
        self._clock = clock or (lambda: datetime.now(UTC))
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not security
        self._sms_slots = asyncio.Semaphore(SMS_CONCURRENCY)

    # ---- one batch -------------------------------------------------------------------------------------------

    async def dispatch_once(self) -> BatchStats:
        """Claim up to one batch, send it, record the outcomes; return what happened."""
        settings = self._settings
        now = self._clock()
        async with self._pool.acquire() as conn, conn.transaction():
            records = await conn.fetch(_CLAIM, settings.notification_batch, float(settings.notification_lease_s),
                                       _vietnam_midnight(now), list(REMINDER_KINDS))
        rows = [msgspec.convert(dict(r), _Claimed) for r in records]
        stats = BatchStats(claimed=len(rows))
        if not rows:
            return stats

        outcomes: list[_Outcome] = []
        push_rows: list[_Claimed] = []
        sms_rows: list[_Claimed] = []
        sent_today: dict[UUID, int] = {}
        for row in rows:
            verdict = self._screen(row, now, sent_today)
            if verdict is not None:
                outcomes.append(verdict)
            elif row.channel == "push":
                push_rows.append(row)
            else:
                sms_rows.append(row)

        gone: list[tuple[tuple[str, str], str]] = []  # (target kind, target), FCM's error code
        if push_rows:
            outcomes.extend(await self._send_pushes(push_rows, now, gone))
        if sms_rows:
            outcomes.extend(await asyncio.gather(*(self._send_sms(row, now) for row in sms_rows)))

        await self._record(outcomes, gone)
        for outcome in outcomes:
            stats.outcomes[outcome.log_as] = stats.outcomes.get(outcome.log_as, 0) + 1
        return stats

    def _screen(self, row: _Claimed, now: datetime, sent_today: dict[UUID, int]) -> _Outcome | None:
        """Decide what happens to a row before any sending: None means send it now."""
        settings = self._settings
        if row.expires_at is not None and row.expires_at <= now:
            return _Outcome(row, "expired", "expired", error="expired before it could be sent")
        if not row.enabled:
            return _Outcome(row, "cancelled", "cancelled", error=f"{row.category} {row.channel} turned off by user")
        try:
            template(row.kind)
        except UnknownTemplate as exc:
            return _Outcome(row, "dead", "dead", error=str(exc))
        when = next_send_time(now, row.kind, settings)
        if when > now:
            return _Outcome(row, "pending", "deferred", error="quiet hours", available_at=when)
        if is_reminder(row.kind):
            count = sent_today.get(row.account_id, row.sent_today)
            if count >= settings.notification_daily_cap:
                tomorrow = _vietnam_midnight(now) + timedelta(days=1)
                return _Outcome(row, "pending", "deferred", error="daily cap reached",
                                available_at=next_send_time(tomorrow, row.kind, settings))
            sent_today[row.account_id] = count + 1
        return None

    def _retry(self, row: _Claimed, now: datetime, error: str, retry_after_s: float | None = None) -> _Outcome:
        if row.attempts >= row.max_attempts:
            return _Outcome(row, "dead", "dead", error=error)
        # full jitter (AWS "Exponential Backoff and Jitter"), never sooner than the provider asked
        delay = self._rng.uniform(0, min(BACKOFF_CAP_S, BACKOFF_BASE_S * 2 ** (row.attempts - 1)))
        delay = max(delay, retry_after_s or 0.0)
        return _Outcome(row, "retry", "retry", error=error, available_at=now + timedelta(seconds=delay))

    def _no_push_target(self, row: _Claimed, reason: str) -> _Outcome:
        if has_sms(row.kind):
            return _Outcome(row, "failed", "fallback", error=f"{reason}; sent by SMS instead", fallback_sms=True)
        return _Outcome(row, "failed", "failed", error=reason)

    async def _send_pushes(self, rows: list[_Claimed], now: datetime,
                          gone: list[tuple[tuple[str, str], str]]) -> list[_Outcome]:
        async with self._pool.acquire() as conn:
            by_account = await device_registry.active_devices(conn, list({row.account_id for row in rows}))
        outcomes: list[_Outcome] = []
        messages: list[PushMessage] = []
        owners: list[tuple[_Claimed, tuple[str, str]]] = []
        for row in rows:
            targets = by_account.get(row.account_id, [])
            if not targets:
                outcomes.append(self._no_push_target(row, "no active device"))
                continue
            try:
                title, body, link = render_push(row.kind, row.params)
            except (KeyError, ValueError) as exc:
                outcomes.append(_Outcome(row, "dead", "dead", error=f"template {row.kind}: missing {exc}"))
                continue
            spec = template(row.kind)
            ttl = spec.ttl_s
            if row.expires_at is not None:
                ttl = max(0, min(ttl, int((row.expires_at - now).total_seconds())))
            for device in targets:
                messages.append(PushMessage(
                    target_kind=device.target_kind, target=device.target, platform=device.platform,
                    title=title, body=body,
                    data={"notification_id": str(row.id), "kind": row.kind, "link": link},
                    collapse_key=_collapse_key(row.subject), ttl_s=ttl,
                    priority=spec.priority))  # type: ignore[arg-type]
                owners.append((row, (device.target_kind, device.target)))
        if not messages:
            return outcomes
        try:
            results = await self._push.send(messages)
        except Exception as exc:  # an SDK bug or an outage we did not foresee: every row retries
            log.exception("push batch failed")
            results = [PushOutcome(disposition="retry", error_code=type(exc).__name__)] * len(messages)

        per_row: dict[UUID, list[tuple[PushOutcome, tuple[str, str]]]] = defaultdict(list)
        row_of: dict[UUID, _Claimed] = {}
        for (row, target), result in zip(owners, results, strict=True):
            per_row[row.id].append((result, target))
            row_of[row.id] = row
        for row_id, results_of_row in per_row.items():
            row = row_of[row_id]
            sent = [r.message_name for r, _ in results_of_row if r.disposition == "sent"]
            gone.extend((target, r.error_code or "target gone") for r, target in results_of_row
                        if r.disposition == "target_gone")
            errors = sorted({r.error_code or r.disposition for r, _ in results_of_row if r.disposition != "sent"})
            error = ", ".join(errors) or None
            if sent:
                outcomes.append(_Outcome(row, "sent", "sent", error=error,
                                         provider_ref=" ".join(name for name in sent if name)))
            elif any(r.disposition == "retry" for r, _ in results_of_row):
                retry_after = max((r.retry_after_s or 0.0 for r, _ in results_of_row), default=0.0)
                outcomes.append(self._retry(row, now, error or "retry", retry_after))
            elif all(r.disposition == "target_gone" for r, _ in results_of_row):
                outcomes.append(self._no_push_target(row, f"every device is gone ({error})"))
            else:  # payload_error / config_error: sending again will not help until someone fixes something
                log.error("push not deliverable", extra={"notification_id": str(row.id), "error": error})
                outcomes.append(_Outcome(row, "dead", "dead", error=error))
        return outcomes

    async def _send_sms(self, row: _Claimed, now: datetime) -> _Outcome:
        if row.phone is None:
            return _Outcome(row, "failed", "failed", error="account has no phone number")
        try:
            text = render_sms(row.kind, row.params)
        except (KeyError, ValueError) as exc:
            return _Outcome(row, "dead", "dead", error=f"template {row.kind}: {exc}")
        async with self._sms_slots:
            try:
                # the row id is eSMS's RequestId: a resend after a lost answer is not delivered twice
                receipt = await asyncio.to_thread(self._sms.send, row.phone, text, str(row.id))
            except SmsRejected as exc:
                return _Outcome(row, "failed", "failed", error=str(exc)[:MAX_ERROR_CHARS])
            except SmsError as exc:
                return self._retry(row, now, str(exc)[:MAX_ERROR_CHARS])
        return _Outcome(row, "sent", "sent", provider_ref=receipt.provider_ref)

    async def _record(self, outcomes: list[_Outcome], gone: list[tuple[tuple[str, str], str]]) -> None:
        async with self._pool.acquire() as conn, conn.transaction():
            finished = await conn.fetch(
                _FINISH,
                [o.row.id for o in outcomes], [o.row.attempts for o in outcomes], [o.status for o in outcomes],
                [o.available_at for o in outcomes], [o.error for o in outcomes], [o.provider_ref for o in outcomes])
            ours = {r["id"] for r in finished}
            kept = [o for o in outcomes if o.row.id in ours]
            if len(kept) < len(outcomes):
                log.warning("lease lost before outcomes were recorded", extra={"rows": len(outcomes) - len(kept)})
            await conn.execute(
                _LOG_ATTEMPTS, [o.row.id for o in kept], [o.row.attempts for o in kept], [o.log_as for o in kept],
                [o.error for o in kept], [o.provider_ref for o in kept])
            fallbacks = [o.row.id for o in kept if o.fallback_sms]
            if fallbacks:
                await conn.execute(_FALLBACK_SMS, fallbacks)
                await conn.execute("SELECT pg_notify($1, '')", WAKE_CHANNEL)
            for code in sorted({code for _, code in gone}):
                await device_registry.disable_targets(conn, [t for t, c in gone if c == code], f"FCM: {code}")

    async def enqueue_unopened_fallbacks(self) -> int:
        """SMS for vaccination pushes not opened within ``LIENTHONG_PUSH_FALLBACK_MINUTES``."""
        status = await self._pool.execute(_UNOPENED_FALLBACK, self._settings.push_fallback_minutes,
                                          list(VACCINATION_SMS_KINDS))
        added = int(status.rsplit(" ", 1)[-1])
        if added:
            await self._pool.execute("SELECT pg_notify($1, '')", WAKE_CHANNEL)
        return added

    # ---- the loop --------------------------------------------------------------------------------------------

    async def run(self) -> None:
        """Dispatch until cancelled: at once when NOTIFY says rows were queued, else every POLL_S."""
        wake = asyncio.Event()

        def on_notify(*_: object) -> None:
            wake.set()

        listener: Any = None
        loop = asyncio.get_running_loop()
        next_sweep = loop.time()
        try:
            while True:
                try:
                    if listener is None or listener.is_closed():
                        listener = await self._pool.acquire()
                        await listener.add_listener(WAKE_CHANNEL, on_notify)
                    wake.clear()
                    stats = await self.dispatch_once()
                    if loop.time() >= next_sweep:
                        await self.enqueue_unopened_fallbacks()
                        next_sweep = loop.time() + FALLBACK_SWEEP_S
                    if stats.claimed >= self._settings.notification_batch:
                        continue  # more are due: no waiting between full batches
                # InternalClientError: a pooled connection PostgreSQL told it was shutting down, before asyncpg
                # noticed the socket close (seen in tests/reliability/test_faults_postgres.py)
                except (asyncpg.PostgresError, OSError, asyncpg.InterfaceError, asyncpg.InternalClientError) as exc:
                    log.warning("dispatcher: database unavailable", extra={"error": type(exc).__name__})
                    if listener is not None:
                        with contextlib.suppress(Exception):
                            await listener.remove_listener(WAKE_CHANNEL, on_notify)
                        with contextlib.suppress(Exception):
                            await self._pool.release(listener)
                        listener = None
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(wake.wait(), POLL_S)
        finally:
            if listener is not None:
                with contextlib.suppress(Exception):
                    await listener.remove_listener(WAKE_CHANNEL, on_notify)  # UNLISTEN on the server too
                await self._pool.release(listener)
