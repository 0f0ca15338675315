"""Background work that runs beside the API (in ``lienthong serve``) or alone (``lienthong worker``).

Each job is an async function run periodically; every job must be safe to run in several processes at once.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

import asyncpg

from api.settings import Settings
from consultations import service as consultations_service
from eprescription import national_sync
from eprescription import service as eprescription_service
from notifications.vaccination_reminders import schedule_vaccination_reminders
from payments import reconcile
from payments.service import vnpay_config
from payments.vnpay import VnpayClient
from pharmacy_link import national_report

log = logging.getLogger("lienthong.worker")

Job = Callable[[asyncpg.Pool, Settings], Awaitable[None]]


async def purge_expired_credentials(pool: asyncpg.Pool, settings: Settings) -> None:
    """Drop dead OTP challenges (kept one day for throttling and forensics), long-dead refresh tokens and ended
    rate-limit windows (api/ratelimit.py)."""
    await pool.execute("DELETE FROM otp_challenges WHERE created_at < now() - interval '1 day'")
    await pool.execute("DELETE FROM refresh_tokens WHERE expires_at < now() - interval '7 days'")
    await pool.execute("DELETE FROM rate_limit_windows WHERE expires_at < now()")


async def settle_no_shows(pool: asyncpg.Pool, settings: Settings) -> None:
    await consultations_service.settle_no_shows(pool, settings)


async def expire_prescriptions(pool: asyncpg.Pool, settings: Settings) -> None:
    await eprescription_service.expire_prescriptions(pool, settings)


async def vaccination_reminders(pool: asyncpg.Pool, settings: Settings) -> None:
    """Spec §2.2: today's D-7/D-1/D0 reminders and D+7/D+30 recalls. Hourly rather than daily, so a process started
    at any time of day catches up; each reminder's idempotency key makes every run after the first add nothing."""
    created = await schedule_vaccination_reminders(pool, settings)
    if created:
        log.info("vaccination reminders queued", extra={"rows": created})


async def reconcile_payments(pool: asyncpg.Pool, settings: Settings) -> None:
    """VNPay (spec §6.3): settle attempts past expiry + grace with querydr, send and follow refunds, then release
    bookings left unpaid (only once no attempt of theirs is open)."""
    client = VnpayClient(vnpay_config(settings))
    try:
        await reconcile.settle_overdue(pool, settings, client)
        await reconcile.process_refunds(pool, settings, client)
    finally:
        client.close()
    await consultations_service.release_unpaid(pool, settings)


NATIONAL_BATCH = 20


async def send_national_prescriptions(pool: asyncpg.Pool, settings: Settings) -> None:
    """API-R2/R3: signed prescriptions go to the national system soon after signing. A full batch means more are
    due, so the job keeps going rather than letting a burst wait one period per batch."""
    while await national_sync.send_due(pool, settings, limit=NATIONAL_BATCH) == NATIONAL_BATCH:
        pass


async def report_national_sales(pool: asyncpg.Pool, settings: Settings) -> None:
    """PH-3: each sale goes to the national system right after it is made (API-7); batches as above."""
    while await national_report.send_due_sales(pool, settings, limit=NATIONAL_BATCH) == NATIONAL_BATCH:
        pass


JOBS: tuple[tuple[str, float, Job], ...] = (
    ("purge_expired_credentials", 3600.0, purge_expired_credentials),
    ("settle_no_shows", 60.0, settle_no_shows),
    ("send_national_prescriptions", 5.0, send_national_prescriptions),
    ("report_national_sales", 5.0, report_national_sales),
    ("expire_prescriptions", 60.0, expire_prescriptions),
    ("vaccination_reminders", 3600.0, vaccination_reminders),
    ("reconcile_payments", 30.0, reconcile_payments),
)


async def _every(name: str, period_s: float, job: Job, pool: asyncpg.Pool, settings: Settings) -> None:
    while True:
        try:
            await job(pool, settings)
        except (asyncpg.PostgresError, OSError, asyncpg.InterfaceError, asyncpg.InternalClientError) as exc:
            # the database may be restarting (a connection it closed can surface as InternalClientError, see
            # api.errors); the next period tries again
            log.warning("job failed", extra={"job": name, "error": type(exc).__name__})
        except Exception:
            # a bug in one job must not end every other job of the process (they share a TaskGroup): log, go on
            log.exception("job crashed", extra={"job": name})
        await asyncio.sleep(period_s)


async def run_worker(pool: asyncpg.Pool, settings: Settings) -> None:
    """Run every job until cancelled."""
    async with asyncio.TaskGroup() as group:
        for name, period_s, job in JOBS:
            group.create_task(_every(name, period_s, job, pool, settings), name=name)
