"""Drug catalogue search benchmark: type-ahead queries (growing prefixes, trade names, ATC codes, typos) against the
demo seed and against a generated larger catalogue loaded through the CSV importer, with GET /health/live from the
same run as the baseline the ratios refer to.

    python -m load_tests.bench_catalogue [--drugs 20000] [--requests 2000] [--concurrency 8]
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import io
import random
import time
import uuid
from typing import Any

import httpx

from api import db
from api.audit import AuditContext
from api.auth.principal import Principal, issue_access_token
from eprescription.catalogue_import import import_drugs
from load_tests.harness import Platform, api_server, describe, platform

_SYLLABLES = ("ha", "pa", "col", "me", "ko", "tin", "vi", "pha", "dol", "sa", "mo", "xin", "ta", "ny", "zo", "ra",
              "cef", "lo", "fen", "dex", "ni", "vas", "tra", "bi", "lu", "ge", "phar", "mex", "nic", "ron")
_MAKERS = ("DHG", "Imexpharm", "Domesco", "Pymepharco", "Traphaco", "OPV", "Stada", "Savipharm", "Mekophar", "Boston")


async def _seed(plat: Platform) -> list[dict[str, Any]]:
    pool = await db.create_pool(plat.target, plat.settings)
    try:
        rows = await pool.fetch("SELECT inn, strength, dosage_form, route, atc_code, control_class, trade_names "
                                "FROM drugs ORDER BY inn, strength")
    finally:
        await pool.close()
    return [dict(r) for r in rows]


def _generated_csv(seed: list[dict[str, Any]], count: int) -> bytes:
    """``count`` distinct products shaped like a registration list: each a seed presentation under a brand of its own
    with a registration number (the import key), so the search meets many near-identical names."""
    rng = random.Random(20260101)
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["inn", "strength", "dosage_form", "route", "atc_code", "control_class", "registration_number",
                     "trade_names", "source"])
    for i in range(count):
        base = seed[i % len(seed)]
        brand = "".join(rng.choice(_SYLLABLES) for _ in range(rng.randint(2, 3))).capitalize()
        prefix = "VD" if i % 3 else "VN"
        writer.writerow([base["inn"], base["strength"], base["dosage_form"], base["route"], base["atc_code"] or "",
                         base["control_class"], f"{prefix}-{10000 + i}-{19 + i % 7}",
                         f"{brand} {rng.choice(_MAKERS)}", "generated for load_tests/bench_catalogue.py"])
    return out.getvalue().encode()


def _queries(seed: list[dict[str, Any]], total: int) -> list[str]:
    """What a doctor's keystrokes send: every prefix from 2 letters of an INN or brand, codes, slips of the finger."""
    rng = random.Random(7)
    words = sorted({d["inn"].split()[0].lower() for d in seed} | {t.split()[0] for d in seed for t in d["trade_names"]})
    typed = [w[:n] for w in words for n in range(2, len(w) + 1)]
    codes = [d["atc_code"][:n] for d in seed for n in (3, 5, 7)]
    typos = ["paracetamon", "amoxcilin", "metphormin", "glicazid", "ibuprofn", "simvastatine", "losartran",
             "azitromycin", "omeprazole", "cetirizine"]
    mix = typed * 6 + codes * 2 + typos * 10 + ["paracetamol gói", "amoxicilin 250", "viên nén bao phim"] * 10
    return [rng.choice(mix) for _ in range(total)]


async def _run(base_url: str, paths: list[str], headers: dict[str, str], concurrency: int) -> tuple[list[float], float,
                                                                                                     int]:
    latencies: list[float] = []
    ok = 0
    queue: asyncio.Queue[str] = asyncio.Queue()
    for path in paths:
        queue.put_nowait(path)
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=base_url, limits=limits, timeout=30, headers=headers) as http:
        async def worker() -> None:
            nonlocal ok
            while not queue.empty():
                path = queue.get_nowait()
                started = time.perf_counter()
                response = await http.get(path)
                latencies.append(time.perf_counter() - started)
                ok += response.status_code == 200

        for _ in range(min(50, len(paths))):  # warm the connections and the prepared statements
            await http.get(paths[0])
        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        wall = time.perf_counter() - started
    return latencies, wall, ok


async def _import(plat: Platform, data: bytes) -> float:
    pool = await db.create_pool(plat.target, plat.settings)
    try:
        started = time.perf_counter()
        report = await import_drugs(pool, data, source="bench-generated", file_label="bench.csv", demo_data=True,
                                    ctx=AuditContext(None, "system", None, "bench_catalogue", None))
        elapsed = time.perf_counter() - started
    finally:
        await pool.close()
    print(f"imported {report.rows} generated drugs in {elapsed:.1f} s ({report.rows / elapsed:,.0f} rows/s): "
          f"{report.inserted} new")
    return elapsed


def _ratio(search: dict[str, float], ping: dict[str, float]) -> str:
    return f"x{search['p50_ms'] / ping['p50_ms']:.1f} p50, x{search['p99_ms'] / ping['p99_ms']:.1f} p99 of baseline"


async def bench(plat: Platform, base_url: str, drugs: int, requests: int, concurrency: int) -> None:
    seed = await _seed(plat)
    token = issue_access_token(Principal(account_id=uuid.uuid4(), role="doctor"), plat.settings, ttl_s=3600)
    headers = {"Authorization": f"Bearer {token}"}
    searches = [str(httpx.URL("/drugs", params={"q": q, "limit": 20})) for q in _queries(seed, requests)]
    results: dict[str, dict[str, float]] = {}
    for c in sorted({1, concurrency}):
        lat, wall, ok = await _run(base_url, ["/health/live"] * requests, {}, c)
        results[f"ping{c}"] = describe(f"baseline GET /health/live c={c}", lat, wall, ok)
        lat, wall, ok = await _run(base_url, searches, headers, c)
        results[f"seed{c}"] = describe(f"search, {len(seed)} drugs c={c}", lat, wall, ok)
        print(f"{'':34} {_ratio(results[f'seed{c}'], results[f'ping{c}'])}")
    await _import(plat, _generated_csv(seed, drugs))
    for c in sorted({1, concurrency}):
        lat, wall, ok = await _run(base_url, searches, headers, c)
        large = describe(f"search, {len(seed) + drugs} drugs c={c}", lat, wall, ok)
        print(f"{'':34} {_ratio(large, results[f'ping{c}'])}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--drugs", type=int, default=20_000, help="generated drugs imported for the large run")
    parser.add_argument("--requests", type=int, default=2_000, help="requests per measurement")
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args()
    with platform() as plat, api_server(plat.env) as base_url:
        print(f"{args.requests} requests per line; queries: growing prefixes, brands, ATC codes, typos")
        asyncio.run(bench(plat, base_url, args.drugs, args.requests, args.concurrency))


if __name__ == "__main__":
    main()
