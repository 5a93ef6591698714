"""Call states (the calling SDK's names and values) and their legal transitions."""

from __future__ import annotations

import enum
from collections.abc import Mapping


class CallState(enum.StrEnum):
    INITIATING = "Initiating"
    INITIATED = "Initiated"
    RINGING = "Ringing"
    EARLY_MEDIA = "Early Media"
    CANCELLED = "Cancelled"
    CONNECTED = "Connected"
    ON_HOLD = "On Hold"
    ENDED = "Ended"


S = CallState

# Legal transitions (reference/kandy.md §2.2), caller and callee together. A state may also
# move to itself only for ON_HOLD (a hold flag changed while still held).
TRANSITIONS: Mapping[CallState, frozenset[CallState]] = {
    S.INITIATING: frozenset({S.INITIATED, S.RINGING, S.ENDED, S.CANCELLED}),
    S.INITIATED: frozenset({S.RINGING, S.EARLY_MEDIA, S.CONNECTED, S.ENDED, S.CANCELLED}),
    S.RINGING: frozenset({S.EARLY_MEDIA, S.CONNECTED, S.ENDED, S.CANCELLED}),
    S.EARLY_MEDIA: frozenset({S.CONNECTED, S.ENDED}),
    S.CONNECTED: frozenset({S.ON_HOLD, S.ENDED}),
    S.ON_HOLD: frozenset({S.ON_HOLD, S.CONNECTED, S.ENDED}),
    S.CANCELLED: frozenset(),
    S.ENDED: frozenset(),
}

TERMINAL = frozenset({S.CANCELLED, S.ENDED})
UNANSWERED = frozenset({S.INITIATING, S.INITIATED, S.RINGING, S.EARLY_MEDIA})
ESTABLISHED = frozenset({S.CONNECTED, S.ON_HOLD})


def can_transition(old: CallState, new: CallState) -> bool:
    """Whether `old` → `new` is a legal transition."""
    return new in TRANSITIONS[old]


def check_transition(old: CallState, new: CallState) -> None:
    """Raise ValueError for an illegal transition (a bug in the engine, never user input)."""
    if not can_transition(old, new):
        raise ValueError(f"illegal call state transition {old.value!r} -> {new.value!r}")


__all__ = [
    "ESTABLISHED",
    "TERMINAL",
    "TRANSITIONS",
    "UNANSWERED",
    "CallState",
    "can_transition",
    "check_transition",
]
