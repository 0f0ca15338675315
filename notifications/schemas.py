"""Wire shapes of the notification endpoints (preferences, the user's feed, administrators' dead letters)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal
from uuid import UUID

import msgspec

OptionalCategory = Literal["vaccination", "appointment", "prescription", "payment"]
ChannelName = Literal["push", "sms"]


class Preference(msgspec.Struct, frozen=True):
    category: OptionalCategory
    channel: ChannelName
    enabled: bool


class PreferencesIn(msgspec.Struct, frozen=True):
    preferences: Annotated[list[Preference], msgspec.Meta(min_length=1, max_length=8)]


class Preferences(msgspec.Struct, frozen=True):
    # every optional (category, channel) pair; security and call messages are always on and not listed
    preferences: list[Preference]


class FeedItem(msgspec.Struct, frozen=True):
    id: UUID
    kind: str
    category: str
    title: str
    body: str
    link: str
    sent_at: datetime
    opened_at: datetime | None


class DeadLetterAttempt(msgspec.Struct, frozen=True):
    attempt: int
    outcome: str
    error: str | None
    at: datetime


class DeadLetter(msgspec.Struct, frozen=True):
    id: UUID
    account_id: UUID
    kind: str
    category: str
    channel: str
    status: str
    attempts: int
    last_error: str | None
    created_at: datetime
    updated_at: datetime
    history: list[DeadLetterAttempt]


class OutboxCounts(msgspec.Struct, frozen=True):
    by_status: dict[str, int]
    oldest_due_seconds: float | None  # age of the oldest row waiting to be sent: the dispatcher's lag
