"""The signaling hub: one WebSocket per participant, rooms keyed by consultation, and the rules of joining, relaying,
reconnecting and ending a call (rtc.md §2). Media never passes through here; the two apps talk peer to peer.

Room state that every instance must agree on (who is in the room, on which instance, connected or away) lives in
``rtc_presence``, changed under the consultation's row lock. Each instance keeps only its own sockets in memory and
reaches sockets held elsewhere through the bus.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import secrets
import time
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any, cast
from uuid import UUID

import asyncpg
import msgspec
from litestar import Litestar
from litestar.connection import WebSocket
from litestar.exceptions import WebSocketDisconnect

from api import audit
from api import db as api_db
from api.audit import AuditContext
from api.errors import DomainError
from api.settings import Settings
from consultations.errors import IllegalTransition
from consultations.service import end_call, record_event, start_call
from rtc import db, media, tokens, turn
from rtc.bus import NO_FRAME, Envelope, SignalBus
from rtc.schemas import (
    RELAYED,
    ROLES,
    CallInfo,
    CallRole,
    Chat,
    ChatMessage,
    ClientFrame,
    End,
    Ended,
    Error,
    ErrorCode,
    Join,
    Joined,
    Leave,
    PeerJoined,
    PeerLeft,
    Ping,
    Pong,
    Quality,
    other_role,
    relayed,
)

log = logging.getLogger("lienthong.rtc")

FIRST_FRAME_TIMEOUT_S = 10.0
MAX_FRAME_BYTES = 64 * 1024
# Generous for trickle ICE (a browser sends a few dozen candidates at once), far below a flood.
RATE_PER_S = 50.0
RATE_BURST = 100.0
# How long a dropped participant keeps their place before the other side is told they are gone.
RECONNECT_GRACE_S = 30.0
# A client that stops reading is cut off rather than allowed to grow our memory.
OUTBOUND_QUEUE_MAX = 256
CHAT_HISTORY = 100

# Close codes (rtc.md §2.1); refusals of the token itself are in rtc.tokens.
PROTOCOL_ERROR = 4400
REPLACED = 4409
ENDED = 4410
# An instance silent this long (it announces itself every second at most) is taken for dead: its participants are
# marked away by the others. Several missed announcements, so a busy event loop or a slow database is not a death.
INSTANCE_STALE_S = 5.0
TOO_SLOW = 1008
INTERNAL_ERROR = 1011

_decoder = msgspec.json.Decoder(ClientFrame)
_encoder = msgspec.json.Encoder()
_PONG = _encoder.encode(Pong())
_SOCKET_GONE = (WebSocketDisconnect, OSError, RuntimeError)


class _Gone(Exception):
    """The client closed the socket."""


class _CloseOrder(msgspec.Struct, frozen=True):
    code: int
    reason: str


class TokenBucket:
    """Frames a client may send: ``rate`` per second on average, ``burst`` at once."""

    def __init__(self, rate: float, burst: float) -> None:
        self.rate = rate
        self.capacity = burst
        self.tokens = burst
        self.stamp = time.monotonic()
        self.reported_at = float("-inf")

    def take(self) -> bool:
        now = time.monotonic()
        self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True

    def should_report(self) -> bool:
        """Tell a flooding client once a second, not once per dropped frame."""
        now = time.monotonic()
        if now - self.reported_at < 1:
            return False
        self.reported_at = now
        return True


class Connection:
    """One participant's socket on this instance. Frames to it go through a queue drained by one writer task, so
    senders never wait for a slow client and frames keep their order."""

    def __init__(self, socket: WebSocket[Any, Any, Any], consultation_id: UUID, patient_id: UUID, role: CallRole,
                 account_id: UUID, session_id: str, ctx: AuditContext, peer_present: bool,
                 bucket: TokenBucket) -> None:
        self.socket = socket
        self.consultation_id = consultation_id
        self.patient_id = patient_id  # whose record this call is part of, for the audit log
        self.role = role
        self.account_id = account_id
        self.session_id = session_id
        self.ctx = ctx
        self.peer_present = peer_present
        self.bucket = bucket
        self.queue: asyncio.Queue[bytes | _CloseOrder] = asyncio.Queue()
        self.closing = False
        # The room already knows this participant is gone (left, replaced, call ended): no 'away' on close.
        self.settled = False

    def push(self, frame: bytes) -> None:
        if self.closing:
            return
        if self.queue.qsize() >= OUTBOUND_QUEUE_MAX:
            self.close(TOO_SLOW, "not reading fast enough")
            return
        self.queue.put_nowait(frame)

    def error(self, code: ErrorCode, detail: str) -> None:
        self.push(_encoder.encode(Error(code=code, detail=detail)))

    def close(self, code: int, reason: str) -> None:
        if not self.closing:
            self.closing = True
            self.queue.put_nowait(_CloseOrder(code, reason))

    async def write(self) -> None:
        while True:
            item = await self.queue.get()
            if isinstance(item, _CloseOrder):
                with contextlib.suppress(*_SOCKET_GONE):
                    await self.socket.close(item.code, item.reason)
                return
            await self.socket.send_text(item.decode())


def _socket_context(socket: WebSocket[Any, Any, Any]) -> AuditContext:
    """The audit facts of a WebSocket (api.audit.audit_context reads the same from an HTTP request)."""
    client_ip = socket.client.host if socket.client else None
    try:
        ipaddress.ip_address(client_ip or "")
    except ValueError:
        client_ip = None
    return AuditContext(actor_account_id=None, actor_role=None, client_ip=client_ip,
                        user_agent=(socket.headers.get("user-agent") or "")[:300] or None,
                        request_id=socket.scope.get("state", {}).get("request_id"))


async def _receive_text(socket: WebSocket[Any, Any, Any]) -> str | None:
    """The next text frame; None for a binary one."""
    try:
        message = cast("dict[str, Any]", await socket.receive())
    except WebSocketDisconnect:
        raise _Gone from None
    if message["type"] == "websocket.disconnect":
        raise _Gone
    text: str | None = message.get("text")
    return text


def _shown(message: ChatMessage) -> ChatMessage:
    """Times reach people in Vietnam time (stored in UTC)."""
    return msgspec.structs.replace(message, at=message.at.astimezone(tokens.VN))


def _too_large(text: str) -> bool:
    # A character is at most 4 bytes in UTF-8: encode only when the length alone cannot decide.
    return len(text) > MAX_FRAME_BYTES or (len(text) * 4 > MAX_FRAME_BYTES and len(text.encode()) > MAX_FRAME_BYTES)


class Hub:
    """Every call room this instance holds sockets of."""

    def __init__(self, pool: asyncpg.Pool, settings: Settings,
                 connect: Callable[[], Awaitable[asyncpg.Connection]], *,
                 grace_s: float = RECONNECT_GRACE_S) -> None:
        self.pool = pool
        self.settings = settings
        # Tunables, read at each use (a benchmark lifts the rate limit; a test shortens the grace period).
        self.grace_s = grace_s
        self.first_frame_timeout_s = FIRST_FRAME_TIMEOUT_S
        self.rate_per_s = RATE_PER_S
        self.burst = RATE_BURST
        self.instance_id = secrets.token_hex(6)
        self.bus = SignalBus(pool, connect, self._deliver, self.instance_id)
        self._rooms: dict[UUID, dict[CallRole, Connection]] = {}
        # Serialises this instance's changes to one room; other instances are serialised by the row lock.
        self._locks: weakref.WeakValueDictionary[UUID, asyncio.Lock] = weakref.WeakValueDictionary()
        self._housekeeping: asyncio.Task[None] | None = None

    async def start(self) -> None:
        async with self.pool.acquire() as db_conn:  # before any socket: a join here must not look orphaned
            await db.announce_instance(db_conn, self.instance_id)
        await self.bus.start()
        self._housekeeping = asyncio.create_task(self._keep_house(), name="rtc-housekeeping")

    async def stop(self) -> None:
        if self._housekeeping is not None:
            self._housekeeping.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._housekeeping
        await self.bus.stop()
        # Our sockets are closed by now (each participant marked away); an instance that stops announcing would be
        # swept anyway, this only spares the wait.
        with contextlib.suppress(OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
            async with self.pool.acquire() as db_conn:
                await db.retire_instance(db_conn, self.instance_id)

    def _lock(self, consultation_id: UUID) -> asyncio.Lock:
        lock = self._locks.get(consultation_id)
        if lock is None:
            lock = self._locks[consultation_id] = asyncio.Lock()
        return lock

    # ---- one socket's life -------------------------------------------------------------------------------------

    async def serve(self, socket: WebSocket[Any, Any, Any], consultation_id: UUID) -> None:
        await socket.accept()
        join = await self._first_frame(socket)
        if join is None:
            return
        try:
            conn = await self._join(socket, consultation_id, join)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
            log.exception("call join failed")
            await self._refuse(socket, INTERNAL_ERROR, "service unavailable; join again")
            return
        if conn is None:
            return
        try:
            await self._run(conn)
        finally:
            try:
                await self._disconnected(conn)
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
                log.exception("could not record a dropped call participant")

    async def _first_frame(self, socket: WebSocket[Any, Any, Any]) -> Join | None:
        """The join frame, or None after closing the socket with 4400."""
        try:
            text = await asyncio.wait_for(_receive_text(socket), self.first_frame_timeout_s)
        except TimeoutError:
            await self._refuse(socket, PROTOCOL_ERROR, f"send join first, within {self.first_frame_timeout_s:g} s")
            return None
        except _Gone:
            return None
        frame: ClientFrame | None = None
        if text is not None and not _too_large(text):
            with contextlib.suppress(msgspec.DecodeError):
                frame = _decoder.decode(text)
        if not isinstance(frame, Join):
            await self._refuse(socket, PROTOCOL_ERROR, "the first frame must be a valid join")
            return None
        return frame

    @staticmethod
    async def _refuse(socket: WebSocket[Any, Any, Any], code: int, reason: str) -> None:
        with contextlib.suppress(*_SOCKET_GONE):
            await socket.close(code, reason)

    async def _run(self, conn: Connection) -> None:
        writer = asyncio.create_task(conn.write(), name="rtc-write")
        reader = asyncio.create_task(self._read(conn), name="rtc-read")
        try:
            done, _ = await asyncio.wait({writer, reader}, return_when=asyncio.FIRST_COMPLETED)
            if reader in done and not reader.cancelled() and reader.exception() is None:
                # the reader stopped because the socket is being closed by us: let the writer send the close
                await asyncio.wait({writer}, timeout=5)
        finally:
            for task in (reader, writer):
                task.cancel()
            results = await asyncio.gather(reader, writer, return_exceptions=True)
        failure = next((r for r in results if isinstance(r, Exception) and not isinstance(r, (_Gone, *_SOCKET_GONE))),
                       None)
        if failure is not None:
            log.error("call socket failed", exc_info=failure)
            await self._refuse(conn.socket, INTERNAL_ERROR, "internal error")

    async def _read(self, conn: Connection) -> None:
        while not conn.closing:
            # Frames already buffered are returned without suspending; yield so the writers (ours included) drain
            # their queues as fast as frames come in, and only a client that stops reading fills one.
            await asyncio.sleep(0)
            text = await _receive_text(conn.socket)
            if not conn.bucket.take():
                if conn.bucket.should_report():
                    conn.error("rate-limited", f"at most {conn.bucket.rate:g} frames per second; frames are dropped")
                continue
            if text is None:
                conn.error("invalid-message", "frames are JSON text, not binary")
                continue
            if _too_large(text):
                conn.error("message-too-large", f"frames are limited to {MAX_FRAME_BYTES} bytes")
                continue
            try:
                frame = _decoder.decode(text)
            except msgspec.DecodeError as exc:
                conn.error("invalid-message", str(exc)[:300])
                continue
            await self._handle(conn, frame)

    async def _handle(self, conn: Connection, frame: ClientFrame) -> None:
        if isinstance(frame, RELAYED):
            await self._relay(conn, _encoder.encode(relayed(frame, conn.role)))
        elif isinstance(frame, Ping):
            conn.push(_PONG)
        elif isinstance(frame, Quality):
            async with self.pool.acquire() as db_conn:
                await db.insert_quality(db_conn, conn.consultation_id, conn.role, frame)
        elif isinstance(frame, Chat):
            await self._chat(conn, frame.text)
        elif isinstance(frame, Leave):
            await self._leave(conn)
        elif isinstance(frame, End):
            await self._end(conn)
        else:
            conn.error("invalid-message", "already joined")

    # ---- joining -----------------------------------------------------------------------------------------------

    async def _join(self, socket: WebSocket[Any, Any, Any], consultation_id: UUID, join: Join) -> Connection | None:
        """Admit the socket into the room (or close it with the refusal's code); tell the other participant."""
        ctx = _socket_context(socket)
        session_id = secrets.token_urlsafe(12)
        refusal: tokens.JoinRefused | None = None
        conn: Connection | None = None
        previous: db.Presence | None = None
        async with self._lock(consultation_id):
            try:
                async with self.pool.acquire() as db_conn, db_conn.transaction():
                    try:
                        admission = await tokens.admit(db_conn, join.token, consultation_id)
                    except tokens.JoinRefused as exc:
                        refusal = exc
                        await self._record_refusal(db_conn, ctx, consultation_id, exc)
                    else:
                        conn, previous = await self._enter(db_conn, socket, admission, session_id, join, ctx)
            except BaseException:
                if conn is not None:
                    self._unregister(conn)
                raise
        if refusal is not None:
            await self._refuse(socket, refusal.close_code, refusal.reason)
            return None
        assert conn is not None
        if previous is not None and previous.state == "connected" and previous.instance_id != self.instance_id:
            await self._route(consultation_id, role=conn.role, session_id=previous.session_id,
                              close=(REPLACED, "replaced by a newer connection"))
        await self._route(consultation_id, role=other_role(conn.role), peer_present=True,
                          frame=_encoder.encode(PeerJoined(role=conn.role, reconnected=previous is not None)))
        return conn

    async def _enter(self, db_conn: api_db.Conn, socket: WebSocket[Any, Any, Any], admission: tokens.Admission,
                     session_id: str, join: Join, ctx: AuditContext) -> tuple[Connection, db.Presence | None]:
        """The join's changes, inside its transaction. The connection is registered (and sent ``joined``) before the
        commit, so a replacement committed right after ours always finds it to close."""
        c, role, account_id = admission.consultation, admission.role, admission.account_id
        ctx = ctx.as_actor(account_id, role)
        presence = await db.room(db_conn, c.id)
        previous, peer = presence.get(role), presence.get(other_role(role))
        peer_connected = peer is not None and peer.state == "connected"
        await db.put_presence(db_conn, c.id, role, account_id, session_id, self.instance_id)
        if peer_connected and c.status != "in_call":
            c = await start_call(db_conn, c.id, ctx)  # both are here for the first time: the call has begun
        details: dict[str, Any] = {"role": role, "session_id": session_id, "resumed": previous is not None}
        if join.client is not None:
            details |= {"platform": join.client.platform, "app_version": join.client.app_version}
        if join.resume_session is not None:
            details["resume_session"] = join.resume_session
        await record_event(db_conn, c.id, "call.joined", account_id, details)
        await audit.record(db_conn, ctx, "rtc.call.joined", target_type="consultation", target_id=c.id,
                           subject_patient_id=c.patient_id, details=details)
        _, closes_at = tokens.join_window(c, self.settings)
        joined = Joined(
            session_id=session_id, role=role, peers=[other_role(role)] if peer_connected else [],
            polite=role == "doctor",
            ice_servers=turn.ice_servers(self.settings, turn.participant_id(self.settings, c.id, role)),
            call=CallInfo(status=c.status, max_end_at=closes_at.astimezone(tokens.VN),
                          started_at=c.call_started_at.astimezone(tokens.VN) if c.call_started_at else None),
            chat=[_shown(m) for m in await db.recent_chat(db_conn, c.id, CHAT_HISTORY)], resumed=previous is not None)
        conn = Connection(socket, c.id, c.patient_id, role, account_id, session_id, ctx, peer_present=peer_connected,
                          bucket=TokenBucket(self.rate_per_s, self.burst))
        self._register(conn)
        conn.push(_encoder.encode(joined))
        return conn, previous

    async def _record_refusal(self, db_conn: api_db.Conn, ctx: AuditContext, consultation_id: UUID,
                              refusal: tokens.JoinRefused) -> None:
        details = {"close_code": refusal.close_code, "reason": refusal.reason}
        c = refusal.consultation
        await audit.record(db_conn, ctx if refusal.account_id is None else msgspec.structs.replace(
                               ctx, actor_account_id=refusal.account_id),
                           "rtc.call.join_refused", target_type="consultation", target_id=consultation_id,
                           subject_patient_id=c.patient_id if c else None, details=details)
        if c is not None:
            await record_event(db_conn, c.id, "call.join_refused", refusal.account_id, details)

    def _register(self, conn: Connection) -> None:
        room = self._rooms.setdefault(conn.consultation_id, {})
        replaced = room.get(conn.role)
        room[conn.role] = conn
        if replaced is not None:
            replaced.settled = True
            replaced.close(REPLACED, "replaced by a newer connection")

    def _unregister(self, conn: Connection) -> None:
        room = self._rooms.get(conn.consultation_id)
        if room is not None and room.get(conn.role) is conn:
            del room[conn.role]
            if not room:
                del self._rooms[conn.consultation_id]

    # ---- while in the room -------------------------------------------------------------------------------------

    async def _relay(self, conn: Connection, frame: bytes) -> None:
        peer = self._rooms.get(conn.consultation_id, {}).get(other_role(conn.role))
        if peer is not None:
            peer.push(frame)
        elif conn.peer_present:
            await self.bus.publish(Envelope(origin=self.instance_id, consultation_id=conn.consultation_id,
                                            role=other_role(conn.role), frame=msgspec.Raw(frame)))
        else:
            conn.error("peer-not-present", f"the {other_role(conn.role)} is not in the call yet")

    async def _chat(self, conn: Connection, text: str) -> None:
        """Kept with the consultation, then shown to both sides (the sender's copy confirms it was kept)."""
        async with self.pool.acquire() as db_conn:
            message = await db.insert_chat(db_conn, conn.consultation_id, conn.role, conn.account_id, text)
        frame = _encoder.encode(_shown(message))
        conn.push(frame)
        if conn.peer_present or other_role(conn.role) in self._rooms.get(conn.consultation_id, {}):
            await self._relay(conn, frame)

    async def _leave(self, conn: Connection) -> None:
        conn.settled = True
        async with self._lock(conn.consultation_id), self.pool.acquire() as db_conn, db_conn.transaction():
            left = await db.remove_presence(db_conn, conn.consultation_id, conn.role, conn.session_id)
            if left:
                await self._record(db_conn, conn, "left")
        if left:
            await self._route(conn.consultation_id, role=other_role(conn.role), peer_present=False,
                              frame=_encoder.encode(PeerLeft(role=conn.role, reason="left")))
        conn.close(1000, "left the call")

    async def _end(self, conn: Connection) -> None:
        if conn.role != "doctor":
            conn.error("forbidden", "only the doctor ends the consultation")
            return
        async with self._lock(conn.consultation_id), self.pool.acquire() as db_conn, db_conn.transaction():
            try:
                # end_call records the 'completed' event and its audit row
                await end_call(db_conn, conn.consultation_id, conn.ctx)
            except IllegalTransition as exc:
                conn.error("invalid-state", exc.detail)
                return
            await db.clear_room(db_conn, conn.consultation_id)
        await self._release_room(conn.consultation_id, conn.ctx)

    async def consultation_completed(self, consultation_id: UUID, ctx: AuditContext) -> None:
        """The doctor completed the consultation over HTTP (POST /consultations/{id}/complete), e.g. from the notes
        after leaving the call: whoever is still in the room, here or on another instance, is told it has ended and
        let go, as when the doctor ends it in the call."""
        async with self._lock(consultation_id), self.pool.acquire() as db_conn:
            await db.clear_room(db_conn, consultation_id)
        await self._release_room(consultation_id, ctx)

    async def _release_room(self, consultation_id: UUID, ctx: AuditContext) -> None:
        """The consultation has ended and its room is cleared: everyone still in it, on any instance, is told and
        let go, and its recordings stop."""
        await self._route(consultation_id, frame=_encoder.encode(Ended(by="doctor", reason="completed")),
                          close=(ENDED, "consultation ended"))
        try:
            await media.stop_recordings(self.pool, self.settings, consultation_id, "call-ended", ctx)
        except DomainError as exc:
            # The call has ended either way; recorders also stop when the apps close their connections.
            log.warning("could not stop recordings at call end", extra={"error": exc.slug})

    async def _disconnected(self, conn: Connection) -> None:
        """The socket is gone. Unless the room already knows why, the participant is 'away': they keep their place
        for the grace period and the other side is told at once."""
        self._unregister(conn)
        if conn.settled:
            return
        async with self._lock(conn.consultation_id), self.pool.acquire() as db_conn, db_conn.transaction():
            away = await db.mark_away(db_conn, conn.consultation_id, conn.role, conn.session_id)
            if away:
                await self._record(db_conn, conn, "disconnected")
        if away:
            await self._route(conn.consultation_id, role=other_role(conn.role), peer_present=False,
                              frame=_encoder.encode(PeerLeft(role=conn.role, reason="disconnected")))

    async def _record(self, db_conn: api_db.Conn, conn: Connection, what: str) -> None:
        details = {"role": conn.role, "session_id": conn.session_id}
        await record_event(db_conn, conn.consultation_id, f"call.{what}", conn.account_id, details)
        await audit.record(db_conn, conn.ctx, f"rtc.call.{what}", target_type="consultation",
                           target_id=conn.consultation_id, subject_patient_id=conn.patient_id, details=details)

    # ---- delivery ----------------------------------------------------------------------------------------------

    async def _route(self, consultation_id: UUID, *, role: CallRole | None = None, session_id: str | None = None,
                     frame: bytes | None = None, peer_present: bool | None = None,
                     close: tuple[int, str] | None = None) -> None:
        """Deliver to the addressed sockets held here; publish for the others."""
        envelope = Envelope(origin=self.instance_id, consultation_id=consultation_id, role=role,
                            session_id=session_id, frame=NO_FRAME if frame is None else msgspec.Raw(frame),
                            peer_present=peer_present, close_code=close[0] if close else None,
                            close_reason=close[1] if close else "")
        if not self._deliver(envelope):
            await self.bus.publish(envelope)

    def _deliver(self, envelope: Envelope) -> bool:
        """Apply an envelope to the sockets held here; true when every addressee was found here."""
        room = self._rooms.get(envelope.consultation_id, {})
        found_all = True
        for role in (envelope.role,) if envelope.role else ROLES:
            conn = room.get(role)
            if conn is None or (envelope.session_id is not None and conn.session_id != envelope.session_id):
                found_all = False
                continue
            if envelope.peer_present is not None:
                conn.peer_present = envelope.peer_present
            if envelope.frame:
                conn.push(bytes(envelope.frame))
            if envelope.close_code is not None:
                conn.settled = True
                conn.close(envelope.close_code, envelope.close_reason)
        return found_all

    # ---- housekeeping ------------------------------------------------------------------------------------------

    async def _keep_house(self) -> None:
        """Announce this instance; mark away the participants of instances that stopped announcing and time out
        participants away too long (on any instance: one that crashed cannot do it); purge."""
        every_s = min(1.0, self.grace_s / 4)
        purged_at = 0.0
        while True:
            await asyncio.sleep(every_s)
            try:
                await self._sweep_orphans()
                await self._time_out_absent()
                if time.monotonic() - purged_at > 60:
                    async with self.pool.acquire() as db_conn:
                        await db.purge_outbox(db_conn)
                        await db.purge_join_tokens(db_conn)
                        await db.purge_instances(db_conn)
                    purged_at = time.monotonic()
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, asyncpg.InternalClientError) as exc:
                log.warning("rtc housekeeping failed", extra={"error": type(exc).__name__})
            except Exception:
                # a bug must not silently end timeouts for every call of this instance: log it, go on
                log.exception("rtc housekeeping failed")

    async def _sweep_orphans(self) -> None:
        """A killed instance closes no socket, so nobody marks its participants away: the other side would see them
        present until they rejoin. Any live instance does it once the dead one has been silent INSTANCE_STALE_S."""
        live = [conn.session_id for room in self._rooms.values() for conn in room.values() if not conn.settled]
        async with self.pool.acquire() as db_conn, db_conn.transaction():
            await db.announce_instance(db_conn, self.instance_id)
            # this instance may itself have been taken for dead while stalled: its open sockets are present again
            reclaimed = await db.reclaim_live(db_conn, self.instance_id, live) if live else []
            orphans = await db.mark_orphans_away(db_conn, INSTANCE_STALE_S)
            for orphan in orphans:
                await _record_departure(db_conn, orphan, "disconnected", {
                    "role": orphan.role, "session_id": orphan.session_id, "instance_lost": orphan.instance_id})
        for orphan in orphans:
            await self._route(orphan.consultation_id, role=other_role(orphan.role), peer_present=False,
                              frame=_encoder.encode(PeerLeft(role=orphan.role, reason="disconnected")))
        for consultation_id, role in reclaimed:
            await self._route(consultation_id, role=other_role(role), peer_present=True,
                              frame=_encoder.encode(PeerJoined(role=role, reconnected=True)))

    async def _time_out_absent(self) -> None:
        async with self.pool.acquire() as db_conn, db_conn.transaction():
            gone = await db.expire_away(db_conn, self.grace_s)
            for absent in gone:
                await _record_departure(db_conn, absent, "timed_out", {"role": absent.role, "grace_s": self.grace_s})
        for absent in gone:
            await self._route(absent.consultation_id, role=other_role(absent.role), peer_present=False,
                              frame=_encoder.encode(PeerLeft(role=absent.role, reason="timeout")))


_HOUSEKEEPING = AuditContext(None, "system", None, "lienthong rtc", None)


async def _record_departure(db_conn: api_db.Conn, absent: db.Absent, what: str, details: dict[str, Any]) -> None:
    """A participant's departure noticed by housekeeping, not by their own socket: the call's event and audit row."""
    await record_event(db_conn, absent.consultation_id, f"call.{what}", absent.account_id, details)
    await audit.record(db_conn, _HOUSEKEEPING, f"rtc.call.{what}", target_type="consultation",
                       target_id=absent.consultation_id, subject_patient_id=absent.patient_id, details=details)


def signaling_lifespan(settings: Settings) -> Callable[[Litestar], AbstractAsyncContextManager[None]]:
    """Start the hub (its listener connection and housekeeping) after the pool exists; stop it before the pool."""

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        target = await asyncio.to_thread(api_db.resolve_target, settings)
        server_settings = {"application_name": "lienthong-rtc-listener"}

        async def connect() -> asyncpg.Connection:
            listener: asyncpg.Connection = await asyncpg.connect(target.app_dsn, server_settings=server_settings,
                                                                 timeout=10)
            return listener

        hub = Hub(app.state.pool, settings, connect)
        await hub.start()
        app.state.rtc_hub = hub
        try:
            yield
        finally:
            await hub.stop()

    return lifespan

