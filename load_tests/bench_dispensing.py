"""Pharmacy hot path benchmark: verify by code (signature check, validity, what remains; audited in the same round
trip) and dispense (row lock, remaining recomputed, idempotency, stock, events) at a fixed concurrency, with
GET /health/live from the same run as the baseline the ratios refer to.

    python -m load_tests.bench_dispensing [--prescriptions 300] [--verifies 3000] [--concurrency 8]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import secrets
import time
from datetime import date, timedelta
from typing import Any

import httpx
import pyotp

from api import db
from api.auth.principal import Principal, issue_access_token
from api.demo import PHARMACY_ID
from load_tests.bench_prescribing import doctors_in_calls
from load_tests.harness import Platform, api_server, describe, platform

# two lines without findings, so every draft signs without overrides
LINES = (("Paracetamol", 1, 2, 5), ("Loratadin", 1, 1, 5))


async def _pharmacist_token(plat: Platform) -> str:
    pool = await db.create_pool(plat.target, plat.settings)
    try:
        account_id = await pool.fetchval("SELECT account_id FROM pharmacists WHERE pharmacy_id = $1 LIMIT 1",
                                         PHARMACY_ID)
    finally:
        await pool.close()
    return issue_access_token(Principal(account_id=account_id, role="pharmacist", pharmacy_id=PHARMACY_ID),
                              plat.settings, ttl_s=3600)


async def _timed(calls: list[tuple[str, str, dict[str, Any] | None, dict[str, str]]], http: httpx.AsyncClient,
                 concurrency: int) -> tuple[list[float], float, dict[int, int]]:
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    queue = iter(calls)

    async def worker() -> None:
        for method, path, body, headers in queue:
            started = time.perf_counter()
            response = await http.request(method, path, json=body, headers=headers)
            latencies.append(time.perf_counter() - started)
            statuses[response.status_code] = statuses.get(response.status_code, 0) + 1

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return latencies, time.perf_counter() - started, statuses


async def bench(base_url: str, doctors: list[dict[str, Any]], pharmacist: str, verifies: int,
                concurrency: int) -> None:
    limits = httpx.Limits(max_connections=concurrency * 2, max_keepalive_connections=concurrency * 2)
    async with httpx.AsyncClient(base_url=base_url, limits=limits, timeout=60) as http:
        codes = []
        for doctor in doctors:  # the prescriptions to verify and dispense, signed through the API
            auth = {"Authorization": f"Bearer {doctor['token']}"}
            created = (await http.post("/prescriptions", json=doctor["draft"], headers=auth)).json()
            signed = await http.post(f"/prescriptions/{created['id']}/sign", headers=auth,
                                     json={"totp_code": pyotp.TOTP(doctor["secret"]).now()})
            assert signed.status_code == 200, signed.text
            codes.append(signed.json()["code"])
        auth = {"Authorization": f"Bearer {pharmacist}"}

        lat, wall, statuses = await _timed([("GET", "/health/live", None, {})] * verifies, http, concurrency)
        ping = describe(f"baseline GET /health/live c={concurrency}", lat, wall, statuses.get(200, 0))

        calls = [("POST", "/dispensing/verify", {"code": code}, auth)
                 for code in itertools.islice(itertools.cycle(codes), verifies)]
        lat, wall, statuses = await _timed(calls, http, concurrency)
        verify = describe(f"POST /dispensing/verify c={concurrency}", lat, wall, statuses.get(200, 0))

        expiry = str(date.today() + timedelta(days=365))
        calls = [("POST", f"/dispensing/prescriptions/{code}/dispenses", {
            "invoice_number": f"HD{i}", "recipient": {"full_name": "Bench"},
            "lines": [{"position": 1, "quantity": 10, "lot_number": "L1", "expiry_date": expiry,
                       "unit_price_vnd": 1500},
                      {"position": 2, "quantity": 5, "lot_number": "L2", "expiry_date": expiry,
                       "unit_price_vnd": 3000}]},
            {**auth, "Idempotency-Key": secrets.token_hex(12)}) for i, code in enumerate(codes)]
        lat, wall, statuses = await _timed(calls, http, concurrency)
        dispense = describe(f"POST …/dispenses (2 lines) c={concurrency}", lat, wall, statuses.get(201, 0))
        print(f"  dispense statuses {dict(sorted(statuses.items()))}; ratios vs ping: verify throughput "
              f"×{verify['req_per_s'] / ping['req_per_s']:.2f}, verify p99 ×{verify['p99_ms'] / ping['p99_ms']:.1f}, "
              f"dispense p99 ×{dispense['p99_ms'] / ping['p99_ms']:.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--prescriptions", type=int, default=300)
    parser.add_argument("--verifies", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args()
    with platform() as plat:
        doctors = asyncio.run(doctors_in_calls(plat, args.prescriptions, LINES))
        pharmacist = asyncio.run(_pharmacist_token(plat))
        with api_server(plat.env) as base_url:
            asyncio.run(bench(base_url, doctors, pharmacist, args.verifies, args.concurrency))


if __name__ == "__main__":
    main()
