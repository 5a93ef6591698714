"""The call record: a mutable internal record per call, and the immutable snapshot users get."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any, Literal

from softphone.engine.events import MediaOffered, PreviousState
from softphone.engine.states import ESTABLISHED, TERMINAL, CallState

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


@dataclass(eq=False)
class CallRecord:
    """The engine's own record of a call. Operations on it run under `lock`, one at a time."""

    id: str
    from_: str
    to: str
    direction: Direction
    start_time: float
    media_offered: MediaOffered = field(default_factory=MediaOffered)
    anonymous: bool = False
    server_id: str | None = None
    state: CallState = CallState.INITIATING
    local_hold: bool = False
    remote_hold: bool = False
    local_tracks: dict[str, str] = field(default_factory=dict)  # track id -> kind
    remote_tracks: dict[str, str] = field(default_factory=dict)
    end_time: float | None = None
    end_reason: str | None = None
    muted: bool = False
    media_state: str = "new"
    remote_offer: str | None = None  # an incoming call's offer, until answered
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    # Resources and plumbing, owned by the engine.
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def terminal(self) -> bool:
        return self.state in TERMINAL

    @property
    def established(self) -> bool:
        return self.state in ESTABLISHED

    @property
    def remote_participant(self) -> str:
        return self.to if self.direction == "outgoing" else self.from_

    def previous(self) -> PreviousState:
        return PreviousState(self.state, self.local_hold, self.remote_hold)

    def snapshot(self) -> Call:
        return Call(
            id=self.id,
            from_=self.from_,
            to=self.to,
            direction=self.direction,
            state=self.state,
            local_hold=self.local_hold,
            remote_hold=self.remote_hold,
            local_tracks=tuple(self.local_tracks),
            remote_tracks=tuple(self.remote_tracks),
            media_offered=self.media_offered,
            remote_participant=self.remote_participant,
            start_time=self.start_time,
            end_time=self.end_time,
            end_reason=self.end_reason,
            muted=self.muted,
            anonymous=self.anonymous,
            server_id=self.server_id,
            media_state=self.media_state,
        )


__all__ = ["Call", "CallRecord", "Direction"]
