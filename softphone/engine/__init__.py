"""The call engine: calls over the signaling client and aiortc, with the calling SDK's states
and events. `Engine` is the async core (one event loop); `EngineThread` runs it on its own
thread behind a thread-safe facade (for the TUI)."""

from softphone.engine.call import Call
from softphone.engine.devices import DeviceList
from softphone.engine.engine import Engine
from softphone.engine.errors import EngineError, ErrorInfo
from softphone.engine.facade import EngineThread
from softphone.engine.states import CallState

__all__ = [
    "Call",
    "CallState",
    "DeviceList",
    "Engine",
    "EngineError",
    "EngineThread",
    "ErrorInfo",
]
