"""Join tokens: who may enter a consultation's video call, and when (rtc.md §2.3).

A token is ``<jti>.<secret>``, valid for one minute and for one join. The REST call that issues it checks the
caller against the booking; the WebSocket join checks the token, then the booking again (it may have changed in
that minute), then burns the token. Only the secret's hash is stored.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from datetime import UTC, datetime, timedelta
from uuid import UUID, uuid4
from zoneinfo import ZoneInfo

import asyncpg
import msgspec

from api import audit
from api.audit import AuditContext
from api.auth.principal import Principal
from api.db import Conn
from api.errors import DomainError
from api.settings import Settings
from consultations.errors import ConsultationNotFound, IllegalTransition, OutsideWindow
from consultations.schemas import Consultation
from consultations.service import lock_consultation, participant_role, record_event
from rtc import db
from rtc.schemas import CallRole, JoinToken

# Long enough to open a WebSocket on a slow mobile network, short enough that a leaked token is soon worthless.
JOIN_TOKEN_TTL_S = 60
JOINABLE = ("booked", "waiting", "in_call")
VN = ZoneInfo("Asia/Ho_Chi_Minh")

# WebSocket close codes of a refused join (rtc.md §2.1).
BAD_TOKEN = 4401
NOT_PARTICIPANT = 4403
UNKNOWN_CONSULTATION = 4404
CONSULTATION_ENDED = 4410

_TOKEN = re.compile(r"^([0-9a-f]{32})\.([A-Za-z0-9_-]{43})$")


class Admission(msgspec.Struct, frozen=True):
    consultation: Consultation
    role: CallRole
    account_id: UUID


class JoinRefused(Exception):
    """A join that must be turned away: the socket is closed with ``close_code``; ``reason`` is what the client and
    the audit log are told."""

    def __init__(self, close_code: int, reason: str, *, account_id: UUID | None = None,
                 consultation: Consultation | None = None) -> None:
        super().__init__(reason)
        self.close_code = close_code
        self.reason = reason
        self.account_id = account_id
        self.consultation = consultation  # set when the room exists, so the refusal joins its history


def _secret_hash(secret: str) -> bytes:
    return hashlib.sha256(secret.encode()).digest()


def join_window(c: Consultation, settings: Settings) -> tuple[datetime, datetime]:
    """Joining opens a little before the slot and closes a while after it (LIENTHONG_JOIN_* settings)."""
    return (c.starts_at - timedelta(minutes=settings.join_open_before_min),
            c.ends_at + timedelta(minutes=settings.join_grace_after_min))


def _joinability(c: Consultation, settings: Settings, now: datetime) -> DomainError | None:
    if c.status not in JOINABLE:
        return IllegalTransition(f"The video call of a consultation that is {c.status} cannot be joined.",
                                 extra={"current_status": c.status})
    opens_at, closes_at = join_window(c, settings)
    if not opens_at <= now <= closes_at:
        shown = (opens_at if now < opens_at else closes_at).astimezone(VN)
        detail = (f"The call opens at {shown:%H:%M} on {shown:%d/%m/%Y} (Vietnam time)." if now < opens_at
                  else f"The call closed at {shown:%H:%M} on {shown:%d/%m/%Y} (Vietnam time).")
        return OutsideWindow(detail, extra={"opens_at": opens_at.astimezone(VN).isoformat(),
                                            "closes_at": closes_at.astimezone(VN).isoformat()})
    return None


async def issue(pool: asyncpg.Pool, settings: Settings, principal: Principal, consultation_id: UUID,
                ctx: AuditContext) -> JoinToken:
    """A join token for the booked patient (or guardian) or the treating doctor, inside the join window.

    Refusals are audited: they commit with the transaction and are raised after it.
    """
    refusal: DomainError | None = None
    issued: JoinToken | None = None
    async with pool.acquire() as conn, conn.transaction():
        try:
            c = await lock_consultation(conn, consultation_id)
        except ConsultationNotFound:
            c = None
        role = participant_role(c, principal.account_id) if c else None
        if c is None or role is None:
            # as everywhere in consultations: "not yours" looks like "does not exist", so ids cannot be probed
            refusal = ConsultationNotFound("No such consultation, or you are not part of it.")
            await audit.record(conn, ctx, "rtc.join_token.refused", target_type="consultation",
                               target_id=consultation_id,
                               details={"reason": "not_found" if c is None else "not_participant"})
        else:
            refusal = _joinability(c, settings, datetime.now(UTC))
            if refusal is not None:
                await audit.record(conn, ctx, "rtc.join_token.refused", target_type="consultation",
                                   target_id=consultation_id, subject_patient_id=c.patient_id,
                                   details={"reason": refusal.slug, "status": c.status})
                await record_event(conn, consultation_id, "call.join_refused", principal.account_id,
                                   {"role": role, "reason": refusal.slug})
            else:
                jti, secret = uuid4(), secrets.token_urlsafe(32)
                expires_at = await db.insert_join_token(conn, jti, _secret_hash(secret), consultation_id,
                                                        principal.account_id, role, JOIN_TOKEN_TTL_S)
                await audit.record(conn, ctx, "rtc.join_token.issued", target_type="consultation",
                                   target_id=consultation_id, subject_patient_id=c.patient_id,
                                   details={"role": role, "jti": str(jti)})
                issued = JoinToken(token=f"{jti.hex}.{secret}", expires_at=expires_at.astimezone(VN), role=role,
                                   consultation_id=consultation_id,
                                   websocket_path=f"/ws/consultations/{consultation_id}")
    if refusal is not None:
        raise refusal
    assert issued is not None
    return issued


async def admit(conn: Conn, token: str, consultation_id: UUID) -> Admission:
    """Check a join token presented on the socket of ``consultation_id`` and burn it; raise JoinRefused.

    Must run in a transaction: the token row and the consultation row stay locked until the join commits.
    Order (rtc.md §2.3): the secret, expiry and single use; the room; the booking re-read; then consumption.
    """
    parsed = _TOKEN.match(token)
    row = await db.lock_join_token(conn, UUID(parsed.group(1))) if parsed else None
    if parsed is None or row is None or not hmac.compare_digest(row.secret_sha256, _secret_hash(parsed.group(2))):
        raise JoinRefused(BAD_TOKEN, "invalid join token")
    if row.expires_at <= datetime.now(UTC):
        raise JoinRefused(BAD_TOKEN, "join token expired", account_id=row.account_id)
    if row.consumed_at is not None:
        raise JoinRefused(BAD_TOKEN, "join token already used", account_id=row.account_id)
    try:
        c = await lock_consultation(conn, consultation_id)
    except ConsultationNotFound:
        raise JoinRefused(UNKNOWN_CONSULTATION, "no such consultation", account_id=row.account_id) from None
    if row.consultation_id != consultation_id:
        raise JoinRefused(NOT_PARTICIPANT, "token is for another consultation", account_id=row.account_id,
                          consultation=c)
    if participant_role(c, row.account_id) != row.role:
        raise JoinRefused(NOT_PARTICIPANT, "not a participant of this consultation", account_id=row.account_id,
                          consultation=c)
    if c.status not in JOINABLE:
        raise JoinRefused(CONSULTATION_ENDED, f"consultation is {c.status}", account_id=row.account_id,
                          consultation=c)
    await db.consume_join_token(conn, row.jti)
    return Admission(consultation=c, role=row.role, account_id=row.account_id)
