"""Connection events of the signaling client, named after the calling SDK's events.

How events are delivered (one design): every component takes one synchronous callback,
`on_event(event)`, and calls it on the client's event loop, in the order things happened. The
callback must not block; an exception it raises is logged and swallowed, never allowed to kill
the reader. A consumer on another thread hops over itself (`loop.call_soon_threadsafe`, or
Textual's thread-safe `post_message`). `EventStream` is a ready-made callback that turns the
events into an async iterator for consumers that prefer `async for` (and for tests).

Events carry `name`, the SDK's event name (`ws:change`, `subscription:change`, ...).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import ClassVar, Literal, TypeVar

from softphone.client import errors
from softphone.protocol import frames
from softphone.protocol.models import CallInfo

WsState = Literal["connecting", "connected", "reconnecting", "disconnected"]
SubscriptionState = Literal["subscribed", "unsubscribed"]
SubscriptionReason = Literal["lost_connection", "gone", "replaced", "expired"]
AuthState = Literal["authenticated", "unauthenticated"]


@dataclass(frozen=True, slots=True)
class WsChange:
    """The notification websocket changed state.

    `attempt` counts reconnect attempts since the last good connection (0 on the first
    connect); `retry_in` is the back-off delay before the next attempt when `reconnecting`.
    `disconnected` is final for that channel: it was stopped, ended by the server, or gave up.
    """

    name: ClassVar[str] = "ws:change"
    state: WsState
    attempt: int = 0
    reason: str | None = None
    retry_in: float | None = None


@dataclass(frozen=True, slots=True)
class SubscriptionChange:
    """Subscribed, or unsubscribed: by us (`reason` None) or not (`lost_connection`: reconnect
    gave up; `gone`: the server ended it; `replaced`: another connection took the channel;
    `expired`: the subscription or its session expired). `detail` is the server's wording."""

    name: ClassVar[str] = "subscription:change"
    state: SubscriptionState
    reason: SubscriptionReason | None = None
    detail: str | None = None
    subscription_id: str | None = None


@dataclass(frozen=True, slots=True)
class SubscriptionResub:
    """A periodic subscription refresh happened (`is_failure` False) or failed (True)."""

    name: ClassVar[str] = "subscription:resub"
    attempt: int
    is_failure: bool
    error: errors.ClientError | None = None
    expires_at: float | None = None


@dataclass(frozen=True, slots=True)
class SubscriptionError:
    """Subscribing failed in a way retrying will not fix (e.g. too many devices)."""

    name: ClassVar[str] = "subscription:error"
    error: errors.ClientError


@dataclass(frozen=True, slots=True)
class AuthChange:
    """Logged in, or not any more (`reason`: logged out, expired, bad credentials, ...)."""

    name: ClassVar[str] = "auth:change"
    state: AuthState
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class AuthError:
    """Authentication failed (wrong password, expired or revoked token); see `error.code`.

    Not to be confused with the exception `softphone.client.errors.AuthError` it carries.
    """

    name: ClassVar[str] = "auth:error"
    error: errors.ClientError


@dataclass(frozen=True, slots=True)
class Resynced:
    """Missed notifications could not be replayed: here are the live calls as they are now.

    Emitted after `resume_failed` (including the first connect of a subscription). Notifications
    that follow may already be reflected in `calls`; apply them idempotently.
    """

    name: ClassVar[str] = "calls:resync"
    calls: list[CallInfo]


@dataclass(frozen=True, slots=True)
class Notification:
    """A server notification (`call.incoming`, `call.answered`, ...), each delivered once, in
    `seq` order, including the ones replayed after a reconnect. (`subscription.gone` is not
    passed on as a notification: it becomes a `SubscriptionChange`.)"""

    name: ClassVar[str] = "notification"
    frame: frames.Notification


Event = (
    WsChange
    | SubscriptionChange
    | SubscriptionResub
    | SubscriptionError
    | AuthChange
    | AuthError
    | Resynced
    | Notification
)
EventCallback = Callable[[Event], None]

E = TypeVar("E", bound=Event)


def ignore(event: Event) -> None:
    """The default callback: drop events."""


class EventStream:
    """An `on_event` callback that queues events for `async for` (same event loop only).

    `history` keeps every event received, for assertions and debugging.
    """

    def __init__(self) -> None:
        self._queue: asyncio.Queue[Event] = asyncio.Queue()
        self.history: list[Event] = []

    def __call__(self, event: Event) -> None:
        self.history.append(event)
        self._queue.put_nowait(event)

    def __aiter__(self) -> AsyncIterator[Event]:
        return self

    async def __anext__(self) -> Event:
        return await self._queue.get()

    async def next(self, timeout: float | None = None) -> Event:
        async with asyncio.timeout(timeout):
            return await self._queue.get()

    async def wait_for(
        self, kind: type[E], predicate: Callable[[E], bool] = lambda e: True, timeout: float = 5.0
    ) -> E:
        """Consume events until one of `kind` matching `predicate` arrives (TimeoutError if
        none does in time); the events skipped stay in `history`."""
        deadline = time.monotonic() + timeout
        while True:
            event = await self.next(max(0.0, deadline - time.monotonic()))
            if isinstance(event, kind) and predicate(event):
                return event

    def pending(self) -> list[Event]:
        """Take the events queued so far without waiting."""
        taken: list[Event] = []
        while not self._queue.empty():
            taken.append(self._queue.get_nowait())
        return taken


__all__ = [
    "AuthChange",
    "AuthError",
    "Event",
    "EventCallback",
    "EventStream",
    "Notification",
    "Resynced",
    "SubscriptionChange",
    "SubscriptionError",
    "SubscriptionResub",
    "WsChange",
    "ignore",
]
