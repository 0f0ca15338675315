"""Prescribing benchmark (issue 8): write and sign a 5-line prescription (hard rules, clinical checks against the
full seed catalogue, TOTP, Ed25519, national outbox, the patient's notice, audit) at 32 connections for 60 s, two
ways: in one request (``POST /prescriptions/signed``, what the console sends for content it has dry-run and never
saved) and as a saved draft then its signature (2 requests). Both against a minimal endpoint measured in the same
run that writes the rows the one-request path leaves behind in one script without any checks (``POST /rx`` of
``load_tests/baseline_app.py``); the one-request path again offered at half the rate it just sustained (open loop,
on the same connections: the latency a deployment sees when it is not saturated); then one doctor alone (1
connection) and the dry-run the console calls as the doctor types.

Each signature needs a fresh TOTP step of its doctor (a code is accepted once), so the run makes one doctor per
prescription, each with a signing key and an in-call consultation with a patient of their own. The load comes from
``load_tests.rawhttp`` and shares the 2 cores with the server and PostgreSQL.

    python -m load_tests.bench_prescribing [--prescriptions 36000] [--minimal 6000] [--concurrency 32] [--duration 60]

Targets: create + sign ≥ 40 % of the minimal insert's rate; p99 ≤ 50 ms at 32 connections.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import time
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from typing import Any
from uuid import uuid4

import pyotp
from asyncpg import Range

from api import db
from api.auth.principal import Principal, issue_access_token
from api.auth.secrets_box import seal
from eprescription import signing
from eprescription.codes import new_code
from load_tests import rawhttp
from load_tests.harness import Platform, Server, percentile, platform, server

# five lines with several real interactions among them (CDS-1 major: warfarin × metronidazole, clopidogrel ×
# omeprazole), so the checks do their full work; none is contraindicated, so no override is needed
LINES = (("Warfarin", 1, 1, 10), ("Metronidazol", 1, 3, 7), ("Omeprazol", 1, 1, 14), ("Clopidogrel", 1, 1, 14),
         ("Paracetamol", 1, 3, 5))


async def doctors_in_calls(plat: Platform, count: int, lines: tuple[tuple[str, int, int, int], ...] = LINES,
                           *, first: int = 0) -> list[dict[str, Any]]:
    """``count`` doctors with a TOTP secret and a signing key (as after their first signature), each in a call with a
    patient of their own, and a draft body of ``lines`` (INN, dose, times per day, days) for that consultation.
    Written with COPY, so thousands take seconds; ``first`` numbers them apart from an earlier call."""
    pool = await db.create_pool(plat.target, plat.settings)
    made = []
    try:
        async with pool.acquire() as conn, conn.transaction():
            # COPY is binary; citext's binary form is text's (this pool is closed below, so the codec goes with it)
            await conn.set_type_codec("citext", schema="public", encoder=str.encode, decoder=bytes.decode,
                                      format="binary")
            facility_id = await conn.fetchval("SELECT id FROM facilities LIMIT 1")
            secret = pyotp.random_base32()  # shared: each account still accepts a step once (totp_last_step)
            accounts, doctors, patients, consultations, keys = [], [], [], [], []
            now = datetime.now(UTC)
            slot = Range(now - timedelta(minutes=5), now + timedelta(minutes=15))
            for i in range(first, first + count):
                doctor_id, patient_account, patient_id, consultation_id, key_id = (uuid4() for _ in range(5))
                accounts.append((doctor_id, "doctor", None, f"bench.bs{i}", "bench-no-login", f"Bác sĩ {i}",
                                 seal(plat.settings.data_key, secret.encode(), doctor_id.bytes), now))
                accounts.append((patient_account, "patient", f"+8495{i:07d}", None, None, f"Bệnh nhân {i}", None,
                                 None))
                doctors.append((doctor_id, facility_id, f"B{i:06d}/HCM-CCHN"))
                patients.append((patient_id, patient_account, f"BN {i}", date(1970, 1, 1), "male", "Hà Nội"))
                consultations.append((consultation_id, doctor_id, patient_id, patient_account, slot, "in_call",
                                      "Benchmark", 0, now, now, "I10"))
                keys.append((key_id, doctor_id, *signing.new_key_pair(plat.settings.data_key, key_id)))
                token = issue_access_token(Principal(account_id=doctor_id, role="doctor", facility_id=facility_id),
                                           plat.settings, ttl_s=3600)
                made.append({"token": token, "secret": secret, "consultation_id": str(consultation_id),
                             "doctor_id": str(doctor_id), "patient_id": str(patient_id),
                             "patient_account_id": str(patient_account),
                             "facility_id": str(facility_id), "signing_key_id": str(key_id)})
            await conn.copy_records_to_table("accounts", records=accounts, columns=(
                "id", "role", "phone", "username", "password_hash", "full_name", "totp_secret_enc",
                "totp_confirmed_at"))
            await conn.copy_records_to_table("doctors", records=doctors,
                                             columns=("account_id", "facility_id", "licence_number"))
            await conn.copy_records_to_table("patients", records=patients, columns=(
                "id", "account_id", "full_name", "date_of_birth", "sex", "address"))
            await conn.copy_records_to_table("consultations", records=consultations, columns=(
                "id", "doctor_id", "patient_id", "booked_by", "slot", "status", "reason", "fee_vnd",
                "checked_in_at", "call_started_at", "telemedicine_icd10"))
            await conn.copy_records_to_table("doctor_signing_keys", records=keys,
                                             columns=("id", "doctor_id", "public_key", "private_key_enc"))
            drugs = {inn: dict(await conn.fetchrow(
                """SELECT id::text AS drug_id, inn, strength, dosage_form, route FROM drugs WHERE inn = $1
                   ORDER BY strength LIMIT 1""", inn)) for inn, *_ in lines}
    finally:
        await pool.close()
    body_lines = [{"drug_id": drugs[inn]["drug_id"], "dose_per_time": dose, "dose_unit": "viên",
                   "times_per_day": times, "days": days, "quantity": dose * times * days, "quantity_unit": "viên",
                   "usage": "Uống sau ăn"} for inn, dose, times, days in lines]
    # what the minimal insert endpoint of the baseline app is given: the same line values, names from the catalogue
    row_lines = [{**line, "drug_name": drugs[inn]["inn"], "strength": drugs[inn]["strength"],
                  "dosage_form": drugs[inn]["dosage_form"], "route": drugs[inn]["route"]}
                 for line, (inn, *_) in zip(body_lines, lines, strict=True)]
    for doctor in made:
        doctor["draft"] = {"consultation_id": doctor["consultation_id"], "lines": body_lines,
                           "diagnoses": [{"code": "I10", "conclusion": "Tăng huyết áp"}]}
        doctor["row_lines"] = row_lines
    return made


def _minimal_requests(port: int, doctors: list[dict[str, Any]]) -> list[bytes]:
    """POST /rx bodies for the baseline app: the same prescription and lines, each on a consultation of its own."""
    host = f"127.0.0.1:{port}"
    requests = []
    for doctor in doctors:
        code = str(new_code("BENCH", "c"))
        body = {"code": code, "consultation_id": doctor["consultation_id"], "patient_id": doctor["patient_id"],
                "doctor_id": doctor["doctor_id"], "facility_id": doctor["facility_id"],
                "patient_account_id": doctor["patient_account_id"],
                "signing_key_id": doctor["signing_key_id"], "diagnoses": doctor["draft"]["diagnoses"],
                "lines": doctor["row_lines"]}
        requests.append(rawhttp.request("POST", "/rx", host=host, body=json.dumps(body).encode()))
    return requests


_ALL = float("inf")  # a duration: until the doctors run out


def _measure_minimal(plat: Platform, base: Server, requests: list[bytes], concurrency: int,
                     rate_per_s: float | None = None, duration_s: float = _ALL) -> dict[str, float]:
    """The minimal insert, as fast as it is answered or offered at ``rate_per_s`` (latency from when each was
    due), until the requests run out or ``duration_s`` has passed."""
    latencies: list[float] = []
    statuses: Counter[int] = Counter()

    def flow_for(raw: bytes) -> rawhttp.Flow:
        async def flow(conn: rawhttp.Connection) -> None:
            t0 = time.perf_counter() if conn.due is None else conn.due
            status, _ = await conn.call(raw)
            latencies.append(time.perf_counter() - t0)
            statuses[status] += 1
        return flow

    cpu_before, pg_before = base.cpu_s(), plat.postgres_cpu_s()
    wall = asyncio.run(rawhttp.run_flows("127.0.0.1", base.port, map(flow_for, requests), concurrency,
                                         deadline=time.perf_counter() + duration_s, rate_per_s=rate_per_s))
    done = len(latencies)
    assert statuses.get(201) == done, dict(statuses)
    figures = {"per_s": done / wall, "p50_ms": percentile(latencies, 50) * 1000,
               "p99_ms": percentile(latencies, 99) * 1000, "cpu_ms": (base.cpu_s() - cpu_before) * 1000 / done,
               "pg_cpu_ms": (plat.postgres_cpu_s() - pg_before) * 1000 / done}
    label = "minimal insert (POST /rx)" if rate_per_s is None else f"  minimal, offered {rate_per_s:.0f}/s"
    print(f"  {label:<32} {figures['per_s']:8.1f} /s   p50 {figures['p50_ms']:7.2f} ms   "
          f"p99 {figures['p99_ms']:7.2f} ms   server CPU {figures['cpu_ms']:5.2f} ms, PostgreSQL CPU "
          f"{figures['pg_cpu_ms']:5.2f} ms each")
    return figures


def _measure_one_request(plat: Platform, api: Server, doctors: list[dict[str, Any]], concurrency: int,
                         duration_s: float, rate_per_s: float | None = None) -> dict[str, float]:
    """Write and sign a 5-line prescription in one request (``POST /prescriptions/signed``, what the console sends
    for content it has dry-run and never saved), one doctor each, on ``concurrency`` connections: as fast as they
    are answered, or offered at ``rate_per_s`` (latency then counts from when each was due)."""
    host = f"127.0.0.1:{api.port}"
    signed_s: list[float] = []
    statuses: Counter[str] = Counter()

    def flow_for(doctor: dict[str, Any]) -> rawhttp.Flow:
        auth = {"Authorization": f"Bearer {doctor['token']}"}

        async def flow(conn: rawhttp.Connection) -> None:
            # the code is read when the doctor signs, as in the console
            request = rawhttp.request("POST", "/prescriptions/signed", host=host, headers=auth, body=json.dumps(
                {**doctor["draft"], "totp_code": pyotp.TOTP(doctor["secret"]).now()}).encode())
            t0 = time.perf_counter() if conn.due is None else conn.due
            status, _ = await conn.call(request)
            statuses[str(status)] += 1
            if status == 201:
                signed_s.append(time.perf_counter() - t0)
        return flow

    cpu_before, pg_before = api.cpu_s(), plat.postgres_cpu_s()
    wall = asyncio.run(rawhttp.run_flows("127.0.0.1", api.port, map(flow_for, doctors), concurrency,
                                         deadline=time.perf_counter() + duration_s, rate_per_s=rate_per_s))
    signed = len(signed_s)
    figures = {"per_s": signed / wall, "p50_ms": percentile(signed_s, 50) * 1000,
               "p99_ms": percentile(signed_s, 99) * 1000, "wall_s": wall, "signed": signed,
               "cpu_ms": (api.cpu_s() - cpu_before) * 1000 / max(signed, 1),
               "pg_cpu_ms": (plat.postgres_cpu_s() - pg_before) * 1000 / max(signed, 1)}
    label = "write + sign (1 request)" if rate_per_s is None else f"  1 request, offered {rate_per_s:.0f}/s"
    print(f"  {label:<32} {figures['per_s']:8.1f} /s   p50 {figures['p50_ms']:7.2f} ms   "
          f"p99 {figures['p99_ms']:7.2f} ms   server CPU {figures['cpu_ms']:5.2f} ms, PostgreSQL CPU "
          f"{figures['pg_cpu_ms']:5.2f} ms each")
    print(f"    {signed} signed in {wall:.1f} s; statuses {dict(sorted(statuses.items()))}")
    if signed == len(doctors) and duration_s != _ALL:
        print("    (ran out of doctors before the duration: pass a larger --prescriptions)")
    return figures


def _measure_pairs(plat: Platform, api: Server, doctors: list[dict[str, Any]], concurrency: int, duration_s: float
                   ) -> dict[str, float]:
    """Save a 5-line draft, then sign it (the console's path once the doctor pressed "save draft"), one doctor per
    pair, on ``concurrency`` connections for ``duration_s``."""
    host = f"127.0.0.1:{api.port}"
    create_s: list[float] = []
    sign_s: list[float] = []
    pair_s: list[float] = []
    statuses: Counter[str] = Counter()

    def flow_for(doctor: dict[str, Any]) -> rawhttp.Flow:
        auth = {"Authorization": f"Bearer {doctor['token']}"}
        create = rawhttp.request("POST", "/prescriptions", host=host, body=json.dumps(doctor["draft"]).encode(),
                                 headers=auth)

        async def flow(conn: rawhttp.Connection) -> None:
            t0 = time.perf_counter()
            status, body = await conn.call(create)
            t1 = time.perf_counter()
            statuses[f"create {status}"] += 1
            if status != 201:
                return
            sign = rawhttp.request(
                "POST", f"/prescriptions/{json.loads(body)['id']}/sign", host=host, headers=auth,
                body=json.dumps({"totp_code": pyotp.TOTP(doctor["secret"]).now()}).encode())
            status, _ = await conn.call(sign)
            t2 = time.perf_counter()
            statuses[f"sign {status}"] += 1
            create_s.append(t1 - t0)
            sign_s.append(t2 - t1)
            if status == 200:
                pair_s.append(t2 - t0)
        return flow

    cpu_before, pg_before = api.cpu_s(), plat.postgres_cpu_s()
    wall = asyncio.run(rawhttp.run_flows("127.0.0.1", api.port, map(flow_for, doctors), concurrency,
                                         deadline=time.perf_counter() + duration_s))
    signed = len(pair_s)
    figures = {"per_s": signed / wall, "p50_ms": percentile(pair_s, 50) * 1000, "p99_ms": percentile(pair_s, 99) * 1000,
               "cpu_ms": (api.cpu_s() - cpu_before) * 1000 / max(signed, 1), "wall_s": wall, "signed": signed,
               "pg_cpu_ms": (plat.postgres_cpu_s() - pg_before) * 1000 / max(signed, 1),
               "create_p99_ms": percentile(create_s, 99) * 1000, "sign_p99_ms": percentile(sign_s, 99) * 1000}
    print(f"  draft, then sign (2 requests)    {figures['per_s']:8.1f} /s   p50 {figures['p50_ms']:7.2f} ms   "
          f"p99 {figures['p99_ms']:7.2f} ms   server CPU {figures['cpu_ms']:5.2f} ms, PostgreSQL CPU "
          f"{figures['pg_cpu_ms']:5.2f} ms each")
    print(f"    {signed} signed in {wall:.1f} s; create p99 {figures['create_p99_ms']:.1f} ms, sign p99 "
          f"{figures['sign_p99_ms']:.1f} ms; statuses {dict(sorted(statuses.items()))}")
    if signed == len(doctors) and duration_s != _ALL:
        print("    (ran out of doctors before the duration: pass a larger --prescriptions)")
    return figures


def _measure_dry_run(api: Server, doctors: list[dict[str, Any]], count: int) -> None:
    host = f"127.0.0.1:{api.port}"
    requests = [rawhttp.request("POST", "/prescriptions/dry-run", host=host, body=json.dumps(d["draft"]).encode(),
                                headers={"Authorization": f"Bearer {d['token']}"})
                for d in itertools.islice(itertools.cycle(doctors), count)]
    result = asyncio.run(rawhttp.run("127.0.0.1", api.port, requests, 1))
    assert result.statuses.get(200) == count, dict(result.statuses)
    print(f"  dry-run as the doctor types (1 connection): p50 {percentile(result.latencies_s, 50) * 1000:.2f} ms, "
          f"p99 {percentile(result.latencies_s, 99) * 1000:.2f} ms")


def run(plat: Platform, prescriptions: int, minimal: int, concurrency: int, duration_s: float) -> None:
    one = asyncio.run(doctors_in_calls(plat, prescriptions + 600))
    # the 2-request path and the half-load run each sign about half as many in the same time
    pairs_doctors = asyncio.run(doctors_in_calls(plat, prescriptions // 2, first=prescriptions + 600))
    paced = asyncio.run(doctors_in_calls(plat, prescriptions // 2, first=prescriptions * 2 + 600))
    inserts = asyncio.run(doctors_in_calls(plat, minimal + 200, first=3 * prescriptions + 600))
    # as many as the paced one-request run, so both are offered the same rate for the same time
    paced_inserts = asyncio.run(doctors_in_calls(plat, prescriptions // 2,
                                                 first=3 * prescriptions + minimal + 800))
    warm, one = one[:600], one[600:]
    with server(plat.env) as api, server(plat.env, "load_tests.baseline_app:create_app", ready_path="/ping") as base:
        # first connections, prepared statements, imports, caches
        asyncio.run(rawhttp.run("127.0.0.1", base.port, _minimal_requests(base.port, inserts[:200]), 4))
        _measure_pairs(plat, api, warm[:100], 4, _ALL)
        _measure_one_request(plat, api, warm[100:300], 4, _ALL)
        print("1 connection (no queueing: what a doctor alone waits for)")
        _measure_one_request(plat, api, warm[300:], 1, _ALL)
        print(f"{concurrency} connections")
        floor = _measure_minimal(plat, base, _minimal_requests(base.port, inserts[200:]), concurrency)
        signed = _measure_one_request(plat, api, one, concurrency, duration_s)
        half = _measure_one_request(plat, api, paced, concurrency, duration_s, rate_per_s=signed["per_s"] / 2)
        # the same offered rate of minimal inserts: how much of that tail the machine gives any commit
        minimal_half = _measure_minimal(plat, base, _minimal_requests(base.port, paced_inserts), concurrency,
                                        rate_per_s=signed["per_s"] / 2, duration_s=duration_s)
        pairs = _measure_pairs(plat, api, pairs_doctors, concurrency, duration_s)
        _measure_dry_run(api, one[-200:], 400)
    print(f"\nwrite + sign in one request = {signed['per_s'] / floor['per_s']:.0%} of the minimal insert "
          f"(target ≥ 40 %); p99 {signed['p99_ms']:.1f} ms at {concurrency} connections over "
          f"{signed['wall_s']:.0f} s (target ≤ 50 ms; the minimal insert's own p99 {floor['p99_ms']:.1f} ms); "
          f"server CPU {signed['cpu_ms']:.2f} ms per signed prescription vs {floor['cpu_ms']:.2f} ms per minimal "
          f"insert, PostgreSQL CPU {signed['pg_cpu_ms']:.2f} vs {floor['pg_cpu_ms']:.2f} ms")
    print(f"at half that rate ({half['per_s']:.0f}/s offered on {concurrency} connections, latency from when each was "
          f"due): p50 {half['p50_ms']:.1f} ms, p99 {half['p99_ms']:.1f} ms; the minimal insert offered the same rate: "
          f"p50 {minimal_half['p50_ms']:.1f} ms, p99 {minimal_half['p99_ms']:.1f} ms")
    print(f"draft, then sign (2 requests) = {pairs['per_s'] / floor['per_s']:.0%} of the minimal insert; p99 "
          f"{pairs['p99_ms']:.1f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--prescriptions", type=int, default=36000,
                        help="doctors in calls for the one-request flow (one prescription each); half as many for "
                             "the 2-request flow and for the half-load run")
    parser.add_argument("--minimal", type=int, default=6000, help="minimal inserts")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of create + sign")
    args = parser.parse_args()
    with platform() as plat:
        run(plat, args.prescriptions, args.minimal, args.concurrency, args.duration)


if __name__ == "__main__":
    main()
