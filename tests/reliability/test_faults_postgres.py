"""PostgreSQL stopped and started again under steady traffic: while it is down the API answers 503 problem documents
at once (no 500, no hang), it recovers by itself within 5 s of PostgreSQL's return, and every write it acknowledged
is in the database afterwards."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from api.settings import Settings
from tests.helpers import make_patients
from tests.reliability.fault_support import LONG, AppProcess, OwnCluster, app_pool, own_cluster, settings_for, start_app

CLIENTS = 4
REQUEST_TIMEOUT_S = 5.0  # a request answered later than this while the database is down counts as a hang
DOWN_S = 12.0 if LONG else 2.5
# fast: an operator's restart (sessions disconnected, checkpoint); immediate: a crash (WAL replayed at start)
STOP_MODES = ("fast", "immediate", "fast", "immediate") if LONG else ("fast", "immediate")
RECOVERY_LIMIT_S = 5.0


@dataclass
class Answer:
    started: float
    ended: float
    method: str
    status: int  # 0: no answer within REQUEST_TIMEOUT_S or the connection failed
    content_type: str
    body: dict[str, Any] | None
    retry_after: str | None


@dataclass
class Traffic:
    answers: list[Answer] = field(default_factory=list)
    acknowledged: dict[str, str] = field(default_factory=dict)  # dependent name -> id the API returned
    running: bool = True


async def _client(base_url: str, token: str, n: int, traffic: Traffic) -> None:
    """A patient app: adds a child (a multi-row write: patient, guardianship, audit), then reads its account."""
    headers = {"Authorization": f"Bearer {token}"}
    i = 0
    async with httpx.AsyncClient(base_url=base_url, headers=headers, timeout=REQUEST_TIMEOUT_S) as http:
        while traffic.running:
            i += 1
            name = f"Con Thu {n} {i}"
            child = {"full_name": name, "date_of_birth": f"2023-03-0{1 + i % 9}"}
            for method in ("POST", "GET"):
                started = time.monotonic()
                try:
                    response = await (http.post("/me/dependents", json=child) if method == "POST"
                                      else http.get("/me"))
                except httpx.HTTPError:
                    traffic.answers.append(Answer(started, time.monotonic(), method, 0, "", None, None))
                    continue
                ended = time.monotonic()
                ctype = response.headers.get("content-type", "")
                body = response.json() if "json" in ctype else None
                traffic.answers.append(Answer(started, ended, method, response.status_code, ctype, body,
                                              response.headers.get("retry-after")))
                if method == "POST" and response.status_code == 201:
                    traffic.acknowledged[name] = body["id"] if body else ""
            await asyncio.sleep(0.02)


@pytest.fixture(scope="module")
def cluster() -> Iterator[OwnCluster]:
    with own_cluster() as running:
        yield running


@pytest.fixture
def app_settings(cluster: OwnCluster, tmp_path: Path) -> Settings:
    return settings_for(cluster, tmp_path)


@pytest.fixture
def server(app_settings: Settings, tmp_path: Path) -> Iterator[AppProcess]:
    running = start_app(app_settings, log_file=tmp_path / "server.log")
    try:
        yield running
    finally:
        running.stop()


def _first_ok_after(answers: list[Answer], method: str, since: float) -> float | None:
    oks = [a.ended for a in answers if a.method == method and a.started >= since and 200 <= a.status < 300]
    return min(oks) if oks else None


async def test_postgres_restart_under_load_gives_503s_then_recovers_without_losing_acknowledged_writes(
        cluster: OwnCluster, app_settings: Settings, server: AppProcess) -> None:
    async with app_pool(cluster.target, app_settings) as pool:
        tokens = [p["access_token"] for p in await make_patients(pool, app_settings, CLIENTS)]
    traffic = Traffic()
    clients = [asyncio.create_task(_client(server.base_url, token, n, traffic)) for n, token in enumerate(tokens)]
    windows: list[tuple[float, float]] = []  # (database fully down, starting again) per round
    recoveries: list[float] = []
    async with httpx.AsyncClient(base_url=server.base_url, timeout=REQUEST_TIMEOUT_S) as probe:
        try:
            await asyncio.sleep(1.0)
            for mode in STOP_MODES:
                await asyncio.to_thread(cluster.stop, mode)
                down_at = time.monotonic()
                await asyncio.sleep(DOWN_S / 2)
                ready = await probe.get("/health/ready")
                assert ready.status_code == 503, ready.text
                assert ready.headers["content-type"].startswith("application/problem+json")
                assert ready.json()["type"] == "/problems/database-unavailable"
                assert int(ready.headers["retry-after"]) >= 1
                assert (await probe.get("/health/live")).status_code == 200  # the process itself is fine
                await asyncio.sleep(DOWN_S / 2)

                starting_at = time.monotonic()
                await asyncio.to_thread(cluster.start)
                back_at = time.monotonic()  # pg_ctl -w returns once PostgreSQL accepts connections
                windows.append((down_at, starting_at))
                while (await probe.get("/health/ready")).status_code != 200:
                    assert time.monotonic() - back_at < RECOVERY_LIMIT_S * 2, "never became ready again"
                    await asyncio.sleep(0.05)
                ready_after = time.monotonic() - back_at
                # watch past the 5 s limit: a failure after it would be a recovery that took too long
                await asyncio.sleep(max(0.0, back_at + RECOVERY_LIMIT_S + 1.0 - time.monotonic()))
                failed = [a.ended - back_at for a in traffic.answers
                          if a.started >= starting_at and not 200 <= a.status < 300]
                first_write = _first_ok_after(traffic.answers, "POST", back_at)
                first_read = _first_ok_after(traffic.answers, "GET", back_at)
                assert first_write is not None and first_read is not None, "no request succeeded after the restart"
                recovery = max([ready_after, *failed])
                print(f"\nPostgreSQL ({mode} stop) back after {DOWN_S:.1f} s down: ready in {ready_after:.3f} s, "
                      f"first write {first_write - back_at:.3f} s, first read {first_read - back_at:.3f} s, "
                      f"last failure {max(failed, default=0.0):.3f} s ({len(failed)} failed after the restart began)")
                recoveries.append(recovery)
        finally:
            traffic.running = False
            await asyncio.gather(*clients)

    # nothing is ever a 500, and nothing hangs
    assert not [a for a in traffic.answers if a.status >= 500 and a.status != 503], "a 5xx other than 503"
    assert not [a for a in traffic.answers if a.status == 0], "a request hung or lost its connection"
    assert max(a.ended - a.started for a in traffic.answers) < 3.0
    # while PostgreSQL is down: only 503 problem documents with a stable type and a Retry-After
    during = [a for a in traffic.answers for down, back in windows if a.started > down + 0.2 and a.ended < back]
    assert len(during) >= 10, "too little traffic reached the app while the database was down"
    for answer in during:
        assert answer.status == 503, (answer, windows)
        assert answer.content_type.startswith("application/problem+json")
        assert answer.body is not None and answer.body["type"] == "/problems/database-unavailable"
        assert answer.retry_after is not None and int(answer.retry_after) >= 1
    # back to normal by itself, for good, within 5 s of PostgreSQL's return
    assert max(recoveries) < RECOVERY_LIMIT_S
    last_second = [a for a in traffic.answers if a.started > windows[-1][1] + RECOVERY_LIMIT_S]
    assert last_second and all(200 <= a.status < 300 for a in last_second)

    # every write acknowledged with 2xx is in the database
    assert len(traffic.acknowledged) >= 20
    async with app_pool(cluster.target, app_settings) as pool:
        stored = dict(await pool.fetch(
            "SELECT full_name, id::text FROM patients WHERE full_name = ANY($1::text[])", list(traffic.acknowledged)))
    assert stored == traffic.acknowledged
    print(f"{len(traffic.answers)} requests, {len(during)} while down (all 503), {len(traffic.acknowledged)} "
          f"acknowledged writes all stored; recovery {max(recoveries):.3f} s")
