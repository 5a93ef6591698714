"""Hang-ups the server has not heard yet.

A call ends locally at once, whether or not the server can be told. When it cannot (no
connection, a timeout, a 5xx), the end waits here, keyed by the server's call id, and is sent
again with back-off while the engine runs, and at once when the engine wakes the outbox (the
channel is connected again, a resync listed the call). Without this the other party would stay
Connected and the server would keep the call live until the device's subscription was lost.

A refusal (404, 409, 403: the call has ended there already, or is not ours) clears an entry: it
is the answer we wanted. A 401 keeps it: the client logs in again and the end goes out then.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from softphone.client import AuthError, Backoff, ClientError, ServerError

log = logging.getLogger("softphone.engine.outbox")

Send = Callable[[str], Awaitable[object]]
# Far more ends than any device makes in one outage; past it the oldest are dropped (with a
# warning), so a server that never comes back cannot grow the engine without bound.
MAX_PENDING = 1024


@dataclass(frozen=True, slots=True)
class PendingEnd:
    """One end not yet delivered: the server's call id, why we ended it, and since when."""

    server_id: str
    reason: str
    since: float  # time.monotonic() when it was first remembered


def refused(exc: BaseException) -> bool:
    """Whether the server answered an end with a refusal that retrying cannot change."""
    return isinstance(exc, ServerError) and not isinstance(exc, AuthError) and not exc.transient


class EndOutbox:
    """Pending ends, sent by one background task (`start`/`stop`) through `send(server_id)`.

    `on_delivered(entry, refused)` is called once per entry that left the outbox.
    """

    def __init__(
        self,
        send: Send,
        *,
        backoff: Backoff | None = None,
        on_delivered: Callable[[PendingEnd, bool], None] | None = None,
    ) -> None:
        self._send = send
        # A short cap: pending ends are few, and a try against a server that is down costs a
        # refused connection, so a restarted server hears them within ~2 s, not at the
        # client's next reconnect (whose back-off may have grown to 30 s by then).
        self._backoff = backoff or Backoff(base=0.25, cap=2.0)
        self._on_delivered = on_delivered
        self._pending: dict[str, PendingEnd] = {}
        self._wakeup = asyncio.Event()
        self._flushing = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None

    def __len__(self) -> int:
        return len(self._pending)

    def __contains__(self, server_id: object) -> bool:
        return server_id in self._pending

    @property
    def pending(self) -> list[PendingEnd]:
        return list(self._pending.values())

    def add(self, server_id: str, reason: str) -> None:
        """Remember an end the server could not be told, and try it soon."""
        if server_id not in self._pending:
            if len(self._pending) >= MAX_PENDING:
                oldest = next(iter(self._pending))
                log.warning("outbox full: forgetting the end of call %s", oldest)
                del self._pending[oldest]
            self._pending[server_id] = PendingEnd(server_id, reason, time.monotonic())
            log.info("call %s: end (%s) kept until the server is reachable", server_id, reason)
        self.wake()

    def wake(self) -> None:
        """Try now rather than after the back-off (the server is likely back)."""
        if self._pending:
            self._wakeup.set()

    def start(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="end outbox")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def flush(self) -> bool:
        """One pass over the pending ends, oldest first; stops at the first one the server
        could not take (the others would fail alike). True when nothing is left."""
        async with self._flushing:
            for entry in list(self._pending.values()):
                try:
                    await self._send(entry.server_id)
                except ClientError as exc:
                    if not refused(exc):
                        log.info("call %s: end still not delivered: %s", entry.server_id, exc)
                        return False
                    self._delivered(entry, True)
                    log.info("call %s: end refused (ended there already): %s", entry.server_id, exc)
                else:
                    self._delivered(entry, False)
                    log.info("call %s: end delivered", entry.server_id)
            return not self._pending

    def _delivered(self, entry: PendingEnd, was_refused: bool) -> None:
        if self._pending.get(entry.server_id) is entry:
            del self._pending[entry.server_id]
        if self._on_delivered is not None:
            try:
                self._on_delivered(entry, was_refused)
            except Exception:
                log.exception("outbox delivery callback failed")

    async def _run(self) -> None:
        attempt = 0
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            while not await self.flush():
                attempt += 1
                # Woken early when the channel is back; otherwise the back-off paces retries.
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self._backoff.delay(attempt)):
                        await self._wakeup.wait()
                self._wakeup.clear()
            attempt = 0


__all__ = ["MAX_PENDING", "EndOutbox", "PendingEnd", "refused"]
