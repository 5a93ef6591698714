"""The call engine: calls over the signaling client and aiortc, with the calling SDK's states
and events. `Engine` (engine.py) is the registry of calls and the router of notifications;
each call is one `CallSession` (session.py), which owns it. `EngineThread` runs the engine on
its own thread behind a thread-safe facade (for the TUI)."""

from softphone.engine.call import Call
from softphone.engine.devices import DeviceList
from softphone.engine.engine import Engine
from softphone.engine.errors import EngineError, EngineErrorCode, ErrorInfo
from softphone.engine.facade import EngineThread
from softphone.engine.sources import AudioProcessing
from softphone.engine.states import CallState

__all__ = [
    "AudioProcessing",
    "Call",
    "CallState",
    "DeviceList",
    "Engine",
    "EngineError",
    "EngineErrorCode",
    "EngineThread",
    "ErrorInfo",
]
