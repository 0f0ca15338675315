"""What the fault tests share: an embedded PostgreSQL cluster of their own (so it can be stopped and started without
touching the session's), the real app or worker as separate processes, and polling helpers."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg

from api import db, embedded_pg
from api.settings import Settings, with_overrides
from tests.conftest import free_port, server_env, test_settings, wait_until_ready

LONG = os.environ.get("LIENTHONG_LONG_TESTS") == "1"
STALL_S = 4.0  # how long a stalled provider answer takes: a process is killed well within it


@dataclass
class OwnCluster:
    """An embedded cluster in a temporary folder, stopped and started again on the same port (as an operator's
    restart or a crash-restart of PostgreSQL would be)."""

    base: Path
    cluster: embedded_pg.EmbeddedCluster

    @property
    def target(self) -> db.DatabaseTarget:
        return db.DatabaseTarget(self.cluster.app_dsn(), self.cluster.admin_dsn(), None)

    def stop(self, mode: str = "fast") -> None:
        """``fast`` disconnects every session and checkpoints; ``immediate`` is a crash (recovery at start)."""
        self._pg_ctl("-m", mode, "stop")

    def start(self) -> None:
        options = f"-p {self.cluster.port} -h 127.0.0.1 -k '' -c max_connections=200"
        self._pg_ctl("-l", str(self.cluster.pgdata / "server.log"), "-o", options, "start")

    def _pg_ctl(self, *args: str) -> None:
        command = [str(embedded_pg.POSTGRES_BIN_PATH / "pg_ctl"), "-D", str(self.cluster.pgdata), "-w", "-t", "60",
                   *args]
        user = embedded_pg._os_user()  # postgres runs as an unprivileged OS user when the tests run as root
        subprocess.run(command, user=user.pw_uid if user else None, group=user.pw_gid if user else None,
                       check=True, capture_output=True, timeout=90,
                       env={**os.environ, "LC_ALL": "C.UTF-8", "LANG": "C.UTF-8"})


@contextlib.contextmanager
def own_cluster() -> Iterator[OwnCluster]:
    """A fresh durable cluster (fsync on, like a deployment), migrated; removed afterwards."""
    base = Path(tempfile.mkdtemp(prefix="lienthong-faults-"))
    cluster = embedded_pg.ensure_running(base)
    try:
        asyncio.run(db.migrate(cluster.admin_dsn()))
        yield OwnCluster(base, cluster)
    finally:
        with contextlib.suppress(RuntimeError, subprocess.SubprocessError):
            embedded_pg.stop(base)
        shutil.rmtree(base, ignore_errors=True)


def settings_for(cluster: OwnCluster, data_dir: Path, **overrides: object) -> Settings:
    return with_overrides(test_settings(cluster.cluster.app_dsn(), "http://127.0.0.1:9", data_dir), **overrides)


@dataclass
class AppProcess:
    """``uvicorn api.app:create_app`` in its own process, as deployed."""

    process: subprocess.Popen[bytes]
    base_url: str

    def signal(self, sig: signal.Signals) -> None:
        if self.process.poll() is None:
            os.kill(self.process.pid, sig)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_app(settings: Settings, *, port: int | None = None, extra_args: tuple[str, ...] = (),
              log_file: Path | None = None, **env: str) -> AppProcess:
    port = port or free_port()
    out = open(log_file, "ab") if log_file else subprocess.DEVNULL  # noqa: SIM115 - handed to the child
    process = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "--factory", "api.app:create_app", "--host", "127.0.0.1",
         "--port", str(port), "--log-level", "warning", "--ws-max-size", str(2**20), *extra_args],
        env=server_env(settings, **env), stdout=out, stderr=out)
    running = AppProcess(process, f"http://127.0.0.1:{port}")
    try:
        wait_until_ready(running.base_url, process, timeout_s=60)
    except BaseException:
        running.stop()
        raise
    return running


@contextlib.contextmanager
def app_process(settings: Settings, **kwargs: object) -> Iterator[AppProcess]:
    running = start_app(settings, **kwargs)  # type: ignore[arg-type]
    try:
        yield running
    finally:
        running.stop()


async def wait_for(condition: Callable[[], bool], timeout_s: float, what: str, every_s: float = 0.05) -> float:
    """Poll ``condition`` until true; return the seconds it took."""
    started = time.monotonic()
    while time.monotonic() - started < timeout_s:
        if condition():
            return time.monotonic() - started
        await asyncio.sleep(every_s)
    raise TimeoutError(f"waited {timeout_s} s for {what}")


@contextlib.asynccontextmanager
async def app_pool(target: db.DatabaseTarget, settings: Settings) -> AsyncIterator[asyncpg.Pool]:
    pool = await db.create_pool(target, settings)
    try:
        yield pool
    finally:
        await pool.close()


# ---- worker and dispatcher processes (lienthong CLI) killed and restarted

async def _spawn_cli(command: str, env: dict[str, str]) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(sys.executable, "-m", "api.cli", command, env=env,
                                                stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)


async def kill_when(command: str, env: dict[str, str], reached: Callable[[], bool], what: str, *,
                    settle_s: float = 0.0) -> None:
    """Start ``lienthong <command>`` and SIGKILL it once ``reached()`` holds (and ``settle_s`` more): with one call
    made to stall beforehand, the process dies in the middle of a batch."""
    process = await _spawn_cli(command, env)
    try:
        await wait_for(reached, 60, what)
        await asyncio.sleep(settle_s)
        os.kill(process.pid, signal.SIGKILL)
        await asyncio.wait_for(process.wait(), 10)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def run_until_sent(command: str, env: dict[str, str], pool: asyncpg.Pool, table: str, rows: int) -> None:
    """Start ``lienthong <command>`` again and stop it gracefully once every row of ``table`` is sent."""
    process = await _spawn_cli(command, env)
    try:
        await all_sent(pool, table, rows)
    finally:
        process.terminate()
        await asyncio.wait_for(process.wait(), 15)


async def outbox_statuses(pool: asyncpg.Pool, table: str) -> Counter[str]:
    return Counter(dict(await pool.fetch(f"SELECT status, count(*) FROM {table} GROUP BY status")))  # noqa: S608


async def all_sent(pool: asyncpg.Pool, table: str, rows: int, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if (await outbox_statuses(pool, table))["sent"] >= rows:
            return
        await asyncio.sleep(0.1)
    raise TimeoutError(f"{table}: not every row was sent within {timeout_s} s: {await outbox_statuses(pool, table)}")
