"""Engine events → Textual messages. The bridge runs on the engine's thread (it is the engine's
subscriber), so it may read the engine's call snapshot directly; `post_message` is thread-safe.

Imported once the engine is (the start-up worker builds it), so it may use the engine's types."""

from __future__ import annotations

from typing import Any

from textual.app import App

from softphone.engine import Call, Engine
from softphone.engine.events import (
    CallStatsReceived,
    ConnectionEvent,
    DevicesChanged,
    EngineEvent,
    MediaDeviceChange,
)
from softphone.tui.messages import EngineEventMessage


class Bridge:
    """Subscribe with `EngineThread.subscribe(Bridge(app, engine_thread.engine))`."""

    def __init__(self, app: App[Any], engine: Engine) -> None:
        self._app = app
        self._engine = engine

    def __call__(self, event: EngineEvent) -> None:
        if isinstance(event, CallStatsReceived):
            return  # the app's stats poll posts what it fetched; this is the same data again
        call: Call | None = None
        call_id = (
            None
            if isinstance(event, ConnectionEvent | MediaDeviceChange | DevicesChanged)
            else event.call_id
        )
        if call_id is not None:
            try:
                call = self._engine.get(call_id)
            except Exception:  # the call is gone: the event still tells what happened
                call = None
        self._app.post_message(EngineEventMessage(event, call))


__all__ = ["Bridge"]
