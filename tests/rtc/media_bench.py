"""CPU cost of media-worker jobs and the pre-call echo's latency, measured against a real worker process.

    .venv/bin/python -m tests.rtc.media_bench [--runs 3] [--window 15]

Each run waits until the machine is idle (< 12 % CPU over 5 s), starts one job with aiortc test peers in this
process (640×480@30 VP8 + Opus), lets it warm up for 3 s and reports the worker's CPU-seconds per wall-second over
the window (rtc.md §4.1's method). The figures set PRECALL_COST_PCT and RECORDING_COST_PCT in rtc/media_worker.py.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import secrets
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import aioice.ice
import httpx

from rtc.media_schemas import worker_token
from tests.conftest import free_port
from tests.rtc.media_helpers import AppPeer, app_peer, cpu_seconds, wait_for

WARM_UP_S = 3.0


def _machine_busy_fraction(seconds: float) -> float:
    def sample() -> tuple[int, int]:
        values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
        return sum(values), values[3] + values[4]  # total, idle + iowait

    total0, idle0 = sample()
    time.sleep(seconds)
    total1, idle1 = sample()
    return 1 - (idle1 - idle0) / max(1, total1 - total0)


async def _wait_idle(deadline_s: float = 300) -> None:
    deadline = time.monotonic() + deadline_s
    while (busy := await asyncio.to_thread(_machine_busy_fraction, 5)) > 0.12:
        if time.monotonic() > deadline:
            print(f"  (machine still {busy:.0%} busy after {deadline_s:.0f} s; measuring anyway)")
            return


@asynccontextmanager
async def _worker() -> AsyncIterator[tuple[httpx.AsyncClient, int]]:
    secret = secrets.token_urlsafe(40)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LIENTHONG_", "DATABASE_URL"))}
    data_dir = tempfile.TemporaryDirectory(prefix="lienthong-bench-")  # recordings land here, ~0.5 MB/s
    env.update(LIENTHONG_DATA_DIR=data_dir.name, LIENTHONG_JWT_SECRET=secret,
               LIENTHONG_DATA_KEY=base64.b64encode(os.urandom(32)).decode(),
               LIENTHONG_OTP_PEPPER=base64.b64encode(os.urandom(32)).decode(), LIENTHONG_MEDIA_LOOPBACK_ONLY="true",
               LIENTHONG_MEDIA_CPU_BUDGET="1000", LIENTHONG_LOG_LEVEL="WARNING")
    process = await asyncio.create_subprocess_exec(sys.executable, "-m", "api.cli", "media-worker", "--port",
                                                   str(port), env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient(base_url=url, timeout=30,
                                     headers={"Authorization": f"Bearer {worker_token(secret)}"}) as http:
            async def up() -> bool:
                try:
                    return (await http.get("/health")).status_code == 200
                except httpx.TransportError:
                    return False

            await wait_for(up, 60, "the media worker", interval_s=0.1)
            yield http, process.pid
    finally:
        process.terminate()
        await process.wait()
        data_dir.cleanup()


async def _connect(http: httpx.AsyncClient, peer: AppPeer, path: str, body: dict[str, Any]) -> float:
    offer = await peer.offer()
    joined = time.monotonic()
    response = await http.post(path, json={**body, "sdp": offer["sdp"]})
    response.raise_for_status()
    await peer.accept({"type": "answer", "sdp": response.json()["sdp"]})
    await wait_for(lambda: peer.pc.connectionState == "connected", 15, "connection")
    return joined


Figures = Callable[[], dict[str, float]]  # read after the measuring window


async def precall(http: httpx.AsyncClient, stack: AsyncExitStack) -> Figures:
    peer = await stack.enter_async_context(app_peer())
    joined = await _connect(http, peer, "/precall", {"session_id": str(uuid.uuid4()), "max_duration_s": 120})
    await wait_for(lambda: "video" in peer.received and peer.received["video"].first.is_set(), 15, "echo")
    video = peer.received["video"]
    first_ms = (video.arrivals[0] - joined) * 1000

    def figures() -> dict[str, float]:
        latencies = sorted(a - peer.camera.sent_at[s] for a, s in zip(video.arrivals, video.stamps, strict=True)
                           if s in peer.camera.sent_at)
        return {"join→first echoed frame ms": first_ms, "echo latency p50 ms": latencies[len(latencies) // 2] * 1000,
                "echoed fps": len(video.arrivals) / (video.arrivals[-1] - video.arrivals[0])}

    return figures


def recording(streams: int) -> Callable[[httpx.AsyncClient, AsyncExitStack], Coroutine[Any, Any, Figures]]:
    async def run(http: httpx.AsyncClient, stack: AsyncExitStack) -> Figures:
        consultation = str(uuid.uuid4())
        for role in ("patient", "doctor")[:streams]:
            peer = await stack.enter_async_context(app_peer())
            await _connect(http, peer, "/recordings", {"recording_id": str(uuid.uuid4()), "consultation_id":
                                                       consultation, "role": role, "seq": 1, "max_duration_s": 600})
        return dict
    return run


async def main(runs: int, window_s: float) -> None:
    aioice.ice.get_host_addresses = lambda use_ipv4=True, use_ipv6=True: ["127.0.0.1"]
    scenarios = {"pre-call echo (1 session)": precall, "recording, 1 stream": recording(1),
                 "recording, 2 streams": recording(2)}
    for name, scenario in scenarios.items():
        figures: dict[str, list[float]] = {}
        for _ in range(runs):
            await _wait_idle()
            async with _worker() as (http, pid), AsyncExitStack() as stack:
                after_window = await scenario(http, stack)
                await asyncio.sleep(WARM_UP_S)
                cpu0, wall0 = cpu_seconds(pid), time.monotonic()
                await asyncio.sleep(window_s)
                share = (cpu_seconds(pid) - cpu0) / (time.monotonic() - wall0)
                figures.setdefault("worker CPU % of a core", []).append(share * 100)
                for key, value in after_window().items():
                    figures.setdefault(key, []).append(value)
        print(f"{name}:")
        for key, values in figures.items():
            print(f"  {key}: median {statistics.median(values):.0f} (runs: {', '.join(f'{v:.0f}' for v in values)})")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--window", type=float, default=15.0)
    arguments = parser.parse_args()
    asyncio.run(main(arguments.runs, arguments.window))
