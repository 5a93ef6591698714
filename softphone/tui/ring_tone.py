"""The ring tone's switch: the app says when incoming calls should ring aloud, and this keeps
the engine's ring tone (`EngineThread.start_ringing` / `stop_ringing`) in step.

Those calls block, so they run in a thread worker; only one runs at a time and it applies the
newest wish until none is left, so a call cancelled the moment it rang cannot end with the
start overtaking the stop and ringing on. The engine stops the tone by itself when a call is
answered (the speaker may be the ring device) or when it closes.
"""

from __future__ import annotations

import threading
from functools import partial
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from softphone.engine import EngineThread
    from softphone.tui.app import SoftphoneApp


class RingTone:
    def __init__(self, app: SoftphoneApp) -> None:
        self._app = app
        self._lock = threading.Lock()
        self._wanted = False
        self._applied = False  # what the worker last told the engine
        self._engine: EngineThread | None = None  # ... that engine (a new login: a new one)
        self._busy = False  # a worker is applying

    @property
    def wanted(self) -> bool:
        return self._wanted

    def call_rings(self) -> None:
        """A call rings here (do not disturb and auto-answer were the app's to decide). Not
        during a call: a second call is told by the bell, not by a tone over the talk."""
        if not any(view.established for view in self._app.views.values()):
            self._want(True)

    def no_call_rings(self) -> None:
        """No incoming call is left (answered, rejected, ignored, cancelled, taken
        elsewhere)."""
        self._want(False)

    def _want(self, on: bool) -> None:
        engine = self._app.engine
        with self._lock:
            self._wanted = on
            if engine is not self._engine:  # the old engine stopped its ring as it closed
                self._engine, self._applied = engine, False
            if self._busy or on == self._applied or engine is None:
                return
            self._busy = True
        self._app.run_worker(
            partial(self._apply, engine),
            thread=True,
            group="ring",
            description="switch the ring tone",
            exit_on_error=False,
        )

    def _apply(self, engine: EngineThread) -> None:
        try:
            while True:
                with self._lock:
                    on = self._wanted
                    if on == self._applied:
                        # Done under the lock that _want checks: no wish is left behind.
                        self._busy = False
                        return
                    self._applied = on  # even if it fails: a failure is said, not retried
                if on:
                    engine.start_ringing()
                else:
                    engine.stop_ringing()
        except BaseException:
            with self._lock:
                self._busy = False
            raise


__all__ = ["RingTone"]
