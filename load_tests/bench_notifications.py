"""Notification delivery benchmark: how many messages a minute `lienthong dispatcher` processes deliver to the local
FCM and SMS sandboxes (through firebase-admin and the eSMS client, over HTTP), with 1 and then 2 dispatchers; and
what queuing a notice adds to a request's transaction.

    python -m load_tests.bench_notifications [--messages 3000] [--sms-share 0.25]

The sandboxes run in this process; each dispatcher is its own process, as in production. Quiet hours and the daily
cap are switched off for the run (they would hold messages back, which is their job, not a cost).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import time
from dataclasses import replace

from api import db
from load_tests.harness import Platform, platform
from notifications.fcm_sandbox import FcmSandbox, demo_service_account
from notifications.outbox import Notification, enqueue
from notifications.sms_sandbox import SmsSandbox

_SEED = """
WITH made AS (
  INSERT INTO accounts (role, phone, full_name)
  SELECT 'patient', '+8496' || lpad(g::text, 7, '0'), 'Bệnh nhân ' || g FROM generate_series(1, $1) g
  RETURNING id, phone)
INSERT INTO push_devices (account_id, target_kind, target, platform)
SELECT id, 'fid', 'fid-bench-' || phone, 'android' FROM made
"""

_QUEUE = """
INSERT INTO notification_outbox (idempotency_key, account_id, kind, category, channel, params, subject, max_attempts)
SELECT 'bench:' || $3 || ':' || row_number() OVER () || ':' || c.channel, a.id, 'prescription_issued', 'prescription',
       c.channel, '{"prescription_id": "p", "code": "79026abcdefgh-c", "doctor_name": "BS. Lan",
                    "valid_until": "05/01/2027"}'::jsonb, 'bench', 6
FROM (SELECT id, row_number() OVER (ORDER BY phone) AS n FROM accounts WHERE phone LIKE '+8496%') a
CROSS JOIN LATERAL (SELECT CASE WHEN a.n <= $2 THEN 'sms' ELSE 'push' END AS channel) c
WHERE a.n <= $1
"""


async def _seed(plat: Platform, accounts: int) -> None:
    pool = await db.create_pool(plat.target, plat.settings)
    try:
        await pool.execute(_SEED, accounts)
    finally:
        await pool.close()


async def _queue_and_wait(plat: Platform, messages: int, sms_count: int, round_name: str,
                          dispatchers: list[subprocess.Popen[bytes]] | None = None) -> float:
    pool = await db.create_pool(plat.target, plat.settings)
    try:
        await pool.execute("DELETE FROM notification_attempts")
        await pool.execute("DELETE FROM notification_outbox")
        started = time.perf_counter()
        await pool.execute(_QUEUE, messages, sms_count, round_name)
        await pool.execute("SELECT pg_notify('notification_outbox', '')")
        while True:
            left = await pool.fetchval("SELECT count(*) FROM notification_outbox WHERE status <> 'sent'")
            if left == 0:
                return time.perf_counter() - started
            if dispatchers and any(p.poll() is not None for p in dispatchers):
                raise RuntimeError("a dispatcher exited")
            await asyncio.sleep(0.05)
    finally:
        await pool.close()


def _start_dispatchers(env: dict[str, str], count: int) -> list[subprocess.Popen[bytes]]:
    return [subprocess.Popen([sys.executable, "-m", "api.cli", "dispatcher"], env=env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for _ in range(count)]


def _stop(processes: list[subprocess.Popen[bytes]]) -> None:
    for p in processes:
        p.terminate()
    for p in processes:
        try:
            p.wait(15)
        except subprocess.TimeoutExpired:
            p.kill()


async def _enqueue_cost(plat: Platform, rounds: int) -> tuple[float, float]:
    """Median transaction time (ms) of a small write alone and of the same write plus one enqueue()."""
    pool = await db.create_pool(plat.target, plat.settings)
    try:
        account_id = await pool.fetchval("SELECT id FROM accounts WHERE phone LIKE '+8496%' LIMIT 1")
        timings: dict[bool, list[float]] = {False: [], True: []}
        for i in range(rounds):
            with_notice = i % 2 == 1
            async with pool.acquire() as conn:
                started = time.perf_counter()
                async with conn.transaction():
                    await conn.execute("UPDATE accounts SET failed_logins = 0 WHERE id = $1", account_id)
                    if with_notice:
                        await enqueue(conn, Notification(
                            account_id=account_id, kind="payment_confirmed", category="payment", subject="bench",
                            idempotency_key=f"bench-enqueue:{i}", params={"payment_id": "x", "amount": "1 ₫",
                                                                           "purpose": "p", "amount_plain": "1"}),
                            plat.settings)
                timings[with_notice].append((time.perf_counter() - started) * 1000)
        return statistics.median(timings[False]), statistics.median(timings[True])
    finally:
        await pool.close()


def _dispatcher_cpu(processes: list[subprocess.Popen[bytes]]) -> float:
    total = 0.0
    for p in processes:
        try:
            with open(f"/proc/{p.pid}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except OSError:
            pass
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=3000)
    parser.add_argument("--sms-share", type=float, default=0.25, help="share of the messages sent by SMS")
    parser.add_argument("--enqueue-rounds", type=int, default=2000)
    args = parser.parse_args()
    sms_count = int(args.messages * args.sms_share)

    with platform() as plat, SmsSandbox() as sms, FcmSandbox(project_id=plat.settings.fcm_project_id) as fcm:
        settings = replace(plat.settings, fcm_sandbox_port=fcm.port)
        fcm.trust_service_account(demo_service_account(settings))
        asyncio.run(_seed(plat, args.messages))
        env = {**plat.env, "SMS_GATEWAY_URL": sms.base_url, "FCM_SANDBOX_PORT": str(fcm.port),
               "LIENTHONG_QUIET_START_HOUR": "0", "LIENTHONG_QUIET_END_HOUR": "0",
               "LIENTHONG_NOTIFICATION_DAILY_CAP": "1000000"}
        print(f"{args.messages} messages per round ({args.messages - sms_count} push, {sms_count} SMS)")
        for count in (1, 2):
            sms.clear()
            fcm.clear()
            processes = _start_dispatchers(env, count)
            try:
                time.sleep(3)  # imports and the first OAuth token, outside the measured window
                cpu_before = _dispatcher_cpu(processes)
                wall = asyncio.run(_queue_and_wait(plat, args.messages, sms_count, f"r{count}", processes))
                cpu = _dispatcher_cpu(processes) - cpu_before
            finally:
                _stop(processes)
            delivered = (len(sms.messages()), len(fcm.messages()))
            assert delivered == (sms_count, args.messages - sms_count), delivered
            print(f"{count} dispatcher(s): {args.messages / wall * 60:,.0f} messages/min "
                  f"({wall:.1f} s for the round; dispatcher CPU {cpu / args.messages * 1000:.2f} ms per message)")
        plain, with_notice = asyncio.run(_enqueue_cost(plat, args.enqueue_rounds))
        print(f"enqueue inside a transaction: median {plain:.2f} ms without, {with_notice:.2f} ms with one notice "
              f"(+{with_notice - plain:.2f} ms, ×{with_notice / plain:.2f})")


if __name__ == "__main__":
    main()
