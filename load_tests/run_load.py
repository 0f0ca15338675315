"""One command, one headless Locust load test against a freshly started platform, and its report.

    python -m load_tests.run_load --scenario consultation|prescription|mixed --users 8 --spawn-rate 4 \\
        --duration 60s [--scale tiny|small|full] [--workers 1|2] [--out DIR]

Starts embedded PostgreSQL (migrated, demo data), seeds it with ``load_tests.datagen`` at the given scale, starts
the SMS sandbox and the API (uvicorn, ``--workers``) with the limits a load test must lift
(OTP resend limits: every simulated patient comes from 127.0.0.1; booking lead time 0 and a wide join window, so
a patient checks in right after booking), then runs ``locust --headless`` for the fixed time while sampling the
server's CPU from /proc. Writes to ``--out`` (default ``.lienthong/load/<scenario>-<time>``):

* ``locust_stats.csv``, ``locust_failures.csv``, ``locust_stats_history.csv``, ``report.html``: Locust's own;
* ``summary.md``: req/s and p50/p95/p99 per endpoint, unexpected failures apart from expected outcomes (a 409 for
  a slot taken a moment earlier), server CPU % and CPU ms per request; also printed.

Keep runs on a 2-core machine short and small: Locust's client and the server share the cores.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import csv
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from api import db
from load_tests import datagen
from load_tests.harness import Platform, platform, process_tree_cpu_s, server
from notifications.sms_sandbox import SmsSandbox

ROOT = Path(__file__).resolve().parent.parent
LOCUSTFILES = Path(__file__).resolve().parent / "locustfiles"
SCENARIOS = ("consultation", "prescription", "mixed")
SCALES = ("tiny", "small", "full")
SMS_SECRET = "load-secret"  # noqa: S105 - the loopback SMS sandbox's credential for this run

# What a load test lifts: all users share 127.0.0.1 and sign in far more often than people do; slots are booked
# minutes ahead and checked into at once; a TOTP slip must not lock a doctor out for the rest of the run.
LOAD_ENV = {
    "LIENTHONG_OTP_PER_IP_PER_MINUTE": "1000000", "LIENTHONG_OTP_PER_IP_PER_HOUR": "1000000",
    "LIENTHONG_OTP_PER_PHONE_PER_MINUTE": "1000", "LIENTHONG_OTP_PER_PHONE_PER_HOUR": "100000",
    "LIENTHONG_BOOKING_LEAD_MIN": "0", "LIENTHONG_JOIN_OPEN_BEFORE_MIN": str(5 * 24 * 60),
    "LIENTHONG_STAFF_MAX_FAILED_LOGINS": "1000",
    "LIENTHONG_RUN_WORKER": "false", "LIENTHONG_RUN_DISPATCHER": "false",
    "LIENTHONG_DB_POOL_MAX": "20", "LIENTHONG_LOG_LEVEL": "WARNING",
}

async def _totp_steps(plat: Platform) -> dict[str, int]:
    """The last TOTP step each staff account has used, so the load test never replays one."""
    pool = await db.create_pool(plat.target, plat.settings)
    try:
        rows = await pool.fetch("SELECT username, totp_last_step FROM accounts WHERE username IS NOT NULL")
    finally:
        await pool.close()
    return {r["username"]: int(r["totp_last_step"]) for r in rows}


# ------------------------------------------------------------------------------------------------- running


@dataclass
class Prepared:
    plat: Platform
    url: str
    pid: int
    sms_url: str
    manifest_path: Path
    seeded_by: str  # "load_tests.datagen (small)"

    @property
    def state_path(self) -> Path:
        """Staff TOTP steps and sessions, carried from one run to the next against this platform."""
        return self.manifest_path.with_name("staff-state.json")


@contextlib.contextmanager
def prepared(scale: str = "tiny", workers: int = 1, work_dir: Path | None = None) -> Iterator[Prepared]:
    """A fresh platform, seeded, with the SMS sandbox and the API up under the load settings."""
    started = time.monotonic()
    with platform() as plat, SmsSandbox(api_key="load-key", secret_key=SMS_SECRET) as sms:
        manifest_path = (work_dir or plat.settings.data_dir) / "manifest.json"
        manifest_path.parent.mkdir(parents=True, exist_ok=True)
        manifest_path.with_name("staff-state.json").unlink(missing_ok=True)  # sessions of another platform
        asyncio.run(datagen.generate(plat.target, plat.settings, datagen.SCALES[scale], manifest_path,
                                     progress=True))
        seeded_by = f"load_tests.datagen ({scale})"
        env = {**plat.env, **LOAD_ENV, "SMS_GATEWAY_URL": sms.base_url, "SMS_API_KEY": "load-key",
               "SMS_SECRET_KEY": SMS_SECRET}
        with server(env, workers=workers) as running:
            print(f"platform ready in {time.monotonic() - started:.1f} s: {running.url}, seeded by {seeded_by}",
                  flush=True)
            yield Prepared(plat, running.url, running.process.pid, sms.base_url, manifest_path, seeded_by)


class CpuSampler:
    """The server's process tree CPU time, sampled once a second from /proc while the load runs."""

    def __init__(self, pid: int, interval_s: float = 1.0) -> None:
        self.pid = pid
        self.interval_s = interval_s
        self.samples: list[tuple[float, float]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while True:
            self.samples.append((time.monotonic(), process_tree_cpu_s(self.pid)))
            if self._stop.wait(self.interval_s):
                self.samples.append((time.monotonic(), process_tree_cpu_s(self.pid)))
                return

    def __enter__(self) -> CpuSampler:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def cpu_s(self) -> float:
        return self.samples[-1][1] - self.samples[0][1] if len(self.samples) > 1 else 0.0

    @property
    def wall_s(self) -> float:
        return self.samples[-1][0] - self.samples[0][0] if len(self.samples) > 1 else 0.0

    @property
    def peak_pct(self) -> float:
        steps = [(c2 - c1) / (t2 - t1) * 100 for (t1, c1), (t2, c2) in zip(self.samples, self.samples[1:],
                                                                          strict=False) if t2 > t1]
        return max(steps, default=0.0)


@dataclass
class Endpoint:
    type: str
    name: str
    requests: int
    failures: int
    rps: float
    p50: float
    p95: float
    p99: float
    max: float

    @property
    def expected(self) -> bool:
        return "[4" in self.name  # e.g. "POST /consultations [409 slot taken]": a correct outcome under load


@dataclass
class LoadResult:
    scenario: str
    out: Path
    endpoints: list[Endpoint]
    total: Endpoint | None
    failures: list[dict[str, str]]
    exceptions: list[dict[str, str]]  # errors raised in the locustfiles' own code
    cpu_s: float
    wall_s: float
    cpu_peak_pct: float
    locust_exit: int
    seeded_by: str
    settings: dict[str, Any] = field(default_factory=dict)

    def count(self, name: str) -> int:
        return sum(e.requests for e in self.endpoints if e.name == name)

    @property
    def unexpected_failures(self) -> int:
        return sum(e.failures for e in self.endpoints) + sum(int(x.get("Count") or 0) for x in self.exceptions)

    @property
    def expected_outcomes(self) -> int:
        return sum(e.requests for e in self.endpoints if e.expected)


def _num(value: str) -> float:
    try:
        return float(value)
    except ValueError:
        return float("nan")


def _final(out: Path, what: str) -> Path:
    """The statistics the locustfiles write once everything has stopped, else Locust's own (a second behind)."""
    final = out / f"locust_final_{what}.csv"
    return final if final.exists() else out / f"locust_{what}.csv"


def _read_stats(out: Path) -> tuple[list[Endpoint], Endpoint | None, list[dict[str, str]], list[dict[str, str]]]:
    endpoints, total = [], None
    stats = _final(out, "stats")
    if stats.exists():
        with stats.open(newline="") as f:
            for row in csv.DictReader(f):
                e = Endpoint(row["Type"], row["Name"], int(row["Request Count"]), int(row["Failure Count"]),
                             _num(row["Requests/s"]), _num(row["50%"]), _num(row["95%"]), _num(row["99%"]),
                             _num(row["Max Response Time"]))
                if row["Name"] == "Aggregated":
                    total = e
                else:
                    endpoints.append(e)
    return endpoints, total, _rows(_final(out, "failures")), _rows(_final(out, "exceptions"))


def _rows(path: Path) -> list[dict[str, str]]:
    if not path.exists():
        return []
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def run_locust(prep: Prepared, scenario: str, users: int, spawn_rate: float, duration: str, out: Path,
               *, quiet: bool = False) -> LoadResult:
    """Run one headless Locust load test against an already prepared platform; write and return its report."""
    if scenario not in SCENARIOS:
        raise ValueError(f"scenario must be one of {SCENARIOS}")
    out.mkdir(parents=True, exist_ok=True)
    # the platform's staff TOTP steps (and sessions of earlier runs against it), so no run replays a step
    totp_state = prep.state_path
    state = json.loads(totp_state.read_text()) if totp_state.exists() else {}
    steps = asyncio.run(_totp_steps(prep.plat))
    for username, step in state.get("steps", {}).items():
        steps[username] = max(step, steps.get(username, step))
    totp_state.write_text(json.dumps({**state, "steps": steps}))
    env = {**os.environ, "LIENTHONG_LOAD_MANIFEST": str(prep.manifest_path), "LIENTHONG_LOAD_SMS_URL": prep.sms_url,
           "LIENTHONG_LOAD_TOTP_STATE": str(totp_state),
           "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)}
    command = [sys.executable, "-m", "locust", "-f", str(LOCUSTFILES / f"{scenario}.py"), "--headless",
               "--users", str(users), "--spawn-rate", str(spawn_rate), "--run-time", duration,
               "--host", prep.url, "--csv", str(out / "locust"), "--csv-full-history", "--html",
               str(out / "report.html"), "--stop-timeout", "10", "--loglevel", "WARNING"]
    if quiet:
        command.append("--only-summary")
    with CpuSampler(prep.pid) as cpu:
        finished = subprocess.run(command, env=env, cwd=ROOT, check=False,
                                  stdout=subprocess.DEVNULL if quiet else None)
    endpoints, total, failures, exceptions = _read_stats(out)
    result = LoadResult(scenario, out, endpoints, total, failures, exceptions, cpu.cpu_s, cpu.wall_s,
                        cpu.peak_pct, finished.returncode, prep.seeded_by,
                        {"users": users, "spawn_rate": spawn_rate, "duration": duration})
    (out / "summary.md").write_text(summary(result))
    return result


def summary(r: LoadResult) -> str:
    total_requests = r.total.requests if r.total else 0
    rps = r.total.rps if r.total else 0.0
    lines = [
        f"# Load test: {r.scenario}",
        "",
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC · {r.settings.get('users')} users "
        f"(spawn {r.settings.get('spawn_rate')}/s) for {r.settings.get('duration')} · data: {r.seeded_by} · "
        f"Locust exit code {r.locust_exit}",
        "",
        f"- **Throughput**: {total_requests} requests, {rps:.1f} req/s",
        f"- **Unexpected failures**: {r.unexpected_failures}"
        + (f" ({r.unexpected_failures / total_requests:.2%})" if total_requests else ""),
        f"- **Expected outcomes** (correct under contention, e.g. 409 slot taken): {r.expected_outcomes}",
        f"- **Server CPU**: {r.cpu_s:.1f} s over {r.wall_s:.0f} s = {r.cpu_s / r.wall_s * 100 if r.wall_s else 0:.0f}% "
        f"average of one core (peak {r.cpu_peak_pct:.0f}% in a 1 s sample); "
        f"{r.cpu_s * 1000 / total_requests if total_requests else 0:.2f} CPU ms per request",
        "",
        "| type | endpoint | requests | failures | req/s | p50 ms | p95 ms | p99 ms | max ms |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for e in sorted(r.endpoints, key=lambda e: (e.type != "WS", e.name)):
        lines.append(f"| {e.type} | {e.name} | {e.requests} | {e.failures} | {e.rps:.2f} | {e.p50:.0f} | {e.p95:.0f} "
                     f"| {e.p99:.0f} | {e.max:.0f} |")
    if r.total:
        t = r.total
        lines.append(f"| | **all** | {t.requests} | {t.failures} | {t.rps:.2f} | {t.p50:.0f} | {t.p95:.0f} | "
                     f"{t.p99:.0f} | {t.max:.0f} |")
    if r.failures:
        lines += ["", "## Failures", "", "| endpoint | error | count |", "| --- | --- | ---: |"]
        lines += [f"| {f.get('Method', '')} {f.get('Name', '')} | {f.get('Error', '')[:160]} | "
                  f"{f.get('Occurrences', '')} |" for f in r.failures]
    if r.exceptions:
        lines += ["", "## Errors in the locustfiles", "", "| count | error |", "| ---: | --- |"]
        lines += [f"| {x.get('Count', '')} | {x.get('Message', '')[:200]} |" for x in r.exceptions]
    lines += ["", "Percentiles are Locust's (rounded buckets); WS rows are WebSocket exchanges (see "
              "load_tests/locustfiles/signaling.py). Server CPU is the uvicorn process tree's user+system time.",
              f"Files: {r.out}/locust_stats.csv, locust_failures.csv, locust_stats_history.csv, report.html.", ""]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scenario", choices=SCENARIOS, required=True)
    parser.add_argument("--users", type=int, default=8)
    parser.add_argument("--spawn-rate", type=float, default=4)
    parser.add_argument("--duration", default="60s", help="Locust --run-time, e.g. 30s, 2m")
    parser.add_argument("--scale", choices=SCALES, default="tiny", help="load_tests.datagen preset")
    parser.add_argument("--workers", type=int, choices=(1, 2), default=1, help="uvicorn worker processes")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    out = (args.out or ROOT / ".lienthong" / "load" / f"{args.scenario}-{date.today():%Y%m%d}-"
           f"{datetime.now():%H%M%S}").resolve()
    with prepared(args.scale, args.workers, out) as prep:
        result = run_locust(prep, args.scenario, args.users, args.spawn_rate, args.duration, out)
    print()
    print((out / "summary.md").read_text())
    sys.exit(1 if result.unexpected_failures or not result.total else 0)


if __name__ == "__main__":
    main()
