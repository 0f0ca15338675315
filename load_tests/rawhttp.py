"""A minimal asyncio HTTP/1.1 load client for raw server capacity: keep-alive connections, requests pre-encoded
as bytes, responses read by Content-Length. It spends a few microseconds per request where httpx spends hundreds,
so on a 2-core machine the server, not the client, is what is measured (Locust's client is the limit there)."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field


def request(method: str, path: str, *, host: str, body: bytes = b"", headers: dict[str, str] | None = None) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}", f"Content-Length: {len(body)}"]
    if body:
        lines.append("Content-Type: application/json")
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


@dataclass
class Result:
    latencies_s: list[float] = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)
    wall_s: float = 0.0


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = 0
    for line in head.split(b"\r\n")[1:]:
        if line[:15].lower() == b"content-length:":
            length = int(line[15:])
            break
    return status, (await reader.readexactly(length) if length else b"")


async def run(host: str, port: int, requests: Sequence[bytes], concurrency: int) -> Result:
    """Send every request once, ``concurrency`` at a time over as many keep-alive connections."""
    result = Result()
    items = iter(requests)

    async def connection() -> None:
        reader, writer = await asyncio.open_connection(host, port)
        try:
            for raw in items:
                started = time.perf_counter()
                writer.write(raw)
                status, _ = await _read_response(reader)
                result.latencies_s.append(time.perf_counter() - started)
                result.statuses[status] += 1
        finally:
            writer.close()

    started = time.perf_counter()
    await asyncio.gather(*(connection() for _ in range(concurrency)))
    result.wall_s = time.perf_counter() - started
    return result


class Connection:
    """One keep-alive connection for a flow whose next request depends on the last answer (create, then sign).
    ``due``: when a paced run meant the flow to start (time.perf_counter()), so latency counts any wait for a free
    connection; None in a closed-loop run."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, due: float | None = None) -> None:
        self._reader, self._writer = reader, writer
        self.due = due

    async def call(self, raw: bytes) -> tuple[int, bytes]:
        self._writer.write(raw)
        return await _read_response(self._reader)


Flow = Callable[[Connection], Awaitable[None]]


async def run_flows(host: str, port: int, flows: Iterable[Flow], concurrency: int, *,
                    deadline: float | None = None, rate_per_s: float | None = None) -> float:
    """Run each flow once, ``concurrency`` at a time, each on one of as many keep-alive connections, until the flows
    run out or ``time.perf_counter()`` passes ``deadline``; returns the wall time. Flows record their own figures.

    Closed loop by default (each connection starts its next flow as soon as the last ends, so the offered load is
    whatever the server sustains). With ``rate_per_s``, open loop: flow i is due ``i / rate_per_s`` after the start
    whatever the answers, and waits for a free connection when all are busy (its ``Connection.due`` says when it was
    due, for latency without coordinated omission)."""
    items = enumerate(flows)
    started = time.perf_counter()

    async def connection() -> None:
        reader, writer = await asyncio.open_connection(host, port)
        try:
            for i, flow in items:
                due = None
                if rate_per_s is not None:
                    due = started + i / rate_per_s
                    await asyncio.sleep(max(0.0, due - time.perf_counter()))
                if deadline is not None and time.perf_counter() >= deadline:
                    return
                await flow(Connection(reader, writer, due))
        finally:
            writer.close()

    await asyncio.gather(*(connection() for _ in range(concurrency)))
    return time.perf_counter() - started
