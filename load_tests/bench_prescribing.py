"""Prescribing benchmark: create a 5-line draft and sign it (hard rules + clinical checks against the full seed
catalogue, TOTP, Ed25519, national outbox) at a fixed concurrency, the dry-run the console calls as the doctor types,
and catalogue type-ahead search; GET /health/live from the same run is the baseline the ratios refer to.

Each signature needs a fresh TOTP step of its doctor (a code is accepted once), so the run makes one doctor per
prescription, each with its own in-call consultation and patient.

    python -m load_tests.bench_prescribing [--prescriptions 300] [--concurrency 8]
"""

from __future__ import annotations

import argparse
import asyncio
import time
from typing import Any

import httpx
import pyotp

from api import db
from api.auth.principal import Principal, issue_access_token
from api.auth.secrets_box import seal
from load_tests.harness import Platform, api_server, describe, platform

# five lines with several real interactions among them (CDS-1 major: warfarin × metronidazole, clopidogrel ×
# omeprazole), so the checks do their full work; none is contraindicated, so no override is needed
LINES = (("Warfarin", 1, 1, 10), ("Metronidazol", 1, 3, 7), ("Omeprazol", 1, 1, 14), ("Clopidogrel", 1, 1, 14),
         ("Paracetamol", 1, 3, 5))
SEARCHES = ("para", "paracetamol 5", "amox", "amoxicilin", "amoxcilin", "ômeprazol", "C09", "panadol", "cefu", "lor")


async def doctors_in_calls(plat: Platform, count: int, lines: tuple[tuple[str, int, int, int], ...] = LINES
                          ) -> list[dict[str, Any]]:
    """``count`` doctors with a TOTP secret, each in a call with a patient of their own, and a draft body of
    ``lines`` (INN, dose, times per day, days) for that consultation."""
    pool = await db.create_pool(plat.target, plat.settings)
    made = []
    try:
        async with pool.acquire() as conn, conn.transaction():
            facility_id = await conn.fetchval("SELECT id FROM facilities LIMIT 1")
            for i in range(count):
                secret = pyotp.random_base32()
                account_id = await conn.fetchval(
                    """INSERT INTO accounts (role, username, password_hash, full_name, totp_confirmed_at)
                       VALUES ('doctor', $1, 'bench-no-login', $2, now()) RETURNING id""", f"bench.bs{i}",
                    f"Bác sĩ {i}")
                await conn.execute("UPDATE accounts SET totp_secret_enc = $2 WHERE id = $1", account_id,
                                   seal(plat.settings.data_key, secret.encode(), account_id.bytes))
                await conn.execute(
                    "INSERT INTO doctors (account_id, facility_id, licence_number) VALUES ($1, $2, $3)",
                    account_id, facility_id, f"B{i:06d}/HCM-CCHN")
                patient_account = await conn.fetchval(
                    "INSERT INTO accounts (role, phone, full_name) VALUES ('patient', $1, $2) RETURNING id",
                    f"+8495{i:07d}", f"Bệnh nhân {i}")
                patient_id = await conn.fetchval(
                    """INSERT INTO patients (account_id, full_name, date_of_birth, sex, address)
                       VALUES ($1, $2, '1970-01-01', 'male', 'Hà Nội') RETURNING id""", patient_account, f"BN {i}")
                consultation_id = await conn.fetchval(
                    """INSERT INTO consultations (doctor_id, patient_id, booked_by, slot, status, reason, fee_vnd,
                                                  checked_in_at, call_started_at, telemedicine_icd10)
                       VALUES ($1, $2, $3, tstzrange(now() - interval '5 minutes', now() + interval '15 minutes'),
                               'in_call', 'Benchmark', 0, now(), now(), 'I10') RETURNING id""",
                    account_id, patient_id, patient_account)
                token = issue_access_token(Principal(account_id=account_id, role="doctor", facility_id=facility_id),
                                           plat.settings, ttl_s=3600)
                made.append({"token": token, "secret": secret, "consultation_id": str(consultation_id)})
            drug_ids = {inn: str(await conn.fetchval("SELECT id FROM drugs WHERE inn = $1 ORDER BY strength LIMIT 1",
                                                     inn)) for inn, *_ in lines}
    finally:
        await pool.close()
    body_lines = [{"drug_id": drug_ids[inn], "dose_per_time": dose, "dose_unit": "viên", "times_per_day": times,
                   "days": days, "quantity": dose * times * days, "quantity_unit": "viên", "usage": "Uống sau ăn"}
                  for inn, dose, times, days in lines]
    for doctor in made:
        doctor["draft"] = {"consultation_id": doctor["consultation_id"], "lines": body_lines,
                           "diagnoses": [{"code": "I10", "conclusion": "Tăng huyết áp"}]}
    return made


async def _ping(http: httpx.AsyncClient, requests: int, concurrency: int) -> dict[str, float]:
    latencies: list[float] = []

    async def one() -> None:
        started = time.perf_counter()
        await http.get("/health/live")
        latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    for offset in range(0, requests, concurrency):
        await asyncio.gather(*(one() for _ in range(min(concurrency, requests - offset))))
    return describe(f"baseline GET /health/live c={concurrency}", latencies, time.perf_counter() - started, requests)


async def bench(base_url: str, doctors: list[dict[str, Any]], concurrency: int) -> None:
    limits = httpx.Limits(max_connections=concurrency * 2, max_keepalive_connections=concurrency * 2)
    async with httpx.AsyncClient(base_url=base_url, limits=limits, timeout=60) as http:
        ping = await _ping(http, 2000, concurrency)

        dry_latencies: list[float] = []
        started = time.perf_counter()
        sample = doctors[: min(len(doctors), 400)]
        for offset in range(0, len(sample), concurrency):
            async def dry(doctor: dict[str, Any]) -> None:
                t0 = time.perf_counter()
                r = await http.post("/prescriptions/dry-run", json=doctor["draft"],
                                    headers={"Authorization": f"Bearer {doctor['token']}"})
                dry_latencies.append(time.perf_counter() - t0)
                assert r.status_code == 200, r.text
            await asyncio.gather(*(dry(d) for d in sample[offset:offset + concurrency]))
        dry_run = describe(f"POST /prescriptions/dry-run c={concurrency}", dry_latencies,
                           time.perf_counter() - started, len(dry_latencies))

        create_latencies: list[float] = []
        sign_latencies: list[float] = []
        pair_latencies: list[float] = []
        statuses: dict[int, int] = {}
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        for doctor in doctors:
            queue.put_nowait(doctor)

        async def worker() -> None:
            while not queue.empty():
                doctor = queue.get_nowait()
                auth = {"Authorization": f"Bearer {doctor['token']}"}
                t0 = time.perf_counter()
                created = await http.post("/prescriptions", json=doctor["draft"], headers=auth)
                t1 = time.perf_counter()
                signed = await http.post(f"/prescriptions/{created.json()['id']}/sign", headers=auth,
                                         json={"totp_code": pyotp.TOTP(doctor["secret"]).now()})
                t2 = time.perf_counter()
                create_latencies.append(t1 - t0)
                sign_latencies.append(t2 - t1)
                pair_latencies.append(t2 - t0)
                statuses[signed.status_code] = statuses.get(signed.status_code, 0) + 1

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        wall = time.perf_counter() - started
        describe(f"POST /prescriptions (5 lines) c={concurrency}", create_latencies, wall, len(create_latencies))
        describe(f"POST …/sign c={concurrency}", sign_latencies, wall, statuses.get(200, 0))
        pairs = describe(f"create+sign pair c={concurrency}", pair_latencies, wall, statuses.get(200, 0))
        print(f"  sign statuses {dict(sorted(statuses.items()))}; signed prescriptions/s {pairs['req_per_s']:.1f}; "
              f"ratios vs ping: dry-run p99 ×{dry_run['p99_ms'] / ping['p99_ms']:.1f}, "
              f"pair throughput ×{pairs['req_per_s'] / ping['req_per_s']:.3f}")

        token = doctors[0]["token"]
        search_latencies: list[float] = []
        started = time.perf_counter()
        for _ in range(100):
            for q in SEARCHES:
                t0 = time.perf_counter()
                r = await http.get("/drugs", params={"q": q, "limit": 10}, headers={"Authorization": f"Bearer {token}"})
                search_latencies.append(time.perf_counter() - t0)
                assert r.status_code == 200, r.text
        search = describe("GET /drugs?q= (seed catalogue) c=1", search_latencies, time.perf_counter() - started,
                          len(search_latencies))
        single = await _ping(http, 1000, 1)
        print(f"  search p99 ×{search['p99_ms'] / single['p99_ms']:.1f} of ping at c=1")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--prescriptions", type=int, default=300)
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args()
    with platform() as plat:
        doctors = asyncio.run(doctors_in_calls(plat, args.prescriptions))
        with api_server(plat.env) as base_url:
            asyncio.run(bench(base_url, doctors, args.concurrency))


if __name__ == "__main__":
    main()
