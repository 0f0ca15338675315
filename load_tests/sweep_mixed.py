"""The mixed scenario at a rising number of users against one platform: throughput and p99 per step, as a table,
a CSV and a PNG plot (the README shows it).

    python -m load_tests.sweep_mixed [--users 5,20,40,80,160] [--duration 40s] [--scale small] [--workers 1]
                                     [--plot docs/load/mixed-sweep.png]

Each step is a full ``load_tests.run_load`` Locust run (its own CSV/HTML/summary under ``--out``/u<N>) against the
same seeded platform, so the steps differ only in the number of users. On a 2-core machine Locust's client shares
the cores with the server and PostgreSQL: where throughput stops rising, the machine (client included) is full,
which the server-CPU column shows.
"""

from __future__ import annotations

import argparse
import csv
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt

from load_tests.run_load import ROOT, LoadResult, prepared, run_locust

VERIFY = "POST /dispensing/verify"


@dataclass
class Step:
    users: int
    rps: float
    p50_ms: float
    p99_ms: float
    verify_p99_ms: float
    unexpected_failures: int
    server_cpu_pct: float

    @classmethod
    def of(cls, users: int, r: LoadResult) -> Step:
        assert r.total is not None, f"no requests at {users} users"
        verify = next((e for e in r.endpoints if e.name == VERIFY), None)
        return cls(users, r.total.rps, r.total.p50, r.total.p99, verify.p99 if verify else float("nan"),
                   r.unexpected_failures, r.cpu_s / r.wall_s * 100 if r.wall_s else 0.0)


def plot(steps: list[Step], title: str, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    users = [s.users for s in steps]
    fig, throughput = plt.subplots(figsize=(7.5, 4.2), dpi=110)
    throughput.plot(users, [s.rps for s in steps], "o-", color="#0b6e4f", label="throughput (req/s)")
    throughput.set_xlabel("simulated users (Locust)")
    throughput.set_ylabel("requests per second", color="#0b6e4f")
    throughput.set_ylim(bottom=0)
    latency = throughput.twinx()
    latency.plot(users, [s.p99_ms for s in steps], "s--", color="#b3261e", label="p99, all requests (ms)")
    latency.plot(users, [s.verify_p99_ms for s in steps], "^:", color="#7d5260", label="p99, verify (ms)")
    latency.set_ylabel("p99 latency (ms)", color="#b3261e")
    latency.set_ylim(bottom=0)
    lines = throughput.get_legend_handles_labels()[0] + latency.get_legend_handles_labels()[0]
    labels = throughput.get_legend_handles_labels()[1] + latency.get_legend_handles_labels()[1]
    throughput.legend(lines, labels, loc="upper left", fontsize=8)
    throughput.set_title(title, fontsize=10)
    throughput.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", default="5,20,40,80,160", help="comma-separated user counts, one run each")
    parser.add_argument("--duration", default="40s", help="Locust --run-time of each step")
    parser.add_argument("--scale", choices=("tiny", "small", "full"), default="small")
    parser.add_argument("--workers", type=int, choices=(1, 2), default=1)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--plot", type=Path, default=ROOT / "docs" / "load" / "mixed-sweep.png")
    args = parser.parse_args()
    counts = [int(n) for n in args.users.split(",")]
    out = (args.out or ROOT / ".lienthong" / "load" / f"sweep-{date.today():%Y%m%d}-{datetime.now():%H%M%S}").resolve()
    steps = []
    with prepared(args.scale, args.workers, out) as prep:
        for users in counts:
            result = run_locust(prep, "mixed", users, max(1.0, users / 4), args.duration, out / f"u{users}",
                                quiet=True)
            steps.append(step := Step.of(users, result))
            print(f"{users:>4} users  {step.rps:7.1f} req/s  p50 {step.p50_ms:5.0f} ms  p99 {step.p99_ms:6.0f} ms  "
                  f"verify p99 {step.verify_p99_ms:6.0f} ms  server CPU {step.server_cpu_pct:4.0f}% of a core  "
                  f"unexpected failures {step.unexpected_failures}", flush=True)
    with (out / "sweep.csv").open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["users", "req_per_s", "p50_ms", "p99_ms", "verify_p99_ms", "unexpected_failures",
                         "server_cpu_pct"])
        for s in steps:
            writer.writerow([s.users, f"{s.rps:.2f}", s.p50_ms, s.p99_ms, s.verify_p99_ms, s.unexpected_failures,
                             f"{s.server_cpu_pct:.0f}"])
    title = f"Mixed scenario, {args.scale} data, {args.workers} worker(s), {args.duration} per step, 2 cores"
    plot(steps, title, args.plot)
    print(f"\nCSV {out / 'sweep.csv'}; plot {args.plot}")


if __name__ == "__main__":
    main()
