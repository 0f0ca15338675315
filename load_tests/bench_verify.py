"""Pharmacy verify by code against its no-extra-work baselines, measured in one run on one machine (issue 8):

* ``/ping`` of the baseline app: no database (the floor of the stack: uvicorn, Litestar, msgspec);
* ``/rx/{code}`` of the baseline app: the same rows verify reads, one round trip, returned without any checks;
* ``POST /dispensing/verify``: authentication, the read and its audit row in one round trip, the Ed25519 signature
  over the signed content, validity, status, holds, identity, warnings.

Unloaded (one connection) p50/p99, then 32 connections: throughput, p99 and server CPU per request; then verify
with 1 and 2 uvicorn workers. The load comes from ``load_tests.rawhttp`` (pre-encoded requests over keep-alive
connections), because an httpx or Locust client would be the bottleneck on 2 cores. The client shares the cores.

    python -m load_tests.bench_verify [--prescriptions 200] [--requests 6000] [--unloaded 1500]

Targets (issue 8): verify ≥ 50 % of the minimal endpoint's throughput; unloaded p99 ≤ 3 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
from typing import Any

import httpx
import pyotp

from load_tests import rawhttp
from load_tests.bench_dispensing import LINES, _pharmacist_token
from load_tests.bench_prescribing import doctors_in_calls
from load_tests.harness import Platform, Server, percentile, platform, server


async def _sign_all(base_url: str, doctors: list[dict[str, Any]]) -> list[str]:
    codes = []
    async with httpx.AsyncClient(base_url=base_url, timeout=60) as http:
        for doctor in doctors:
            auth = {"Authorization": f"Bearer {doctor['token']}"}
            created = (await http.post("/prescriptions", json=doctor["draft"], headers=auth)).json()
            signed = await http.post(f"/prescriptions/{created['id']}/sign", headers=auth,
                                     json={"totp_code": pyotp.TOTP(doctor["secret"]).now()})
            assert signed.status_code == 200, signed.text
            codes.append(signed.json()["code"])
    return codes


def _requests(kind: str, port: int, codes: list[str], count: int, token: str) -> list[bytes]:
    host = f"127.0.0.1:{port}"
    cycle = itertools.islice(itertools.cycle(codes), count)
    if kind == "ping":
        return [rawhttp.request("GET", "/ping", host=host)] * count
    if kind == "minimal":
        return [rawhttp.request("GET", f"/rx/{code}", host=host) for code in cycle]
    return [rawhttp.request("POST", "/dispensing/verify", host=host, body=json.dumps({"code": code}).encode(),
                            headers={"Authorization": f"Bearer {token}"}) for code in cycle]


def _measure(label: str, target: Server, requests: list[bytes], concurrency: int) -> dict[str, float]:
    cpu_before = target.cpu_s()
    result = asyncio.run(rawhttp.run("127.0.0.1", target.port, requests, concurrency))
    cpu_ms = (target.cpu_s() - cpu_before) * 1000 / len(requests)
    ok = result.statuses.get(200, 0)
    assert ok == len(requests), f"{label}: {dict(result.statuses)}"
    figures = {"req_per_s": len(requests) / result.wall_s, "p50_ms": percentile(result.latencies_s, 50) * 1000,
               "p99_ms": percentile(result.latencies_s, 99) * 1000, "cpu_ms": cpu_ms}
    print(f"{label:<40} {figures['req_per_s']:8.0f} req/s   p50 {figures['p50_ms']:6.2f} ms   "
          f"p99 {figures['p99_ms']:6.2f} ms   server CPU {cpu_ms:5.2f} ms/req")
    return figures


def run(plat: Platform, prescriptions: int, count: int, unloaded: int) -> None:
    doctors = asyncio.run(doctors_in_calls(plat, prescriptions, LINES))
    token = asyncio.run(_pharmacist_token(plat))
    with server(plat.env) as api, server(plat.env, "load_tests.baseline_app:create_app", ready_path="/ping") as base:
        codes = asyncio.run(_sign_all(api.url, doctors))
        for warm in ("ping", "minimal"):  # first connections, prepared statements, imports
            asyncio.run(rawhttp.run("127.0.0.1", base.port, _requests(warm, base.port, codes, 200, token), 4))
        asyncio.run(rawhttp.run("127.0.0.1", api.port, _requests("verify", api.port, codes, 200, token), 4))

        print(f"unloaded (1 connection, {unloaded} requests each)")
        quiet = {kind: _measure(f"  {kind}", target, _requests(kind, target.port, codes, unloaded, token), 1)
                 for kind, target in (("ping", base), ("minimal", base), ("verify", api))}
        print(f"32 connections ({count} requests each)")
        loaded = {kind: _measure(f"  {kind}", target, _requests(kind, target.port, codes, count, token), 32)
                  for kind, target in (("ping", base), ("minimal", base), ("verify", api))}
    print("verify with 2 uvicorn workers, 32 connections")
    with server(plat.env, workers=2) as api2:
        asyncio.run(rawhttp.run("127.0.0.1", api2.port, _requests("verify", api2.port, codes, 400, token), 8))
        two = _measure("  verify, 2 workers", api2, _requests("verify", api2.port, codes, count, token), 32)

    ratio = loaded["verify"]["req_per_s"] / loaded["minimal"]["req_per_s"]
    print(f"\nverify throughput = {ratio:.0%} of the minimal endpoint (target ≥ 50 %), "
          f"{loaded['verify']['req_per_s'] / loaded['ping']['req_per_s']:.0%} of /ping; "
          f"unloaded p99 {quiet['verify']['p99_ms']:.2f} ms (target ≤ 3 ms; minimal {quiet['minimal']['p99_ms']:.2f}, "
          f"ping {quiet['ping']['p99_ms']:.2f}); CPU per verify {loaded['verify']['cpu_ms']:.2f} ms vs minimal "
          f"{loaded['minimal']['cpu_ms']:.2f} ms; 2 workers ×{two['req_per_s'] / loaded['verify']['req_per_s']:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--prescriptions", type=int, default=200)
    parser.add_argument("--requests", type=int, default=6000)
    parser.add_argument("--unloaded", type=int, default=1500)
    args = parser.parse_args()
    with platform() as plat:
        run(plat, args.prescriptions, args.requests, args.unloaded)


if __name__ == "__main__":
    main()
