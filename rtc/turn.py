"""ICE servers handed to call participants: our STUN URLs, and TURN credentials minted with coturn's REST API
scheme (``use-auth-secret``), so coturn checks them without a call to us (rtc.md §3.1)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from uuid import UUID

import msgspec

from api.settings import Settings


class IceServer(msgspec.Struct, omit_defaults=True):
    """One entry of WebRTC's ``RTCConfiguration.iceServers``, as the browser and aiortc take it."""

    urls: list[str]
    username: str | None = None
    credential: str | None = None


def turn_credentials(secret: str, participant_id: str, ttl_s: int, *, now: float | None = None) -> tuple[str, str]:
    """coturn REST credentials: the username is ``<expiry unix seconds>:<participant id>`` and the password is
    base64(HMAC-SHA1(secret, username)). coturn refuses them once the expiry has passed."""
    expiry = int(time.time() if now is None else now) + ttl_s
    username = f"{expiry}:{participant_id}"
    digest = hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()
    return username, base64.b64encode(digest).decode()


def participant_id(settings: Settings, consultation_id: UUID, role: str) -> str:
    """An opaque name for one participant of one consultation.

    TURN usernames travel in clear inside STUN messages and land in coturn's logs, so they must not reveal who is
    calling; an HMAC under our own key is stable across reconnects (coturn's logs of one call line up) yet says
    nothing to anyone without the key.
    """
    key = hmac.new(settings.jwt_secret.encode(), b"lienthong/rtc/turn-participant", hashlib.sha256).digest()
    return hmac.new(key, f"{consultation_id}/{role}".encode(), hashlib.sha256).hexdigest()[:24]


def ice_servers(settings: Settings, participant_id: str, *, now: float | None = None) -> list[IceServer]:
    """STUN, then TURN with fresh credentials when a TURN server is configured."""
    servers: list[IceServer] = []
    if settings.stun_urls:
        servers.append(IceServer(urls=list(settings.stun_urls)))
    if settings.turn_urls and settings.turn_secret:
        username, password = turn_credentials(settings.turn_secret, participant_id, settings.turn_ttl_s, now=now)
        servers.append(IceServer(urls=list(settings.turn_urls), username=username, credential=password))
    return servers
