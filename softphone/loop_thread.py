"""`LoopThread`: an asyncio loop on its own daemon thread, driven from other threads.

The engine runs on one (`EngineThread`) so UI redraws never stall media pacing, and the
embedded server on another (`softphone.embedded`). `run` blocks the calling thread until a
coroutine finished on the loop; calling it from the loop's own thread would wait for itself,
so it refuses.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable, Coroutine
from concurrent.futures import Future
from typing import Any, TypeVar

T = TypeVar("T")


class LoopThread:
    """A private event loop running in a daemon thread named `name`."""

    def __init__(self, name: str) -> None:
        self._loop = asyncio.new_event_loop()
        ready = threading.Event()
        self._thread = threading.Thread(target=self._main, args=(ready,), name=name, daemon=True)
        self._thread.start()
        ready.wait()

    def _main(self, ready: threading.Event) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.call_soon(ready.set)
        try:
            self._loop.run_forever()
        finally:
            self._loop.close()

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        return self._loop

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def submit(self, coro: Coroutine[Any, Any, T]) -> Future[T]:
        """Schedule `coro` on the loop; returns at once."""
        if threading.current_thread() is self._thread:
            coro.close()
            raise RuntimeError(f"{self._thread.name}: cannot wait for its own loop")
        return asyncio.run_coroutine_threadsafe(coro, self._loop)

    def run(self, coro: Coroutine[Any, Any, T], timeout: float | None) -> T:
        """Run `coro` on the loop and wait for its result (TimeoutError after `timeout`
        seconds, and the coroutine is cancelled)."""
        future = self.submit(coro)
        try:
            return future.result(timeout)
        except TimeoutError:
            future.cancel()
            raise

    def call(self, fn: Callable[[], T], timeout: float | None) -> T:
        """Run a plain function on the loop's thread (objects that own asyncio primitives are
        built there, so those belong to this loop)."""

        async def wrap() -> T:
            return fn()

        return self.run(wrap(), timeout)

    def stop(self, timeout: float | None = None) -> None:
        """Stop the loop (after what is running yields) and join the thread; idempotent."""
        if self._loop.is_closed():
            return
        with contextlib.suppress(RuntimeError):  # closed meanwhile
            self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout)


__all__ = ["LoopThread"]
