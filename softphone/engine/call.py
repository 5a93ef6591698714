"""`Call`: the immutable snapshot of a call that users get (`Engine.get`, `Engine.get_all`).

The call itself lives in its `CallSession` (softphone/engine/session.py)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from softphone.engine.events import MediaOffered
from softphone.engine.states import CallState

Direction = Literal["outgoing", "incoming"]


@dataclass(frozen=True, slots=True)
class Call:
    """A snapshot of one call (`Engine.get`, `Engine.get_all`); it never changes."""

    id: str
    from_: str
    to: str
    direction: Direction
    state: CallState
    local_hold: bool
    remote_hold: bool
    local_tracks: tuple[str, ...]
    remote_tracks: tuple[str, ...]
    media_offered: MediaOffered
    remote_participant: str
    start_time: float
    end_time: float | None
    end_reason: str | None
    muted: bool
    anonymous: bool
    server_id: str | None
    media_state: str


__all__ = ["Call", "Direction"]
