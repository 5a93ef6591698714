"""App-wide messages: engine events crossing from the engine's thread, and start-up results."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from textual.message import Message

if TYPE_CHECKING:
    from softphone.embedded import Embedded
    from softphone.engine import Call, DeviceList, EngineThread
    from softphone.engine.events import EngineEvent


@dataclass
class EngineEventMessage(Message, bubble=False):
    """One engine event, with the call's snapshot taken on the engine thread (None when the
    event has no call or the call is gone)."""

    event: EngineEvent
    call: Call | None


@dataclass
class StatsUpdated(Message, bubble=False):
    """Fresh statistics of a call; a newer one replaces a pending one for the same call."""

    call_id: str
    stats: dict[str, Any]

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, StatsUpdated) and message.call_id == self.call_id


@dataclass
class EngineReady(Message, bubble=False):
    """The engine is logged in, or ready for anonymous calls (and the embedded server runs,
    if any)."""

    engine: EngineThread
    user: str
    server_url: str
    embedded: Embedded | None
    anonymous: bool = False


@dataclass
class DevicesListed(Message, bubble=False):
    """What the engine found; `pick` opens the Devices screen with it."""

    devices: DeviceList
    pick: bool = False


@dataclass
class Note(Message, bubble=False):
    """A line for the message log, from any thread."""

    text: str
    error: bool = False


__all__ = ["DevicesListed", "EngineEventMessage", "EngineReady", "Note", "StatsUpdated"]
