"""Booking benchmark: throughput and p99 of booking distinct slots at a fixed concurrency, the double-booking
race (N simultaneous requests for one slot), and a /health/live baseline from the same run for ratios.

    python -m load_tests.bench_booking [--patients 400] [--concurrency 32] [--race 50]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import time
from typing import Any

import httpx

from api import db
from api.auth.principal import Principal, issue_access_token
from load_tests.harness import Platform, api_server, describe, platform


async def _make_patients(plat: Platform, count: int) -> list[str]:
    pool = await db.create_pool(plat.target, plat.settings)
    tokens = []
    try:
        async with pool.acquire() as conn, conn.transaction():
            for i in range(count):
                account_id = await conn.fetchval(
                    "INSERT INTO accounts (role, phone, full_name) VALUES ('patient', $1, $2) RETURNING id",
                    f"+8496{i:07d}", f"Bench {i}")
                patient_id = await conn.fetchval(
                    "INSERT INTO patients (account_id, full_name) VALUES ($1, $2) RETURNING id", account_id, f"B{i}")
                await conn.execute(
                    """INSERT INTO consents (patient_id, kind, version, granted, recorded_by)
                       SELECT $1, kind, version, true, $2 FROM consent_documents""", patient_id, account_id)
                principal = Principal(account_id=account_id, role="patient", patient_id=patient_id)
                tokens.append(issue_access_token(principal, plat.settings, ttl_s=3600))
    finally:
        await pool.close()
    return tokens


async def _run(base_url: str, calls: list[tuple[str, str, dict[str, Any] | None, dict[str, str]]],
               concurrency: int) -> tuple[list[float], float, dict[int, int]]:
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    queue: asyncio.Queue[tuple[str, str, dict[str, Any] | None, dict[str, str]]] = asyncio.Queue()
    for call in calls:
        queue.put_nowait(call)
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=base_url, limits=limits, timeout=30) as http:
        async def worker() -> None:
            while not queue.empty():
                method, path, body, headers = queue.get_nowait()
                started = time.perf_counter()
                response = await http.request(method, path, json=body, headers=headers)
                latencies.append(time.perf_counter() - started)
                statuses[response.status_code] = statuses.get(response.status_code, 0) + 1

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        wall = time.perf_counter() - started
    return latencies, wall, statuses


async def bench(base_url: str, tokens: list[str], concurrency: int, race: int) -> None:
    async with httpx.AsyncClient(base_url=base_url, timeout=30) as http:
        doctors = (await http.get("/doctors")).json()["items"]
        free = []
        for doctor in doctors:
            slots = (await http.get(f"/doctors/{doctor['id']}/slots", params={"days": 14})).json()
            free += [(doctor["id"], s["starts_at"]) for s in slots]
    random.Random(7).shuffle(free)
    race_slot, free = free[0], free[1:]

    ping_calls = [("GET", "/health/live", None, {})] * 4000
    lat, wall, statuses = await _run(base_url, ping_calls, concurrency)
    ping = describe(f"baseline GET /health/live c={concurrency}", lat, wall, statuses.get(200, 0))

    booking_tokens = tokens[race:]
    n = min(len(booking_tokens), len(free))
    calls = [("POST", "/consultations", {"doctor_id": d, "starts_at": s, "reason": "Benchmark"},
              {"Authorization": f"Bearer {t}"}) for (d, s), t in zip(free[:n], booking_tokens[:n], strict=True)]
    lat, wall, statuses = await _run(base_url, calls, concurrency)
    booking = describe(f"POST /consultations c={concurrency}", lat, wall, statuses.get(201, 0))
    print(f"  statuses {dict(sorted(statuses.items()))}; booking/ping throughput ratio "
          f"{booking['req_per_s'] / ping['req_per_s']:.2f}")

    race_calls = [("POST", "/consultations", {"doctor_id": race_slot[0], "starts_at": race_slot[1], "reason": "Race"},
                   {"Authorization": f"Bearer {t}"}) for t in tokens[:race]]
    lat, wall, statuses = await _run(base_url, race_calls, race)
    others = sum(statuses.values()) - statuses.get(201, 0) - statuses.get(409, 0)
    print(f"double-booking race: {race} simultaneous requests for one slot -> "
          f"{statuses.get(201, 0)} x 201, {statuses.get(409, 0)} x 409, others {others}; "
          f"slowest {max(lat) * 1000:.1f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--patients", type=int, default=400)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--race", type=int, default=50)
    args = parser.parse_args()
    with platform() as plat:
        tokens = asyncio.run(_make_patients(plat, args.patients + args.race))
        with api_server(plat.env) as base_url:
            asyncio.run(bench(base_url, tokens, args.concurrency, args.race))


if __name__ == "__main__":
    main()
