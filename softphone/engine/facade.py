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
import threading
from collections.abc import Callable, Coroutine
from concurrent.futures import Future
from typing import Any, TypeVar

from softphone.client.session import PasswordProvider
from softphone.engine.call import Call
from softphone.engine.devices import DeviceList
from softphone.engine.engine import Engine
from softphone.engine.events import EngineCallback
from softphone.protocol.models import TokenCredentials

T = TypeVar("T")


class EngineThread:
    """Runs `Engine(**engine_options)` on a private loop thread; call `close()` when done."""

    def __init__(self, *, timeout: float = 15.0, **engine_options: Any) -> None:
        self.timeout = timeout
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="softphone-engine", daemon=True)
        self._thread.start()
        self._ready.wait()
        self.engine: Engine = self._call_sync(lambda: Engine(**engine_options))
        self._closed = False

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.call_soon(self._ready.set)
        self._loop.run_forever()
        self._loop.close()

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        return self._loop

    def _call_sync(self, fn: Callable[[], T]) -> T:
        """Run a plain function on the engine thread (Engine objects are built there, so
        their asyncio primitives belong to the engine's loop)."""

        async def wrap() -> T:
            return fn()

        return self._run_coro(wrap())

    def _run_coro(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        if threading.current_thread() is self._thread:
            coro.close()
            raise RuntimeError("EngineThread methods cannot be called from the engine thread")
        future: Future[T] = asyncio.run_coroutine_threadsafe(coro, self._loop)
        try:
            return future.result(self.timeout if timeout is None else timeout)
        except TimeoutError:
            future.cancel()
            raise

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
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(self.timeout)

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

    def get(self, call_id: str) -> Call:
        return self._call_sync(lambda: self.engine.get(call_id))

    def get_all(self) -> list[Call]:
        return self._call_sync(self.engine.get_all)


__all__ = ["EngineThread"]
