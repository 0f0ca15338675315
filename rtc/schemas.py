"""What travels on the wire for video calls: the signaling frames (rtc.md §2.2), each a member of a msgspec
tagged union on ``type``, and the REST bodies of the join-token and quality endpoints."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal
from uuid import UUID

import msgspec
from msgspec import Meta, field

from rtc.turn import IceServer

CallRole = Literal["patient", "doctor"]
ROLES: tuple[CallRole, CallRole] = ("patient", "doctor")

Sdp = Annotated[str, Meta(min_length=1, max_length=60_000)]
NegotiationId = Annotated[str, Meta(max_length=64)]
# PostgreSQL text cannot hold U+0000: text that is stored (chat, join details) must not carry one.
NO_NUL = "^[^\x00]*$"
Label = Annotated[str, Meta(max_length=40, pattern=NO_NUL)]
NonNegative = Annotated[float, Meta(ge=0, le=1e7)]
QualityLimitation = Literal["none", "cpu", "bandwidth", "other"]


def other_role(role: CallRole) -> CallRole:
    return "doctor" if role == "patient" else "patient"


class _Frame(msgspec.Struct, tag_field="type", kw_only=True):
    """Base of every frame: the ``type`` field selects the struct."""


# ---- client → server -------------------------------------------------------------------------------------------


class ClientInfo(msgspec.Struct, kw_only=True):
    platform: Label = ""
    app_version: Label = ""


class Join(_Frame, tag="join"):
    token: Annotated[str, Meta(min_length=1, max_length=200)]
    resume_session: Annotated[str, Meta(max_length=64, pattern=NO_NUL)] | None = None
    client: ClientInfo | None = None


class Offer(_Frame, tag="offer"):
    sdp: Sdp
    negotiation_id: NegotiationId | None = None


class Answer(_Frame, tag="answer"):
    sdp: Sdp
    negotiation_id: NegotiationId | None = None


class IceCandidate(_Frame, tag="ice-candidate"):
    """A trickled candidate; ``candidate: null`` is end-of-candidates. Field names follow RTCIceCandidateInit."""

    candidate: Annotated[str, Meta(max_length=2000)] | None
    sdp_mid: Annotated[str, Meta(max_length=64)] | None = field(default=None, name="sdpMid")
    sdp_mline_index: Annotated[int, Meta(ge=0, le=255)] | None = field(default=None, name="sdpMLineIndex")
    username_fragment: Annotated[str, Meta(max_length=256)] | None = field(default=None, name="usernameFragment")


class MediaState(_Frame, tag="media-state"):
    audio: bool
    video: bool
    screen: bool = False


class QualitySample(msgspec.Struct, kw_only=True):
    """One getStats sample; every figure optional because browsers and aiortc report different subsets."""

    rtt_ms: NonNegative | None = None
    jitter_ms: NonNegative | None = None
    loss_pct: Annotated[float, Meta(ge=0, le=100)] | None = None
    out_kbps: NonNegative | None = None
    in_kbps: NonNegative | None = None
    quality_limitation: QualityLimitation | None = None


class Quality(QualitySample, _Frame, tag="quality"):
    pass


class Chat(_Frame, tag="chat"):
    text: Annotated[str, Meta(min_length=1, max_length=2000, pattern=NO_NUL)]


class Ping(_Frame, tag="ping"):
    pass


class Leave(_Frame, tag="leave"):
    pass


class End(_Frame, tag="end"):
    reason: Literal["completed"] = "completed"


ClientFrame = Join | Offer | Answer | IceCandidate | MediaState | Quality | Chat | Ping | Leave | End
RELAYED = (Offer, Answer, IceCandidate, MediaState)


# ---- server → client -------------------------------------------------------------------------------------------


class CallInfo(msgspec.Struct, kw_only=True):
    status: str
    started_at: datetime | None
    max_end_at: datetime  # joining closes then (the slot's end plus the grace period)


class ChatMessage(_Frame, tag="chat"):
    id: int
    from_: CallRole = field(name="from")
    text: str
    at: datetime


class Joined(_Frame, tag="joined"):
    session_id: str
    role: CallRole
    peers: list[CallRole]
    polite: bool  # perfect negotiation: the polite side yields on glare (the doctor's console by default)
    ice_servers: list[IceServer]
    call: CallInfo
    chat: list[ChatMessage]  # the conversation so far, so a reconnecting app can redraw it
    resumed: bool  # the same role was in the room a moment ago (reconnect or a second device)


class PeerJoined(_Frame, tag="peer-joined"):
    role: CallRole
    reconnected: bool


class PeerLeft(_Frame, tag="peer-left"):
    role: CallRole
    reason: Literal["left", "disconnected", "timeout"]


class RelayedOffer(_Frame, tag="offer"):
    from_: CallRole = field(name="from")
    sdp: str
    negotiation_id: str | None = None


class RelayedAnswer(_Frame, tag="answer"):
    from_: CallRole = field(name="from")
    sdp: str
    negotiation_id: str | None = None


class RelayedIceCandidate(_Frame, tag="ice-candidate"):
    from_: CallRole = field(name="from")
    candidate: str | None
    sdp_mid: str | None = field(default=None, name="sdpMid")
    sdp_mline_index: int | None = field(default=None, name="sdpMLineIndex")
    username_fragment: str | None = field(default=None, name="usernameFragment")


class RelayedMediaState(_Frame, tag="media-state"):
    from_: CallRole = field(name="from")
    audio: bool
    video: bool
    screen: bool


class Ended(_Frame, tag="ended"):
    by: CallRole
    reason: Literal["completed"]


ErrorCode = Literal[
    "invalid-message", "message-too-large", "rate-limited", "forbidden", "peer-not-present", "invalid-state",
]


class Error(_Frame, tag="error"):
    code: ErrorCode
    detail: str


class Pong(_Frame, tag="pong"):
    pass


ServerFrame = (
    Joined | PeerJoined | PeerLeft | RelayedOffer | RelayedAnswer | RelayedIceCandidate | RelayedMediaState
    | ChatMessage | Ended | Error | Pong
)


def relayed(frame: Offer | Answer | IceCandidate | MediaState, sender: CallRole) -> _Frame:
    """The frame the other participant receives: what was sent, plus who sent it."""
    if isinstance(frame, Offer):
        return RelayedOffer(from_=sender, sdp=frame.sdp, negotiation_id=frame.negotiation_id)
    if isinstance(frame, Answer):
        return RelayedAnswer(from_=sender, sdp=frame.sdp, negotiation_id=frame.negotiation_id)
    if isinstance(frame, IceCandidate):
        return RelayedIceCandidate(from_=sender, candidate=frame.candidate, sdp_mid=frame.sdp_mid,
                                   sdp_mline_index=frame.sdp_mline_index,
                                   username_fragment=frame.username_fragment)
    return RelayedMediaState(from_=sender, audio=frame.audio, video=frame.video, screen=frame.screen)


# ---- REST ------------------------------------------------------------------------------------------------------


class JoinToken(msgspec.Struct, kw_only=True):
    """Send ``token`` as the first WebSocket frame (``{"type": "join", "token": ...}``) before ``expires_at``."""

    token: str
    expires_at: datetime
    role: CallRole
    consultation_id: UUID
    websocket_path: str
