"""The rows the store keeps, shared by both implementations, and the outage error."""

from __future__ import annotations

import time
from dataclasses import dataclass, field, fields


class StoreUnavailable(ConnectionError):
    """The database cannot be reached now; the request may be retried later."""


@dataclass(slots=True)
class User:
    name: str
    password_hash: str
    allow_anonymous: bool
    created_at: float


@dataclass(slots=True)
class Session:
    token_hash: str
    user: str
    anonymous: bool
    call_id: str | None
    created_at: float
    expires_at: float


@dataclass(slots=True)
class SubscriptionRow:
    id: str
    session_hash: str
    user: str
    services: list[str]
    created_at: float
    expires_at: float


@dataclass(slots=True)
class CallRow:
    id: str
    caller: str
    callee: str
    caller_session: str
    callee_session: str | None
    state: str
    audio: bool
    video: bool
    anonymous: bool
    display_name: str | None
    offer_sdp: str
    pending_update: str | None = None
    created_at: float = field(default_factory=time.time)
    answered_at: float | None = None
    ended_at: float | None = None
    end_reason: str | None = None


# Both stores keep a call as one row of these columns, named like CallRow's fields.
CALL_FIELDS = tuple(f.name for f in fields(CallRow))
CALL_COLUMNS = ", ".join(CALL_FIELDS)


def call_values(call: CallRow) -> tuple[object, ...]:
    """The row's values in CALL_COLUMNS order (the drivers store a bool as their boolean)."""
    return tuple(getattr(call, name) for name in CALL_FIELDS)
