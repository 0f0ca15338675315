"""Limits on failed attempts where guessing is the attack: staff sign-in and SMS-code checks per client address, and
prescription look-ups at the pharmacy per pharmacist account.

Every API process shares the counters: one row per identity in ``rate_limit_windows`` (migration 0014), a fixed
window that opens with the first failure; one statement reads it, one statement counts a failure. Identities are
stored only as an HMAC keyed with ``LIENTHONG_OTP_PEPPER``, never as an address or a number in clear. The failure
that exhausts a window is audited (``security.rate_limit.locked``); until the window ends the identity gets 429
``rate-limited`` with ``Retry-After``, and nobody else is affected. A request whose client address is unknown (a
unix socket without a proxy header) is not limited by address: it would share one window with every other.

These limits come on top of the older ones they complement: the per-account staff lockout, the per-code OTP
attempts, the per-number and per-address OTP send limits (api/auth) and the failed API-key exchange limit
(pharmacy_link/api_keys.py).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

import asyncpg

from api import audit
from api.audit import AuditContext
from api.auth.secrets_box import keyed_hash
from api.db import Conn
from api.errors import TooManyRequests
from api.settings import Settings

T = TypeVar("T")


@dataclass(frozen=True)
class Limit:
    name: str  # stable: part of the hashed key and of the audit row
    attempts: str  # what is counted, for the refusal's wording
    max_failures: int
    window_s: int


def login_by_address(settings: Settings) -> Limit:
    return Limit("login-by-address", "failed sign-ins from this network", settings.login_failures_per_ip,
                 settings.failure_window_s)


def otp_verify_by_address(settings: Settings) -> Limit:
    return Limit("otp-verify-by-address", "wrong SMS codes from this network", settings.otp_verify_failures_per_ip,
                 settings.failure_window_s)


def rx_verify_by_account(settings: Settings) -> Limit:
    return Limit("rx-verify-by-account", "look-ups of unknown prescription codes from this account",
                 settings.rx_verify_failures_per_account, settings.failure_window_s)


def _key(settings: Settings, limit: Limit, identity: str) -> bytes:
    return keyed_hash(settings.otp_pepper, "rate-limit", limit.name, identity)


def _refusal(limit: Limit, retry_after_s: int) -> TooManyRequests:
    return TooManyRequests(f"Too many {limit.attempts}; try again in {max(1, retry_after_s)} s.", retry_after_s)


async def refuse_if_exhausted(conn: Conn, settings: Settings, limit: Limit, identity: str) -> None:
    row = await conn.fetchrow(
        """SELECT hits, ceil(extract(epoch FROM expires_at - now()))::int AS retry_after_s
           FROM rate_limit_windows WHERE key = $1 AND expires_at > now()""", _key(settings, limit, identity))
    if row is not None and row["hits"] >= limit.max_failures:
        raise _refusal(limit, row["retry_after_s"])


async def count_failure(conn: Conn, settings: Settings, limit: Limit, identity: str,
                        ctx: AuditContext) -> tuple[int, int]:
    """Count one failure in the identity's window (a new window when the last one ended); audit the one that
    exhausts it. Returns the failures in the window so far and the seconds until it ends."""
    row = await conn.fetchrow(
        """INSERT INTO rate_limit_windows AS w (key, hits, expires_at)
           VALUES ($1, 1, now() + make_interval(secs => $2))
           ON CONFLICT (key) DO UPDATE SET
             hits = CASE WHEN w.expires_at > now() THEN w.hits + 1 ELSE 1 END,
             expires_at = CASE WHEN w.expires_at > now() THEN w.expires_at ELSE EXCLUDED.expires_at END
           RETURNING hits, ceil(extract(epoch FROM expires_at - now()))::int AS retry_after_s""",
        _key(settings, limit, identity), limit.window_s)
    assert row is not None
    if row["hits"] == limit.max_failures:
        await audit.record(conn, ctx, "security.rate_limit.locked", target_type="rate_limit", target_id=limit.name,
                           details={"max_failures": limit.max_failures, "window_s": limit.window_s})
    return row["hits"], max(1, row["retry_after_s"])


async def limited(pool: asyncpg.Pool, settings: Settings, limit: Limit, identity: str | None, ctx: AuditContext,
                  attempt: Callable[[], Awaitable[T]], failures: tuple[type[Exception], ...]) -> T:
    """Run ``attempt`` unless ``identity`` has used up its failures; count it when it raises one of ``failures``
    (the caller still gets that error: the refusals start with the next attempt)."""
    if identity is None:
        return await attempt()
    async with pool.acquire() as conn:
        await refuse_if_exhausted(conn, settings, limit, identity)
    try:
        return await attempt()
    except failures:
        async with pool.acquire() as conn, conn.transaction():
            await count_failure(conn, settings, limit, identity, ctx)
        raise


# Identities this process saw exhausted, with the monotonic time their window ends (see ``limited_on_failure``).
_EXHAUSTED: dict[bytes, float] = {}
_EXHAUSTED_MAX = 10_000


async def limited_on_failure(pool: asyncpg.Pool, settings: Settings, limit: Limit, identity: str, ctx: AuditContext,
                             attempt: Callable[[], Awaitable[T]], failures: tuple[type[Exception], ...]) -> T:
    """``limited`` for a hot path that must stay one database round trip when it succeeds (pharmacy verify).

    Failures are counted in the shared table as above, and the failure that exhausts the window, in any process, is
    audited. The check before each attempt looks only at the identities this process has seen exhausted: a process
    learns it at the identity's next failure it serves (a guesser's attempts nearly all fail), refuses that one, and
    from then on refuses every attempt, successful or not, until the window ends.
    """
    if _EXHAUSTED:  # the HMAC is computed only when some identity is locked out here, not on every success
        key = _key(settings, limit, identity)
        until = _EXHAUSTED.get(key)
        if until is not None:
            left = until - time.monotonic()
            if left > 0:
                raise _refusal(limit, int(left) + 1)
            del _EXHAUSTED[key]
    try:
        return await attempt()
    except failures:
        async with pool.acquire() as conn, conn.transaction():
            hits, retry_after_s = await count_failure(conn, settings, limit, identity, ctx)
        if hits >= limit.max_failures:
            key = _key(settings, limit, identity)
            if len(_EXHAUSTED) >= _EXHAUSTED_MAX:
                _EXHAUSTED.pop(next(iter(_EXHAUSTED)))  # the oldest entry
            _EXHAUSTED[key] = time.monotonic() + retry_after_s
            if hits > limit.max_failures:  # this attempt came after the window was used up elsewhere
                raise _refusal(limit, retry_after_s) from None
        raise
