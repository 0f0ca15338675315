"""Signaling benchmark: relay latency p50/p99 and messages/s for one pair of participants on one API process and
across two processes (LISTEN/NOTIFY, and the outbox for frames over NOTIFY's limit), and join → first decoded
video frame for two aiortc peers at 640×480 (median of 5).

    python -m load_tests.bench_signaling [--messages 1000] [--calls 5]

Baselines from the same run: the ping → pong round trip on one socket (the server's floor: parse, answer, no
relay), and the one-process relay for the cross-process figures. The servers lift the per-socket rate limit
(50 frames/s in production), or the limiter is all one would measure.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from uuid import UUID

import asyncpg
import httpx
from litestar import Litestar
from websockets.asyncio.client import ClientConnection, connect

from api import db
from api.app import create_app
from api.auth.principal import Principal, issue_access_token
from load_tests.harness import Platform, free_port, percentile, platform
from load_tests.peers import Peer, pattern_frames, use_loopback_candidates

CANDIDATE = "candidate:842163049 1 udp 1677729535 113.161.{seq} 58412 typ srflx raddr 0.0.0.0 rport 0 generation 0"


def unthrottled_app() -> Litestar:
    """The real app with the per-socket rate limit lifted once the hub has started (uvicorn --factory)."""
    app = create_app()

    def lift(app: Litestar) -> None:
        app.state.rtc_hub.rate_per_s = app.state.rtc_hub.burst = 1e9

    app.on_startup.append(lift)
    return app


@contextlib.contextmanager
def api_process(env: dict[str, str]) -> Iterator[str]:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "--factory", "load_tests.bench_signaling:unthrottled_app", "--host",
         "127.0.0.1", "--port", str(port), "--log-level", "warning", "--no-access-log", "--ws-max-size",
         str(2**20)], env=env)
    base_url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{base_url}/health/ready", timeout=1).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise TimeoutError("API did not become ready")
            time.sleep(0.1)
        yield base_url
    finally:
        process.terminate()
        process.wait(15)


class Bench:
    def __init__(self, plat: Platform, pool: asyncpg.Pool) -> None:
        self.plat = plat
        self.pool = pool
        self.slot = 0
        self.doctor_access = ""
        self.patient_access = ""

    async def prepare(self) -> None:
        doctor = await self.pool.fetchrow(
            "SELECT a.id, d.facility_id FROM accounts a JOIN doctors d ON d.account_id = a.id "
            "WHERE username = 'bs.lan'")
        patient = await self.pool.fetchrow(
            "SELECT a.id, p.id AS pid FROM accounts a JOIN patients p ON p.account_id = a.id "
            "WHERE phone = '+84912345678'")
        assert doctor is not None and patient is not None
        self.doctor_id, self.patient_account, self.patient_id = doctor["id"], patient["id"], patient["pid"]
        self.doctor_access = issue_access_token(
            Principal(account_id=doctor["id"], role="doctor", facility_id=doctor["facility_id"]), self.plat.settings,
            ttl_s=3600)
        self.patient_access = issue_access_token(
            Principal(account_id=patient["id"], role="patient", patient_id=patient["pid"]), self.plat.settings,
            ttl_s=3600)

    async def consultation(self) -> UUID:
        """A booking of its own (one-minute slots, all inside the join window), as booking would leave it."""
        self.slot += 1
        start = datetime.now(UTC) + timedelta(minutes=self.slot)
        consultation_id: UUID = await self.pool.fetchval(
            """INSERT INTO consultations (doctor_id, patient_id, booked_by, slot, reason, fee_vnd)
               VALUES ($1, $2, $3, tstzrange($4::timestamptz, $4::timestamptz + interval '1 minute'), 'bench', 0)
               RETURNING id""",
            self.doctor_id, self.patient_id, self.patient_account, start)
        return consultation_id

    async def token(self, base_url: str, access: str, consultation_id: UUID) -> str:
        async with httpx.AsyncClient(base_url=base_url) as http:
            response = await http.post(f"/consultations/{consultation_id}/join-token",
                                       headers={"Authorization": f"Bearer {access}"})
        response.raise_for_status()
        token: str = response.json()["token"]
        return token

    async def pair(self, doctor_url: str, patient_url: str) -> tuple[ClientConnection, ClientConnection]:
        consultation_id = await self.consultation()
        sockets = []
        for base_url, access in ((doctor_url, self.doctor_access), (patient_url, self.patient_access)):
            ws = await connect(f"{base_url.replace('http', 'ws')}/ws/consultations/{consultation_id}", max_size=2**21)
            await ws.send(json.dumps({"type": "join", "token": await self.token(base_url, access, consultation_id)}))
            assert json.loads(await ws.recv())["type"] == "joined"
            sockets.append(ws)
        assert json.loads(await sockets[0].recv())["type"] == "peer-joined"
        return sockets[0], sockets[1]


async def ping_rtt(ws: ClientConnection, count: int) -> list[float]:
    rtts = []
    for _ in range(count):
        started = time.perf_counter()
        await ws.send('{"type":"ping"}')
        await ws.recv()
        rtts.append(time.perf_counter() - started)
    return rtts


async def one_way(sender: ClientConnection, receiver: ClientConnection, count: int, frame: str) -> list[float]:
    """One frame in flight at a time: latency without queueing."""
    latencies = []
    for _ in range(count):
        started = time.perf_counter()
        await sender.send(frame)
        await receiver.recv()
        latencies.append(time.perf_counter() - started)
    return latencies


async def throughput(sender: ClientConnection, receiver: ClientConnection, count: int) -> float:
    """Messages per second relayed when the sender sends as fast as it can."""

    async def drain() -> None:
        for _ in range(count):
            await receiver.recv()

    frames = [json.dumps({"type": "ice-candidate", "candidate": CANDIDATE.format(seq=f"{i % 250}.{i // 250}"),
                          "sdpMid": "0", "sdpMLineIndex": 0}) for i in range(count)]
    draining = asyncio.create_task(drain())
    started = time.perf_counter()
    for frame in frames:
        await sender.send(frame)
    await draining
    return count / (time.perf_counter() - started)


def line(label: str, latencies: list[float], baseline_p50: float | None = None, note: str = "") -> float:
    p50 = percentile(latencies, 50) * 1000
    ratio = f"   ×{p50 / baseline_p50:5.2f} of {note}" if baseline_p50 else ""
    print(f"  {label:<44} p50 {p50:6.2f} ms   p99 {percentile(latencies, 99) * 1000:6.2f} ms{ratio}")
    return p50


async def relay_figures(bench: Bench, first: str, second: str, messages: int) -> None:
    candidate = json.dumps({"type": "ice-candidate", "candidate": CANDIDATE.format(seq="7.7"), "sdpMid": "0",
                            "sdpMLineIndex": 0})
    offer = json.dumps({"type": "offer", "sdp": "v=0\r\n" + "a=candidate:1 1 udp 2122260223 10.0.0.1 50000 typ host"
                                                           "\r\n" * 200})  # ~11 KB, past NOTIFY's limit
    print(f"\nRelay, {messages} frames each ({len(candidate)} B ICE candidates; big offer {len(offer) // 1024} KB):")
    same_doctor, same_patient = await bench.pair(first, first)
    cross_doctor, cross_patient = await bench.pair(first, second)
    try:
        await ping_rtt(same_patient, 100)  # warm-up
        await one_way(same_patient, same_doctor, 100, candidate)
        await one_way(cross_patient, cross_doctor, 100, candidate)
        ping = line("baseline: ping → pong round trip, one socket", await ping_rtt(same_patient, messages))
        same = line("relay, both on one process", await one_way(same_patient, same_doctor, messages, candidate), ping,
                    "ping RTT")
        line("relay, across two processes (NOTIFY inline)",
             await one_way(cross_patient, cross_doctor, messages, candidate), same, "one process")
        big = line("big offer, one process", await one_way(same_patient, same_doctor, messages // 5, offer))
        line("big offer, across two processes (outbox)",
             await one_way(cross_patient, cross_doctor, messages // 5, offer), big, "one process")
        same_rate = await throughput(same_patient, same_doctor, messages * 5)
        cross_rate = await throughput(cross_patient, cross_doctor, messages * 5)
        print(f"  {'messages/s, one process':<44} {same_rate:8.0f}")
        print(f"  {'messages/s, across two processes':<44} {cross_rate:8.0f}   ×{cross_rate / same_rate:5.2f} of "
              f"one process")
    finally:
        for ws in (same_doctor, same_patient, cross_doctor, cross_patient):
            await ws.close()


async def call_figures(bench: Bench, doctor_url: str, patient_url: str, calls: int, label: str) -> list[float]:
    frames = pattern_frames()
    firsts: list[float] = []
    for _ in range(calls):
        consultation_id = await bench.consultation()
        doctor = Peer(f"{doctor_url.replace('http', 'ws')}/ws/consultations/{consultation_id}",
                      await bench.token(doctor_url, bench.doctor_access, consultation_id), frames, ice_servers=[])
        patient = Peer(f"{patient_url.replace('http', 'ws')}/ws/consultations/{consultation_id}",
                       await bench.token(patient_url, bench.patient_access, consultation_id), frames, ice_servers=[])
        try:
            await doctor.join()
            joined_at = time.monotonic()
            await patient.join()
            async with asyncio.timeout(30):
                await asyncio.gather(doctor.media_flowing.wait(), patient.media_flowing.wait())
            firsts += [1000 * (p.first_frame_at["video"] - joined_at) for p in (doctor, patient)]
        finally:
            await patient.close()
            await doctor.close()
    print(f"  {label:<44} median {statistics.median(firsts):6.1f} ms   "
          f"range {min(firsts):.0f}–{max(firsts):.0f} ms   ({calls} calls, both directions)")
    return firsts


async def run(plat: Platform, first: str, second: str, messages: int, calls: int) -> None:
    pool = await db.create_pool(plat.target, plat.settings)
    try:
        bench = Bench(plat, pool)
        await bench.prepare()
        await relay_figures(bench, first, second, messages)
        print("\nJoin → first decoded video frame (patient joins, doctor waiting; VP8 640×480, loopback):")
        use_loopback_candidates()
        same = statistics.median(await call_figures(bench, first, first, calls, "both peers on one process"))
        cross = await call_figures(bench, first, second, calls, "peers on two processes")
        print(f"  {'two processes vs one':<44} ×{statistics.median(cross) / same:5.2f}")
    finally:
        await pool.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=1000)
    parser.add_argument("--calls", type=int, default=5)
    args = parser.parse_args()
    started = time.monotonic()
    with platform() as plat, api_process(plat.env) as first, api_process(plat.env) as second:
        print(f"Embedded PostgreSQL + 2 API processes ready in {time.monotonic() - started:.1f} s")
        asyncio.run(run(plat, first, second, args.messages, args.calls))


if __name__ == "__main__":
    main()
