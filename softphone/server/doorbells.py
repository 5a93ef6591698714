"""This process's doorbell listener (server/bus.py): one pub/sub channel per websocket it
holds, with the frames published to that subscription."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from softphone.server.bus import PREFIX, REDIS_ERRORS, RedisBus, unavailable

log = logging.getLogger("softphone.server.bus")

Handler = Callable[[bytes], None]


class Doorbells:
    """This process's pub/sub listener: one channel per websocket it holds. After a lost
    connection to Redis it subscribes again and calls every `on_reconnect` (fill from the
    stream), so nothing published meanwhile is missed."""

    def __init__(self, bus: RedisBus) -> None:
        self._bus = bus
        self._handlers: dict[str, tuple[Handler, Callable[[], Awaitable[None]]]] = {}
        self._pubsub: Any = None
        self._task: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()
        self._stopping = False

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="bus doorbells")

    async def stop(self) -> None:
        self._stopping = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, TimeoutError):
                await asyncio.wait_for(self._task, 2.0)
        if self._pubsub is not None:
            with contextlib.suppress(*REDIS_ERRORS):
                await self._pubsub.aclose()

    async def add(
        self, sub_id: str, handler: Handler, on_reconnect: Callable[[], Awaitable[None]]
    ) -> None:
        self._handlers[sub_id] = (handler, on_reconnect)
        await self._ready.wait()
        with unavailable():
            await self._pubsub.subscribe(f"{PREFIX}ch:{sub_id}")

    async def remove(self, sub_id: str) -> None:
        if self._handlers.pop(sub_id, None) is not None and self._ready.is_set():
            with contextlib.suppress(*REDIS_ERRORS):
                await self._pubsub.unsubscribe(f"{PREFIX}ch:{sub_id}")

    async def _run(self) -> None:
        first = True
        while not self._stopping:
            try:
                self._pubsub = self._bus.listener.pubsub(ignore_subscribe_messages=True)
                # A placeholder channel keeps the connection subscribed (listen needs one).
                await self._pubsub.subscribe(f"{PREFIX}ch:-")
                channels = [f"{PREFIX}ch:{s}" for s in self._handlers]
                if channels:
                    await self._pubsub.subscribe(*channels)
                self._ready.set()
                if not first:
                    log.warning("bus connection back; filling gaps from the streams")
                    for _, refill in list(self._handlers.values()):
                        await refill()
                first = False
                while not self._stopping:
                    # get_message with a timeout, not listen(): redis-py's listen() can swallow
                    # a cancellation, and stop() must not wait on Redis.
                    message = await self._pubsub.get_message(timeout=0.5)
                    if message is None or message.get("type") != "message":
                        continue
                    channel = bytes(message["channel"]).decode()
                    entry = self._handlers.get(channel[len(PREFIX) + 3 :])
                    if entry is not None:
                        entry[0](bytes(message["data"]))
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if self._stopping:
                    return
                self._ready.clear()
                log.warning("bus connection lost (%s); retrying", exc.__class__.__name__)
                with contextlib.suppress(Exception):
                    await self._pubsub.aclose()
                await asyncio.sleep(0.2)
