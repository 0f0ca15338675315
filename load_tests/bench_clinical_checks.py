"""How the clinical checks scale with the interaction catalogue (issue 8): the time of one ``clinical_check_data`` call
(what every dry-run keystroke and every signature reads) for a 5-drug draft, with the seed's rules and then with
1,000, 5,000 and 20,000 rules, reported as a ratio to the seed's figure measured in the same run. Beside it, in the
same run, the function as migration 0007 wrote it (every rule compared with every drug), for comparison.

The extra rules are synthetic and name ingredients no draft has, as most of a real interaction database does for
any one prescription. Each size is timed on a new connection, as the API's pool connections are after they are
recycled (asyncpg replaces a connection after 50,000 queries or 300 s idle); a connection that planned the function
while the table was small keeps that plan until then.

    python -m load_tests.bench_clinical_checks [--calls 500]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from pathlib import Path

import asyncpg

from load_tests.harness import platform

DRAFT = ("Warfarin", "Metronidazol", "Omeprazol", "Clopidogrel", "Paracetamol")
SIZES = (1_000, 5_000, 20_000)
SCANNING = "bench_clinical_check_data_0007"


def _scanning_version() -> str:
    """Migration 0007's clinical_check_data under another name (this benchmark's database is thrown away)."""
    sql = (Path(__file__).parent.parent / "api" / "migrations" / "0007_clinical_checks.sql").read_text()
    definition = sql[sql.index("CREATE FUNCTION clinical_check_data("):]
    return definition.replace("clinical_check_data(", f"{SCANNING}(", 1)


async def _per_call_ms(dsn: str, function: str, args: tuple[object, ...], calls: int) -> float:
    conn = await asyncpg.connect(dsn)
    query = f"SELECT {function}($1, $2, $3, $4)"
    try:
        for _ in range(20):
            await conn.fetchval(query, *args)
        rounds = []
        for _ in range(5):
            start = time.perf_counter()
            for _ in range(calls // 5):
                await conn.fetchval(query, *args)
            rounds.append((time.perf_counter() - start) / (calls // 5) * 1000)
        return statistics.median(rounds)
    finally:
        await conn.close()


async def run(dsn: str, admin_dsn: str, calls: int) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        drugs = [r["id"] for r in await conn.fetch(
            "SELECT DISTINCT ON (inn) id FROM drugs WHERE inn = ANY($1) ORDER BY inn, strength", list(DRAFT))]
        patient_id = await conn.fetchval("SELECT id FROM patients ORDER BY full_name LIMIT 1")
        source = await conn.fetchval("SELECT code FROM drug_sources LIMIT 1")
        args = (drugs, patient_id, [], ["penicillin"])
        admin = await asyncpg.connect(admin_dsn)
        try:
            await admin.execute(_scanning_version())
        finally:
            await admin.close()
        seed_rules = await conn.fetchval("SELECT count(*) FROM drug_interactions")
        seed_ms = await _per_call_ms(dsn, "clinical_check_data", args, calls)
        scan_seed_ms = await _per_call_ms(dsn, SCANNING, args, calls)
        print(f"{seed_rules:>7,} rules (seed)   indexed {seed_ms:6.2f} ms per call           "
              f"scanning (0007) {scan_seed_ms:6.2f} ms")
        count = seed_rules
        for size in SIZES:
            await conn.executemany(
                """INSERT INTO drug_interactions (a_kind, a_code, a_label, b_kind, b_code, b_label, severity, effect,
                                                 advice, effect_vi, advice_vi, source_code, source_ref)
                   VALUES ('ingredient', $1, $1, 'ingredient', $2, $2, 'moderate', 'synthetic', 'synthetic',
                           'tổng hợp', 'tổng hợp', $3, 'load_tests/bench_clinical_checks.py')""",
                [(f"hoat chat gia {i:06d}", f"hoat chat gia {i:06d} b", source) for i in range(count, size)])
            await conn.execute("ANALYZE drug_interactions")
            count = size
            ms = await _per_call_ms(dsn, "clinical_check_data", args, calls)
            scan_ms = await _per_call_ms(dsn, SCANNING, args, calls // 5)
            print(f"{size:>7,} rules          indexed {ms:6.2f} ms   ×{ms / seed_ms:5.2f} of the seed's   "
                  f"scanning (0007) {scan_ms:6.2f} ms   ×{scan_ms / scan_seed_ms:5.2f}")
    finally:
        await conn.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=500, help="timed calls per catalogue size")
    args = parser.parse_args()
    with platform() as plat:
        asyncio.run(run(plat.settings.database_url, plat.target.admin_dsn, args.calls))


if __name__ == "__main__":
    main()
