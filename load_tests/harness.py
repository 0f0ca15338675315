"""A throw-away platform for benchmarks: embedded PostgreSQL in a temp dir, migrated and seeded, and the API
served by uvicorn in its own process(es) on free loopback ports. Nothing outside 127.0.0.1 is touched."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import secrets
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx

from api import db, embedded_pg
from api.demo import seed_demo
from api.settings import Settings


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass(frozen=True)
class Platform:
    settings: Settings
    target: db.DatabaseTarget
    env: dict[str, str]

    def postgres_cpu_s(self) -> float:
        """CPU used so far by the embedded PostgreSQL: the postmaster and its live backends (pooled connections
        stay open through a measurement, so their time is all counted)."""
        pid = int((self.settings.data_dir / "pgdata" / "postmaster.pid").read_text().split()[0])
        return process_tree_cpu_s(pid)


@contextlib.contextmanager
def platform() -> Iterator[Platform]:
    """Embedded PostgreSQL (durable settings, like a real deployment), migrated, with demo data."""
    base = Path(tempfile.mkdtemp(prefix="lienthong-bench-"))
    cluster = embedded_pg.ensure_running(base)
    try:
        settings = Settings(mode="demo", database_url=cluster.app_dsn(), data_dir=base,
                            jwt_secret=secrets.token_urlsafe(48), data_key=secrets.token_bytes(32),
                            otp_pepper=secrets.token_bytes(32), sms_gateway_url="http://127.0.0.1:9",
                            run_worker=False)
        target = db.DatabaseTarget(cluster.app_dsn(), cluster.admin_dsn(), None)

        async def prepare() -> None:
            await db.migrate(target.admin_dsn)
            pool = await db.create_pool(target, settings)
            try:
                await seed_demo(pool, settings)
            finally:
                await pool.close()

        asyncio.run(prepare())
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("LIENTHONG_", "SMS_", "NATIONAL_RX_", "FCM_", "VNPAY_", "DATABASE_URL"))}
        env.update({
            "LIENTHONG_MODE": "demo", "DATABASE_URL": cluster.app_dsn(), "LIENTHONG_DATA_DIR": str(base),
            "LIENTHONG_JWT_SECRET": settings.jwt_secret,
            "LIENTHONG_DATA_KEY": base64.b64encode(settings.data_key).decode(),
            "LIENTHONG_OTP_PEPPER": base64.b64encode(settings.otp_pepper).decode(),
            "SMS_GATEWAY_URL": "http://127.0.0.1:9", "LIENTHONG_RUN_WORKER": "false",
            # benchmarks measure request handling; the dispatcher's cost is measured by bench_notifications
            "LIENTHONG_RUN_DISPATCHER": "false",
            "LIENTHONG_DB_POOL_MAX": "20", "LIENTHONG_LOG_LEVEL": "WARNING",
        })
        yield Platform(settings, target, env)
    finally:
        embedded_pg.stop(base)
        shutil.rmtree(base, ignore_errors=True)


@dataclass(frozen=True)
class Server:
    url: str
    port: int
    process: subprocess.Popen[bytes]

    def cpu_s(self) -> float:
        """CPU seconds used so far by the server and its worker processes (Linux /proc)."""
        return process_tree_cpu_s(self.process.pid)


def process_tree_cpu_s(pid: int) -> float:
    tick = os.sysconf("SC_CLK_TCK")
    total, pending = 0.0, [pid]
    while pending:
        current = pending.pop()
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{current}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick
            for task in Path(f"/proc/{current}/task").iterdir():
                pending += [int(child) for child in (task / "children").read_text().split()]
    return total


@contextlib.contextmanager
def server(env: dict[str, str], factory: str = "api.app:create_app", workers: int = 1,
           ready_path: str = "/health/ready") -> Iterator[Server]:
    """An ASGI app factory served by uvicorn in its own process(es) on a free loopback port, once it answers."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "--factory", factory, "--host", "127.0.0.1", "--port",
         str(port), "--workers", str(workers), "--log-level", "warning", "--no-access-log"], env=env)
    base_url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{base_url}{ready_path}", timeout=1).status_code == 200:
                    break
            time.sleep(0.1)
        else:
            raise TimeoutError(f"{factory} did not become ready")
        yield Server(base_url, port, process)
    finally:
        process.terminate()
        process.wait(15)


@contextlib.contextmanager
def api_server(env: dict[str, str], workers: int = 1) -> Iterator[str]:
    with server(env, workers=workers) as running:
        yield running.url


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(pct / 100 * len(ordered)) - 1))
    return ordered[index]


def describe(label: str, latencies_s: list[float], wall_s: float, ok: int) -> dict[str, float]:
    figures = {
        "requests": len(latencies_s), "ok": ok, "req_per_s": len(latencies_s) / wall_s if wall_s else 0.0,
        "p50_ms": percentile(latencies_s, 50) * 1000, "p99_ms": percentile(latencies_s, 99) * 1000,
        "mean_ms": statistics.fmean(latencies_s) * 1000 if latencies_s else float("nan"),
    }
    print(f"{label:<34} {figures['req_per_s']:8.1f} req/s   p50 {figures['p50_ms']:7.2f} ms   "
          f"p99 {figures['p99_ms']:7.2f} ms   ok {ok}/{len(latencies_s)}")
    return figures
