"""Signaling between API instances: PostgreSQL LISTEN/NOTIFY on one dedicated connection per instance (rtc.md §2.6).

Every instance listens on one shared channel and delivers what is addressed to sockets it holds. Payloads too large
for NOTIFY go through the ``rtc_signal_outbox`` table and the notification carries the row id. Delivery is
at-most-once, like NOTIFY itself: the protocol recovers from a lost message by the next join or offer.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from uuid import UUID

import asyncpg
import msgspec

from rtc import db
from rtc.schemas import CallRole

log = logging.getLogger("lienthong.rtc.bus")

CHANNEL = "rtc_signal"
# NOTIFY refuses payloads of 8000 bytes or more (measured: 7999 passes); keep a margin.
INLINE_LIMIT_BYTES = 7000
# A pointer to an outbox row: "#<origin instance>:<row id>"; JSON envelopes always start with "{".
_POINTER = "#"
# The listener answers a probe this often, so a silently dead connection (no RST, no FIN) is noticed.
_PROBE_EVERY_S = 15.0
_PROBE_TIMEOUT_S = 5.0
_RECONNECT_MAX_DELAY_S = 5.0

# InternalClientError: a pooled connection told the server is shutting down, before asyncpg saw the socket close
_DB_ERRORS = (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError, asyncpg.InternalClientError)


NO_FRAME = msgspec.Raw(b"")


class Envelope(msgspec.Struct, frozen=True, omit_defaults=True):
    """What one instance asks the others to do to the sockets of a room."""

    origin: str  # the publishing instance, which already served the sockets it holds itself
    consultation_id: UUID
    role: CallRole | None = None  # None: both participants
    session_id: str | None = None  # only this connection of the role (closing a replaced one)
    frame: msgspec.Raw = NO_FRAME  # a server frame, already JSON (Raw cannot be Optional in msgspec)
    peer_present: bool | None = None  # news about the other participant's presence
    close_code: int | None = None
    close_reason: str = ""


_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(Envelope)


class SignalBus:
    """Publishes envelopes and hands those of other instances to ``deliver``, in the order they were committed."""

    def __init__(self, pool: asyncpg.Pool, connect: Callable[[], Awaitable[asyncpg.Connection]],
                 deliver: Callable[[Envelope], object], instance_id: str) -> None:
        self._pool = pool
        self._connect = connect
        self._deliver = deliver
        self._instance_id = instance_id
        self._own_pointer = f"{_POINTER}{instance_id}:"
        # One consumer keeps the commit order: an outbox offer must not be overtaken by the inline candidates that
        # follow it while its row is fetched.
        self._incoming: asyncio.Queue[str] = asyncio.Queue()
        self._listener: asyncpg.Connection | None = None
        self._lost = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self.reconnects = 0

    async def start(self) -> None:
        """Listen before the first socket is accepted; fails if the database cannot be reached."""
        await self._listen()
        self._tasks = [asyncio.create_task(self._consume(), name="rtc-bus-consume"),
                       asyncio.create_task(self._supervise(), name="rtc-bus-supervise")]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._listener is not None:
            with contextlib.suppress(*_DB_ERRORS):
                await self._listener.close(timeout=2)

    async def publish(self, envelope: Envelope) -> None:
        payload = _encoder.encode(envelope)
        async with self._pool.acquire() as conn:
            if len(payload) <= INLINE_LIMIT_BYTES:
                await db.notify(conn, CHANNEL, payload.decode())
            else:
                await db.notify_via_outbox(conn, CHANNEL, payload.decode(), self._own_pointer)

    async def _listen(self) -> None:
        listener = await self._connect()
        try:
            await listener.add_listener(CHANNEL, self._on_notification)
        except BaseException:
            await listener.close()
            raise
        listener.add_termination_listener(self._on_terminated)
        self._listener = listener

    def _on_notification(self, _conn: object, _pid: int, _channel: str, payload: object) -> None:
        self._incoming.put_nowait(str(payload))

    def _on_terminated(self, _conn: object) -> None:
        self._lost.set()

    async def _supervise(self) -> None:
        """Reconnect and LISTEN again when the listener dies, with capped exponential backoff."""
        while True:
            try:
                await asyncio.wait_for(self._lost.wait(), _PROBE_EVERY_S)
            except TimeoutError:
                if await self._alive():
                    continue
            if self._listener is not None:
                self._listener.remove_termination_listener(self._on_terminated)
                self._listener.terminate()
            self._lost.clear()
            log.warning("signaling listener lost; reconnecting")
            delay = 0.05
            while True:
                try:
                    await self._listen()
                    break
                except _DB_ERRORS as exc:
                    log.warning("signaling listener reconnect failed", extra={"error": type(exc).__name__})
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, _RECONNECT_MAX_DELAY_S)
            self.reconnects += 1
            log.info("signaling listener listening again")

    async def _alive(self) -> bool:
        if self._listener is None or self._listener.is_closed():
            return False
        try:
            await asyncio.wait_for(self._listener.fetchval("SELECT 1"), _PROBE_TIMEOUT_S)
        except _DB_ERRORS:
            return False
        return True

    async def _consume(self) -> None:
        while True:
            payload = await self._incoming.get()
            if payload.startswith(self._own_pointer):
                continue  # our own large message: we served our sockets before publishing it
            try:
                if payload.startswith(_POINTER):
                    async with self._pool.acquire() as conn:
                        body = await db.outbox_body(conn, int(payload.rpartition(":")[2]))
                    if body is None:
                        continue  # purged: far too late to matter
                    payload = body
                envelope = _decoder.decode(payload)
            except (msgspec.DecodeError, ValueError) as exc:
                log.warning("unreadable signaling notification dropped", extra={"error": str(exc)})
                continue
            except _DB_ERRORS as exc:
                log.warning("signaling outbox unreadable", extra={"error": type(exc).__name__})
                continue
            if envelope.origin == self._instance_id:
                continue
            try:
                self._deliver(envelope)
            except Exception:
                # one bad envelope must not stop delivery for every call of this instance
                log.exception("signaling envelope could not be delivered")
