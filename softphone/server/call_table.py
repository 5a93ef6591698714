"""Where CallService finds live calls and keeps ring timers: in this process (the default), or
shared by several processes (PostgreSQL rows locked per action, timers on the Redis bus).

In-process, the live calls are a dict written through to the store, and a ring timer is a
`call_later`: nothing else can change a call, so nothing needs a lock. Shared, every action runs
in one database transaction that locks the call's row first (`SELECT ... FOR UPDATE`): that row
lock is the one authority per call across processes. Row locks rather than Lua in Redis
because the call row already lives in PostgreSQL and must be written anyway: the lock, the
check, the write and the record are one transaction, with no second copy of call state to keep
in step. Notifications are published (Redis) before the commit, while the lock is held, so two
processes acting on one call notify in the order they changed it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from typing import Protocol

from softphone.protocol.models import ServerCallState
from softphone.server.bus import RedisBus
from softphone.server.storage import SharedStore, Storage
from softphone.server.store_rows import CallRow, StoreUnavailable

log = logging.getLogger("softphone.server.calls")

TIMER_POLL = 0.1  # how often a shared-mode process claims due ring timers, seconds


class CallTable(Protocol):
    def atomic(self) -> AbstractContextManager[None]:
        """Around one action: its reads, checks, writes and notifications."""
        ...

    def find(self, call_id: str) -> CallRow | None:
        """A call, live or ended (locked, when shared)."""
        ...

    def live(self, call_id: str) -> CallRow | None: ...

    def save(self, call: CallRow) -> None: ...

    def count_for(self, user: str) -> int:
        """Live calls `user` takes part in (an anonymous caller's label is not an account)."""
        ...

    def new_call_checks(self, caller: str | None, callee: str) -> tuple[bool, int, int]:
        """Whether `callee` has an account, and the live calls of `caller` (None: anonymous,
        counted as 0) and of `callee`."""
        ...

    def visible_to(self, user: str) -> list[CallRow]: ...

    def of_session(self, session_hash: str) -> list[CallRow]: ...

    @property
    def count(self) -> int: ...


class LocalCalls:
    def __init__(self, store: Storage) -> None:
        self._store = store
        self._live: dict[str, CallRow] = {c.id: c for c in store.live_calls()}

    def atomic(self) -> AbstractContextManager[None]:
        return contextlib.nullcontext()

    def find(self, call_id: str) -> CallRow | None:
        return self._live.get(call_id) or self._store.get_call(call_id)

    def live(self, call_id: str) -> CallRow | None:
        return self._live.get(call_id)

    def save(self, call: CallRow) -> None:
        self._store.put_call(call)
        if call.state == ServerCallState.ENDED.value:
            self._live.pop(call.id, None)
        else:
            self._live[call.id] = call

    def count_for(self, user: str) -> int:
        return sum(
            1
            for c in self._live.values()
            if c.callee == user or (c.caller == user and not c.anonymous)
        )

    def new_call_checks(self, caller: str | None, callee: str) -> tuple[bool, int, int]:
        known = self._store.get_user(callee) is not None
        return known, self.count_for(caller) if caller is not None else 0, self.count_for(callee)

    def visible_to(self, user: str) -> list[CallRow]:
        return [
            c
            for c in self._live.values()
            if user == c.callee or (user == c.caller and not c.anonymous)
        ]

    def of_session(self, session_hash: str) -> list[CallRow]:
        return [
            c for c in self._live.values() if session_hash in (c.caller_session, c.callee_session)
        ]

    def all_live(self) -> list[CallRow]:
        return list(self._live.values())

    @property
    def count(self) -> int:
        return len(self._live)


class SharedCalls:
    def __init__(self, store: SharedStore, bus: RedisBus) -> None:
        self._store = store
        self._bus = bus

    @contextlib.contextmanager
    def atomic(self) -> Iterator[None]:
        # The bus batch ends first: the action's notifications and timers reach Redis in one
        # round trip while the row lock is held, then the transaction commits; an action that
        # fails rolls back and sends none of them.
        with self._store.transaction(), self._bus.batch():
            yield

    def find(self, call_id: str) -> CallRow | None:
        return self._store.lock_call(call_id)

    def live(self, call_id: str) -> CallRow | None:
        call = self._store.lock_call(call_id)
        return call if call is not None and call.state != ServerCallState.ENDED.value else None

    def save(self, call: CallRow) -> None:
        self._store.put_call(call)

    def count_for(self, user: str) -> int:
        return self._store.live_count_of(user)

    def new_call_checks(self, caller: str | None, callee: str) -> tuple[bool, int, int]:
        return self._store.make_checks(caller, callee)  # one query where there were three

    def visible_to(self, user: str) -> list[CallRow]:
        return self._store.live_calls_of(user=user)

    def of_session(self, session_hash: str) -> list[CallRow]:
        return self._store.live_calls_of(session=session_hash)

    @property
    def count(self) -> int:
        return self._store.live_count()


class RingTimers(Protocol):
    def arm(self, call_id: str, delay: float) -> None: ...

    def disarm(self, call_id: str) -> None: ...

    def start(self, fire: Callable[[str], None]) -> None: ...

    async def stop(self) -> None: ...


class LocalTimers:
    def __init__(self) -> None:
        self._timers: dict[str, asyncio.TimerHandle] = {}
        self._fire: Callable[[str], None] = lambda call_id: None

    def start(self, fire: Callable[[str], None]) -> None:
        self._fire = fire

    def arm(self, call_id: str, delay: float) -> None:
        self.disarm(call_id)
        loop = asyncio.get_running_loop()
        self._timers[call_id] = loop.call_later(delay, self._fired, call_id)

    def _fired(self, call_id: str) -> None:
        self._timers.pop(call_id, None)
        self._fire(call_id)

    def disarm(self, call_id: str) -> None:
        timer = self._timers.pop(call_id, None)
        if timer is not None:
            timer.cancel()

    async def stop(self) -> None:
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()


class SharedTimers:
    """Timers in Redis by due time: every process polls, one claims each for a lease, so a
    timer armed by a process that died still fires (within TIMER_POLL of its time), and one
    whose claimer died before it was done fires again when the lease runs out."""

    def __init__(self, bus: RedisBus) -> None:
        self._bus = bus
        self._task: asyncio.Task[None] | None = None
        self._handlers: dict[str, Callable[[str], None]] = {}

    def handle(self, kind: str, handler: Callable[[str], None]) -> None:
        """Another kind of shared timer (`lost:<subscription>`, from the hub)."""
        self._handlers[kind] = handler

    def start(self, fire: Callable[[str], None]) -> None:
        self._handlers["ring"] = fire
        self._task = asyncio.create_task(self._poll(), name="shared timers")

    def arm(self, call_id: str, delay: float) -> None:
        self._bus.arm(f"ring:{call_id}", delay)

    def disarm(self, call_id: str) -> None:
        self._bus.disarm(f"ring:{call_id}")

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(TIMER_POLL)
            try:
                names, lease = self._bus.claim_due()
            except StoreUnavailable as exc:
                log.warning("shared timers: %s; retrying", exc)
                continue
            for name in names:
                kind, _, subject = name.partition(":")
                handler = self._handlers.get(kind)
                try:
                    if handler is not None:
                        handler(subject)
                    self._bus.done(name, lease)
                except StoreUnavailable as exc:
                    # Not done: the lease runs out and this or another process tries again.
                    log.warning("timer %s: %s; it will be retried", name, exc)
                except Exception:
                    log.exception("timer %s failed", name)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
