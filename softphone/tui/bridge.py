"""Engine events → Textual messages. The bridge runs on the engine's thread (it is the engine's
subscriber), so it may read the engine's call snapshot directly; `post_message` is thread-safe."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from textual.app import App

from softphone.tui.messages import EngineEventMessage, StatsUpdated

if TYPE_CHECKING:
    from softphone.engine import Call, Engine
    from softphone.engine.events import EngineEvent


class Bridge:
    """Subscribe with `EngineThread.subscribe(Bridge(app, engine_thread.engine))`."""

    def __init__(self, app: App[Any], engine: Engine) -> None:
        self._app = app
        self._engine = engine

    def __call__(self, event: EngineEvent) -> None:
        call_id = getattr(event, "call_id", None)
        stats = getattr(event, "stats", None)
        if event.name == "call:statsReceived" and isinstance(call_id, str):
            self._app.post_message(StatsUpdated(call_id, dict(stats or {})))
            return
        call: Call | None = None
        if isinstance(call_id, str):
            try:
                call = self._engine.get(call_id)
            except Exception:  # the call is gone: the event still tells what happened
                call = None
        self._app.post_message(EngineEventMessage(event, call))


__all__ = ["Bridge"]
