"""Nearby-pharmacy search benchmark: 10,000 pharmacies around Ho Chi Minh City and Hanoi, each publishing stock of
500 drugs (5 million stock rows), searched by a patient's prescription and by a list of drugs at c=1 and c=8, with
GET /health/live from the same run as the baseline the ratios refer to. Also times the stock upload endpoint.

The catalogue gets generated drugs through the CSV importer; pharmacies arrive by COPY and stock by INSERT ... SELECT
on the server, 250,000 rows a statement (shipping 5 million rows from Python would measure the client, not the
schema).

    python -m load_tests.bench_pharmacy_search [--pharmacies 10000] [--stocked 500] [--drugs 20000]
                                               [--requests 2000] [--concurrency 8] [--radius-km 5]
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import io
import random
import statistics
import time
import uuid
from typing import Any

import asyncpg
import httpx

from api import db
from api.audit import AuditContext
from api.auth.principal import Principal, issue_access_token
from eprescription.catalogue_import import import_drugs
from eprescription.codes import new_code
from load_tests.harness import Platform, api_server, describe, percentile, platform
from pharmacy_link import db as pharmacy_db
from pharmacy_link.service import minute_of_week

# (south, north, west, east): the urban districts of the two big cities, about 580 and 450 km², where most of the
# country's pharmacies are; 10,000 pharmacies put about 10 in every km², 750 within 5 km of a central point
BOXES = {"TP. Hồ Chí Minh": (10.70, 10.90, 106.58, 106.82), "Hà Nội": (20.93, 21.10, 105.72, 105.95)}
HOURS = (  # (share, spans): most pharmacies keep shop hours, some never close, some serve the night
    (0.6, [(d, "07:00", "22:00") for d in range(1, 8)]),
    (0.2, [(d, "00:00", "24:00") for d in range(1, 8)]),
    (0.1, [(d, "18:00", "02:00") for d in range(1, 8)]),
    (0.1, [(d, "07:30", "11:30") for d in range(1, 7)] + [(d, "13:30", "20:30") for d in range(1, 7)]),
)
PATIENTS = 200
STOCK_CHUNK = 500  # pharmacies per INSERT: each statement stays well under the pool's command timeout
# Every pharmacy holds the common (seed) medicines and a stride of its own through the generated ones ($3: their
# source code); about one count in seven is zero (sold out). load_tests.datagen stocks its pharmacies the same way.
STOCK_SQL = """
    WITH common AS (SELECT id, row_number() OVER (ORDER BY id) - 1 AS n FROM drugs
                    WHERE source_code = 'lienthong-demo-seed' AND control_class = 'none' AND is_medicine AND active),
         other AS (SELECT id, row_number() OVER (ORDER BY id) - 1 AS n FROM drugs WHERE source_code = $3),
         sizes AS (SELECT (SELECT count(*) FROM common) AS common, greatest(1, (SELECT count(*) FROM other)) AS other),
         slots AS (SELECT p.id AS pharmacy_id, k,
                          (hashtext(p.id::text)::bigint + 2147483648 + (k - sizes.common) * 7919) % sizes.other AS n
                   FROM unnest($1::uuid[]) AS p(id), sizes, generate_series(0, $2 - 1) AS k)
    INSERT INTO pharmacy_stock (pharmacy_id, drug_id, quantity, unit)
    SELECT s.pharmacy_id, coalesce(c.id, o.id),
           CASE WHEN random() < 0.15 THEN 0 ELSE 1 + (random() * 199)::integer END, 'viên'
    FROM slots s LEFT JOIN common c ON c.n = s.k LEFT JOIN other o ON c.id IS NULL AND o.n = s.n
    WHERE coalesce(c.id, o.id) IS NOT NULL
    ORDER BY s.pharmacy_id, s.k
    ON CONFLICT DO NOTHING"""


def _generated_csv(count: int) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["inn", "strength", "dosage_form", "route", "control_class", "registration_number", "source"])
    for i in range(count):
        writer.writerow([f"Hoạt chất {i}", f"{5 * (1 + i % 40)} mg", "viên nén", "oral", "none",
                         f"VD-{60000 + i}-2{i % 7}", "generated for load_tests/bench_pharmacy_search.py"])
    return out.getvalue().encode()


def _pharmacy_rows(count: int, rng: random.Random) -> list[tuple[Any, ...]]:
    """Sorted by id, so stock, inserted pharmacy by pharmacy, grows its primary key at the right edge."""
    rows = []
    provinces = list(BOXES)
    for i in range(count):
        province = provinces[0] if rng.random() < 0.55 else provinces[1]
        south, north, west, east = BOXES[province]
        spans = rng.choices([h for _, h in HOURS], weights=[w for w, _ in HOURS])[0]
        rows.append((uuid.uuid4(), f"Nhà thuốc bench {i}", "nha_thuoc" if i % 4 else "quay_thuoc", f"BENCH-GPP-{i}",
                     f"BENCH-{i}", f"028{i:08d}", f"{i} Đường Thử", province, rng.uniform(south, north),
                     rng.uniform(west, east), [{"weekday": d, "opens": o, "closes": c} for d, o, c in spans]))
    rows.sort(key=lambda r: r[0])
    return rows


async def build(plat: Platform, pharmacies: int, stocked: int, drugs: int) -> dict[str, Any]:
    """The map, its stock, and patients with prescriptions; prints how long each part took."""
    rng = random.Random(20260501)
    pool = await db.create_pool(plat.target, plat.settings)
    ctx = AuditContext(None, "system", None, "bench_pharmacy_search", None)
    timings: dict[str, float] = {}
    try:
        started = time.perf_counter()
        await import_drugs(pool, _generated_csv(drugs), source="bench-generated", file_label="bench.csv",
                           demo_data=True, ctx=ctx)
        timings["drugs"] = time.perf_counter() - started

        rows = _pharmacy_rows(pharmacies, rng)
        started = time.perf_counter()
        async with pool.acquire() as conn:
            await conn.copy_records_to_table(
                "pharmacies", records=rows,
                columns=["id", "name", "kind", "gpp_certificate_number", "national_outlet_id", "phone", "address",
                         "province", "latitude", "longitude", "opening_hours"])
        timings["pharmacies"] = time.perf_counter() - started

        started = time.perf_counter()
        ids = [r[0] for r in rows]
        chunks = [ids[i:i + STOCK_CHUNK] for i in range(0, len(ids), STOCK_CHUNK)]

        async def fill(part: list[list[uuid.UUID]]) -> None:
            async with pool.acquire() as conn:
                for chunk in part:
                    await conn.execute(STOCK_SQL, chunk, stocked, "bench-generated", timeout=3600)

        # two connections for the two cores this box has
        await asyncio.gather(fill(chunks[0::2]), fill(chunks[1::2]))
        timings["stock"] = time.perf_counter() - started
        started = time.perf_counter()
        # what autovacuum would do after such a load (the visibility map makes the stock scans index-only); only
        # the tables' owner may do it
        owner = await asyncpg.connect(plat.target.admin_dsn)
        try:
            await owner.execute("VACUUM ANALYZE pharmacy_stock", timeout=3600)
            await owner.execute("VACUUM ANALYZE pharmacies")
        finally:
            await owner.close()
        timings["vacuum"] = time.perf_counter() - started
        stock_rows = await pool.fetchval("SELECT count(*) FROM pharmacy_stock")
        size = await pool.fetchval("SELECT pg_size_pretty(pg_total_relation_size('pharmacy_stock'))")
        patients = await _patients_with_prescriptions(plat, pool, rng)
        common = [r["id"] for r in await pool.fetch(
            """SELECT id FROM drugs WHERE source_code = 'lienthong-demo-seed' AND control_class = 'none'
               AND is_medicine ORDER BY id""")]
        bench_pharmacy = rows[0][0]
    finally:
        await pool.close()
    total = sum(timings.values())
    print(f"built {drugs} generated drugs in {timings['drugs']:.1f} s, {pharmacies} pharmacies in "
          f"{timings['pharmacies']:.1f} s, {stock_rows:,} stock rows ({size}) in {timings['stock']:.1f} s, "
          f"VACUUM ANALYZE {timings['vacuum']:.1f} s: {total:.1f} s in all")
    return {"patients": patients, "common": common, "bench_pharmacy": bench_pharmacy, "drugs": drugs}


async def _patients_with_prescriptions(plat: Platform, pool: Any, rng: random.Random) -> list[dict[str, Any]]:
    """PATIENTS patients, each with an issued prescription of 1-5 common medicines (put straight into the tables:
    prescribing itself is another benchmark)."""
    made = []
    async with pool.acquire() as conn, conn.transaction():
        doctor = await conn.fetchrow("""SELECT a.id, d.facility_id, f.code FROM accounts a
                                        JOIN doctors d ON d.account_id = a.id JOIN facilities f ON f.id = d.facility_id
                                        WHERE a.username = 'bs.lan'""")
        key_id = await conn.fetchval(
            """INSERT INTO doctor_signing_keys (doctor_id, public_key, private_key_enc, retired_at)
               VALUES ($1, $2, '\\x00', now()) RETURNING id""", doctor["id"], rng.randbytes(32))
        drugs = [r["id"] for r in await conn.fetch(
            """SELECT id FROM drugs WHERE source_code = 'lienthong-demo-seed' AND control_class = 'none'
               AND is_medicine""")]
        for i in range(PATIENTS):
            account_id = await conn.fetchval(
                "INSERT INTO accounts (role, phone, full_name) VALUES ('patient', $1, $2) RETURNING id",
                f"+8493{i:07d}", f"Bệnh nhân {i}")
            patient_id = await conn.fetchval(
                "INSERT INTO patients (account_id, full_name) VALUES ($1, $2) RETURNING id", account_id, f"BN {i}")
            consultation_id = await conn.fetchval(
                """INSERT INTO consultations (doctor_id, patient_id, booked_by, slot, status, reason, fee_vnd)
                   VALUES ($1, $2, $3, tstzrange(now() - make_interval(hours => $4 + 1),
                                                 now() - make_interval(hours => $4 + 1) + interval '20 minutes'),
                           'completed', 'Benchmark', 0) RETURNING id""", doctor["id"], patient_id, account_id, i)
            rx_id = await conn.fetchval(
                """INSERT INTO prescriptions (consultation_id, patient_id, doctor_id, facility_id)
                   VALUES ($1, $2, $3, $4) RETURNING id""", consultation_id, patient_id, doctor["id"],
                doctor["facility_id"])
            for position, drug_id in enumerate(rng.sample(drugs, rng.randint(1, 5)), start=1):
                await conn.execute(
                    """INSERT INTO prescription_lines (prescription_id, position, drug_id, drug_name, strength,
                                                       dosage_form, dose_per_time, dose_unit, times_per_day, days,
                                                       quantity, quantity_unit, route)
                       SELECT $1, $2, d.id, d.inn, d.strength, d.dosage_form, 1, 'viên', 2, 5, $3, 'viên', d.route
                       FROM drugs d WHERE d.id = $4""", rx_id, position, rng.randint(5, 30), drug_id)
            await conn.execute(
                """UPDATE prescriptions SET status = 'issued', rx_type = 'c', code = $2, signed_content = '\\x7b7d',
                          signature = $3, signing_key_id = $4, issued_at = now(),
                          valid_until = now() + interval '5 days' WHERE id = $1""",
                rx_id, str(new_code(doctor["code"], "c")), bytes(64), key_id)
            token = issue_access_token(Principal(account_id=account_id, role="patient", patient_id=patient_id),
                                       plat.settings, ttl_s=3600)
            made.append({"token": token, "prescription_id": str(rx_id)})
    return made


def _point(rng: random.Random) -> tuple[float, float]:
    south, north, west, east = BOXES[rng.choice(list(BOXES))]
    return rng.uniform(south, north), rng.uniform(west, east)


def _searches(built: dict[str, Any], requests: int, radius_km: float) -> dict[str, list[tuple[str, dict[str, str]]]]:
    rng = random.Random(11)
    by_prescription, by_drugs = [], []
    for _ in range(requests):
        lat, lng = _point(rng)
        patient = rng.choice(built["patients"])
        by_prescription.append((str(httpx.URL("/pharmacies/nearby", params={
            "lat": lat, "lng": lng, "radius_km": radius_km, "prescription_id": patient["prescription_id"]})),
            {"Authorization": f"Bearer {patient['token']}"}))
        drugs = ",".join(str(d) for d in rng.sample(built["common"], rng.randint(1, 5)))
        lat, lng = _point(rng)
        by_drugs.append((str(httpx.URL("/pharmacies/nearby", params={
            "lat": lat, "lng": lng, "radius_km": radius_km, "drug_ids": drugs})),
            {"Authorization": f"Bearer {patient['token']}"}))
    return {"prescription": by_prescription, "drug_ids": by_drugs}


async def _run(base_url: str, calls: list[tuple[str, dict[str, str]]], concurrency: int
               ) -> tuple[list[float], float, int]:
    latencies: list[float] = []
    ok = 0
    queue: asyncio.Queue[tuple[str, dict[str, str]]] = asyncio.Queue()
    for call in calls:
        queue.put_nowait(call)
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=base_url, limits=limits, timeout=30) as http:
        async def worker() -> None:
            nonlocal ok
            while not queue.empty():
                path, headers = queue.get_nowait()
                started = time.perf_counter()
                response = await http.get(path, headers=headers)
                latencies.append(time.perf_counter() - started)
                ok += response.status_code == 200

        for path, headers in calls[:50]:  # warm the connections, the prepared statements and the cache
            await http.get(path, headers=headers)
        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        wall = time.perf_counter() - started
    return latencies, wall, ok


def _ratio(measured: dict[str, float], ping: dict[str, float]) -> str:
    return f"x{measured['p50_ms'] / ping['p50_ms']:.1f} p50, x{measured['p99_ms'] / ping['p99_ms']:.1f} p99 of baseline"


async def _sql_only(plat: Platform, built: dict[str, Any], radius_km: float) -> None:
    """The search statement alone, over one connection: what the database contributes to the HTTP figures."""
    rng = random.Random(5)
    pool = await db.create_pool(plat.target, plat.settings)
    latencies: list[float] = []
    sizes: list[int] = []
    try:
        async with pool.acquire() as conn:
            for i in range(500):
                lat, lng = _point(rng)
                started = time.perf_counter()
                result = await pharmacy_db.nearby(
                    conn, latitude=lat, longitude=lng, radius_m=radius_km * 1000, limit=20,
                    minute_of_week=minute_of_week(), open_only=False, prescription_id=None, patient_id=None,
                    drug_ids=rng.sample(built["common"], rng.randint(1, 5)))
                if i >= 20:
                    latencies.append(time.perf_counter() - started)
                sizes.append(len(result.pharmacies))
            within = await conn.fetchval(
                """SELECT count(*) FROM pharmacies
                   WHERE earth_box(ll_to_earth(10.80, 106.70), $1) @> ll_to_earth(latitude, longitude)
                     AND earth_distance(ll_to_earth(10.80, 106.70), ll_to_earth(latitude, longitude)) <= $1""",
                radius_km * 1000)
    finally:
        await pool.close()
    print(f"{'SQL statement alone (drug_ids)':<34} p50 {percentile(latencies, 50) * 1000:7.2f} ms   "
          f"p99 {percentile(latencies, 99) * 1000:7.2f} ms   ({within} pharmacies within {radius_km:g} km of "
          f"central HCMC; {statistics.fmean(sizes):.0f} results a search)")


async def _uploads(base_url: str, plat: Platform, built: dict[str, Any]) -> None:
    pool = await db.create_pool(plat.target, plat.settings)
    try:
        numbers = [r["registration_number"] for r in await pool.fetch(
            "SELECT registration_number FROM drugs WHERE source_code = 'bench-generated' ORDER BY registration_number")]
    finally:
        await pool.close()
    pharmacist = issue_access_token(Principal(account_id=uuid.uuid4(), role="pharmacist",
                                              pharmacy_id=built["bench_pharmacy"]), plat.settings, ttl_s=3600)
    headers = {"Authorization": f"Bearer {pharmacist}"}
    rng = random.Random(3)
    async with httpx.AsyncClient(base_url=base_url, timeout=120, headers=headers) as http:
        for size in (500, min(20_000, len(numbers))):
            timings = []
            for _ in range(5):
                body = {"items": [{"registration_number": n, "quantity": rng.randint(0, 300)}
                                  for n in rng.sample(numbers, size)]}
                started = time.perf_counter()
                response = await http.put(f"/pharmacies/{built['bench_pharmacy']}/stock", json=body)
                timings.append(time.perf_counter() - started)
                assert response.status_code == 200, response.text[:300]
            median = statistics.median(timings)
            print(f"{f'PUT …/stock, {size:,} items':<34} median {median * 1000:8.1f} ms   "
                  f"({size / median:,.0f} items/s, 5 uploads by registration number)")


async def bench(plat: Platform, base_url: str, built: dict[str, Any], requests: int, concurrency: int,
                radius_km: float) -> None:
    searches = _searches(built, requests, radius_km)
    for c in sorted({1, concurrency}):
        lat, wall, ok = await _run(base_url, [("/health/live", {})] * requests, c)
        ping = describe(f"baseline GET /health/live c={c}", lat, wall, ok)
        for mode, calls in searches.items():
            lat, wall, ok = await _run(base_url, calls, c)
            measured = describe(f"nearby by {mode} c={c}", lat, wall, ok)
            print(f"{'':34} {_ratio(measured, ping)}")
    await _sql_only(plat, built, radius_km)
    await _uploads(base_url, plat, built)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--pharmacies", type=int, default=10_000)
    parser.add_argument("--stocked", type=int, default=500, help="drugs of stock per pharmacy")
    parser.add_argument("--drugs", type=int, default=20_000,
                        help="generated catalogue drugs besides the seed (the largest stock upload is this many items)")
    parser.add_argument("--requests", type=int, default=2_000, help="requests per measurement")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--radius-km", type=float, default=5)
    args = parser.parse_args()
    with platform() as plat:
        built = asyncio.run(build(plat, args.pharmacies, args.stocked, args.drugs))
        with api_server(plat.env) as base_url:
            print(f"{args.requests} requests per line; random points in central HCMC and Hanoi, "
                  f"radius {args.radius_km:g} km, 1-5 lines or drugs a search, 20 results")
            asyncio.run(bench(plat, base_url, built, args.requests, args.concurrency, args.radius_km))


if __name__ == "__main__":
    main()
