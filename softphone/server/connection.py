"""One notification websocket's sending side: a bounded queue, a reply budget, a clean close.

A writer task owns every send, so frames leave in publish order. What is queued is bounded (in
frames and bytes): a client that does not read is not allowed to grow the server. On overflow
the queue is dropped (every notification is in the subscription's resume buffer) and the socket
is closed with `SLOW_CONSUMER`, so the client reconnects and resumes.

Closing follows RFC 6455: our close frame, then the client's, then TCP. Closing TCP while the
client still sends would reset the connection and lose the close frame (and whatever preceded
it) in a client that reads late; a client that never answers is cut off after `CLOSE_TIMEOUT`.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Callable

from aiohttp import web

from softphone.protocol.errors import CloseCode

SEND_QUEUE_FRAMES = 256
SEND_QUEUE_BYTES = 1 << 20
CLOSE_TIMEOUT = 10.0
# Replies to client frames (pongs, errors). A client pings about once per ping interval; the
# budget leaves room for chatty ones (tests ping after every request) and bounds the rest.
REPLY_BUDGET = 1000
REPLY_INTERVAL = 10.0


class ReplyBudget:
    """At most `limit` replies per fixed `interval`; the frames beyond are not even decoded."""

    def __init__(self, limit: int | None = None, interval: float | None = None) -> None:
        self._limit = REPLY_BUDGET if limit is None else limit
        self._interval = REPLY_INTERVAL if interval is None else interval
        self._window_start = time.monotonic()
        self._used = 0
        self.refused = 0

    def take(self) -> bool:
        now = time.monotonic()
        if now - self._window_start >= self._interval:
            self._window_start = now
            self._used = 0
        if self._used >= self._limit:
            self.refused += 1
            return False
        self._used += 1
        return True


class QueueWatermark:
    """The most bytes any one send queue held beyond its welcome and replay: what an operator
    sizes `max_websocket_queue_bytes` by (a queue that drains at once never shows in the
    current total)."""

    def __init__(self) -> None:
        self.high = 0

    def saw(self, queued: int) -> None:
        if queued > self.high:
            self.high = queued


class Connection:
    """The sending side of one websocket, and its close."""

    def __init__(
        self,
        ws: web.WebSocketResponse,
        transport: asyncio.BaseTransport | None,
        first: list[bytes],
        on_overflow: Callable[[Connection], None],
        *,
        max_frames: int = SEND_QUEUE_FRAMES,
        max_bytes: int = SEND_QUEUE_BYTES,
        watermark: QueueWatermark | None = None,
    ) -> None:
        """`first` (welcome and a replay, up to a whole resume buffer) is queued on top of the
        bounds, so a resume is never cut short by its own replay."""
        self.ws = ws
        self._transport = transport
        self._on_overflow = on_overflow
        self.budget = ReplyBudget()
        self.overflowed = False
        self._items: deque[bytes] = deque(first)
        self._bytes = sum(map(len, first))
        self._max_frames = max_frames + len(first)
        self._max_bytes = max_bytes + self._bytes
        self._first_bytes = self._bytes
        self._watermark = watermark or QueueWatermark()
        self._wake = asyncio.Event()
        self._close_code: int | None = None
        self._reader: asyncio.Task[None] | None = None
        self._writer = asyncio.create_task(self._write())

    @property
    def queued_bytes(self) -> int:
        return self._bytes

    @property
    def closing(self) -> bool:
        return self._close_code is not None

    def set_reader(self, reader: asyncio.Task[None]) -> None:
        """The task reading this socket; the close stops it so that the client's close frame
        is read by the close handshake."""
        self._reader = reader

    def send(self, data: bytes) -> bool:
        """Queue a frame. False if it will not be sent: the connection is closing, or this
        frame overflowed the queue (the connection then closes with SLOW_CONSUMER)."""
        if self._close_code is not None:
            return False
        if len(self._items) >= self._max_frames or self._bytes + len(data) > self._max_bytes:
            self._overflow()
            return False
        self._items.append(data)
        self._bytes += len(data)
        self._watermark.saw(self._bytes - self._first_bytes)
        self._wake.set()
        return True

    def close_after_flush(self, code: int) -> None:
        """Send what is queued, then close with `code` (the first code asked for wins)."""
        if self._close_code is None:
            self._close_code = code
            self._wake.set()

    def _overflow(self) -> None:
        self.overflowed = True
        self._close_code = CloseCode.SLOW_CONSUMER
        self._items.clear()
        self._bytes = 0
        # The writer is most likely waiting for the socket to drain; a frame is written whole
        # before that wait, so cancelling it leaves the stream intact for the close frame.
        stuck = self._writer
        stuck.cancel()
        self._writer = asyncio.create_task(self._close_after(stuck))
        self._on_overflow(self)

    async def _close_after(self, stuck: asyncio.Task[None]) -> None:
        await asyncio.wait([stuck])
        await self._close()

    async def _write(self) -> None:
        try:
            while True:
                while self._items:
                    data = self._items.popleft()
                    self._bytes -= len(data)
                    await self.ws.send_str(data.decode())
                if self._close_code is not None:
                    break
                self._wake.clear()
                await self._wake.wait()
        except (ConnectionError, RuntimeError):
            pass  # the peer went away mid-write; the close below only releases the socket
        await self._close()

    async def _close(self) -> None:
        if self._reader is not None and not self._reader.done():
            self._reader.cancel()
            await asyncio.wait([self._reader])
        code = self._close_code or CloseCode.GOING_AWAY
        try:
            # Sends our close frame, then reads (and drops) frames until the client's close.
            await asyncio.wait_for(self.ws.close(code=code), CLOSE_TIMEOUT)
        except (TimeoutError, ConnectionError, RuntimeError):
            self._abort()

    def _abort(self) -> None:
        if isinstance(self._transport, asyncio.WriteTransport):
            self._transport.abort()

    async def finish(self) -> None:
        """Wait for the close to complete (bounded); then the socket is released either way."""
        with contextlib.suppress(TimeoutError, asyncio.CancelledError):
            await asyncio.wait_for(asyncio.shield(self._writer), CLOSE_TIMEOUT + 1)
        if not self._writer.done():
            self._writer.cancel()
            self._abort()
