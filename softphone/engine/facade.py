"""`EngineThread`: an `Engine` on its own asyncio loop in a dedicated daemon thread.

Every method is thread-safe and blocks until the engine has done the operation (or `timeout`
passed: TimeoutError; the operation's EngineError is re-raised as is).

Events are delivered to `subscribe`d callbacks **on the engine's thread**. Callbacks must be
quick and thread-safe (e.g. Textual's `post_message`, or `queue.put`); a slow callback stalls
the media of every call. Never call back into the facade synchronously from a callback (it
would wait on its own thread): post the work elsewhere instead.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from softphone.client.session import PasswordProvider
from softphone.engine.call import Call
from softphone.engine.devices import DeviceList
from softphone.engine.engine import Engine
from softphone.engine.events import EngineCallback
from softphone.engine.sources import AudioProcessing
from softphone.loop_thread import LoopThread
from softphone.protocol.models import TokenCredentials

T = TypeVar("T")


class EngineThread:
    """Runs `Engine(**engine_options)` on a private loop thread; call `close()` when done."""

    def __init__(self, *, timeout: float = 15.0, **engine_options: Any) -> None:
        self.timeout = timeout
        self._thread = LoopThread("softphone-engine")
        self.engine: Engine = self._thread.call(lambda: Engine(**engine_options), timeout)
        self._closed = False

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        return self._thread.loop

    def _call_sync(self, fn: Callable[[], T]) -> T:
        return self._thread.call(fn, self.timeout)

    def _run_coro(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        return self._thread.run(coro, self.timeout if timeout is None else timeout)

    # -- events ------------------------------------------------------------------------------

    def subscribe(self, callback: EngineCallback) -> Callable[[], None]:
        """Deliver every engine event to `callback` on the engine thread (see module doc)."""
        return self._call_sync(lambda: self.engine.subscribe(callback))

    # -- lifecycle ---------------------------------------------------------------------------

    def start(
        self, server_url: str, username: str, password_provider: PasswordProvider, **kw: Any
    ) -> None:
        self._run_coro(self.engine.start(server_url, username, password_provider, **kw))

    def stop(self) -> None:
        self._run_coro(self.engine.stop())

    def close(self) -> None:
        """Stop the engine (ending calls), stop the loop and join the thread."""
        if self._closed:
            return
        self._closed = True
        try:
            self._run_coro(self.engine.stop())
        finally:
            self._thread.stop(self.timeout)

    def __enter__(self) -> EngineThread:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- operations --------------------------------------------------------------------------

    def make(self, to: str, **kw: Any) -> str:
        return self._run_coro(self.engine.make(to, **kw))

    def make_anonymous(
        self, to: str, credentials: TokenCredentials | None = None, **kw: Any
    ) -> str:
        return self._run_coro(self.engine.make_anonymous(to, credentials, **kw))

    def answer(self, call_id: str, **kw: Any) -> None:
        self._run_coro(self.engine.answer(call_id, **kw))

    def reject(self, call_id: str) -> None:
        self._run_coro(self.engine.reject(call_id))

    def ignore(self, call_id: str) -> None:
        self._run_coro(self.engine.ignore(call_id))

    def end(self, call_id: str) -> None:
        self._run_coro(self.engine.end(call_id))

    def hold(self, call_id: str) -> None:
        self._run_coro(self.engine.hold(call_id))

    def unhold(self, call_id: str) -> None:
        self._run_coro(self.engine.unhold(call_id))

    def mute(self, call_id: str) -> None:
        self._run_coro(self.engine.mute(call_id))

    def unmute(self, call_id: str) -> None:
        self._run_coro(self.engine.unmute(call_id))

    def send_dtmf(self, call_id: str, digits: str, **kw: Any) -> None:
        self._run_coro(self.engine.send_dtmf(call_id, digits, **kw))

    def start_video(self, call_id: str, **kw: Any) -> None:
        self._run_coro(self.engine.start_video(call_id, **kw))

    def stop_video(self, call_id: str) -> None:
        self._run_coro(self.engine.stop_video(call_id))

    def show_video(self, call_id: str) -> None:
        self._run_coro(self.engine.show_video(call_id))

    def restart_media(self, call_id: str) -> None:
        self._run_coro(self.engine.restart_media(call_id))

    def get_stats(self, call_id: str) -> dict[str, Any]:
        return self._run_coro(self.engine.get_stats(call_id))

    # -- devices -----------------------------------------------------------------------------

    def list_devices(self, *, rescan: bool = False) -> DeviceList:
        return self._run_coro(self.engine.list_devices(rescan=rescan))

    def set_audio_input(self, spec: str) -> None:
        self._run_coro(self.engine.set_audio_input(spec))

    def set_audio_output(self, spec: str) -> None:
        self._run_coro(self.engine.set_audio_output(spec))

    def set_camera(self, spec: str) -> None:
        self._run_coro(self.engine.set_camera(spec))

    def set_audio_processing(
        self,
        echo_cancellation: str | None = None,
        noise_suppression: bool | None = None,
        auto_gain: bool | None = None,
    ) -> AudioProcessing:
        return self._run_coro(
            self.engine.set_audio_processing(echo_cancellation, noise_suppression, auto_gain)
        )

    # -- the ring tone -------------------------------------------------------------------------

    def start_ringing(self) -> None:
        self._run_coro(self.engine.start_ringing())

    def stop_ringing(self) -> None:
        self._run_coro(self.engine.stop_ringing())

    @property
    def ringing(self) -> bool:
        """Whether the ring tone plays now."""
        return self._call_sync(lambda: self.engine.ringing)

    def get(self, call_id: str) -> Call:
        return self._call_sync(lambda: self.engine.get(call_id))

    def get_all(self) -> list[Call]:
        return self._call_sync(self.engine.get_all)


__all__ = ["EngineThread"]
