"""The Redis bus: what several server processes share beyond the database.

- Each subscription's notifications: a counter `seq:<sub>` and a stream `st:<sub>` whose entry
  ids are the seqs (`<seq>-0`), trimmed to `[server] resume_buffer`; the stream is the truth a
  resume reads, on any process.
- Fan-out: the same publish rings a doorbell, the pub/sub channel `ch:<sub>`, carrying the frame;
  the process holding the subscription's websocket listens there and fills any gap from the
  stream (so a doorbell lost while Redis restarted costs nothing).
- Devices seen (`seen`, a sorted set by Redis time) and lost (`lost`): every process sweeps, and
  an atomic claim lets exactly one declare a device lost, whichever process held it.
- Timers (`timers`, by due time): ring timeouts fire on whichever process claims them first,
  so they fire even when the process that armed them died.
- Shared token-bucket rate limits.

Every step that must be atomic is one Lua script, timed by Redis' own clock. A call action's
writes (its notifications, control doorbells, timers armed and disarmed) are batched
(`batch()`): they go in one pipelined round trip at the end of the action, in order, before
its commit, and not at all when the action fails. Publishing uses
redis-py's blocking client on purpose: it runs while the call's row lock is held, between the
write and the commit (see calls.py), where there must be no await point; it costs one loopback
round trip. Everything that waits (the doorbell listener, resume reads) uses redis-py's asyncio
client. Keys are built inside scripts, so this needs one Redis (or a primary), not Redis Cluster.
Redis must keep its data across a restart (appendonly yes): the seqs live there.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Sequence
from typing import Any

import redis
import redis.asyncio
import redis.exceptions
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from softphone.server.bus_scripts import (
    ARM,
    CLAIM_DUE,
    CLAIM_LOST,
    DONE,
    FORGET,
    OPEN,
    PUBLISH,
    RANGE,
    SEEN,
    TAKE,
)
from softphone.server.store_rows import StoreUnavailable

log = logging.getLogger("softphone.server.bus")

PREFIX = "sp:"
TIMER_LEASE = 5.0  # seconds a claimed timer is a process's before another may take it
REDIS_ERRORS = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)


class BusUnavailable(StoreUnavailable):
    """Redis cannot be reached now; requests get 503 service_unavailable, like a store outage."""


def with_seq(data: bytes, seq: int) -> bytes:
    """A frame encoded with seq 0 (msgspec puts the inherited `seq` last) given its seq."""
    tail = b'"seq":0}'
    if data.endswith(tail):
        return data[: -len(tail)] + b'"seq":%d}' % seq
    raise ValueError("a notification frame must be encoded with seq 0 as its last field")


def _entries(raw: Sequence[Any]) -> list[tuple[int, bytes]]:
    out = []
    for entry_id, fields in raw:
        seq = int(bytes(entry_id).split(b"-")[0])
        data = (
            fields[b"d"]
            if isinstance(fields, dict)
            else dict(zip(fields[::2], fields[1::2], strict=True))[b"d"]
        )
        out.append((seq, bytes(data)))
    return out


@contextlib.contextmanager
def unavailable() -> Iterator[None]:
    try:
        yield
    except REDIS_ERRORS as exc:
        raise BusUnavailable(f"the bus (Redis) is unreachable: {exc.__class__.__name__}") from exc


class RedisBus:
    def __init__(self, url: str, *, password: str | None, resume_buffer: int) -> None:
        options: dict[str, Any] = {"socket_timeout": 2.0, "socket_connect_timeout": 2.0}
        if password is not None:
            options["password"] = password
        self.url = url
        self._maxlen = str(resume_buffer)
        self.sync: redis.Redis = redis.Redis.from_url(url, **options)
        self.aio: redis.asyncio.Redis = redis.asyncio.Redis.from_url(
            url, socket_connect_timeout=2.0, password=password
        )
        # The doorbell listener's own client, without redis-py's silent reconnect: after a
        # lost connection the listener must know, to fill what it missed from the streams.
        self.listener: redis.asyncio.Redis = redis.asyncio.Redis.from_url(
            url, socket_connect_timeout=2.0, password=password, retry=Retry(NoBackoff(), 0)
        )
        # The writes of the batch in progress (None: each write is its own round trip).
        self._batch: redis.client.Pipeline | None = None
        self._publish = self.sync.register_script(PUBLISH)
        self._seen = self.sync.register_script(SEEN)
        self._claim_lost = self.sync.register_script(CLAIM_LOST)
        self._arm = self.sync.register_script(ARM)
        self._claim_due = self.sync.register_script(CLAIM_DUE)
        self._done = self.sync.register_script(DONE)
        self._take = self.sync.register_script(TAKE)
        self._forget = self.sync.register_script(FORGET)
        self._open = self.aio.register_script(OPEN)
        self._range = self.aio.register_script(RANGE)

    def check(self) -> None:
        """At start: an unreachable Redis is an error at once (BusUnavailable)."""
        with unavailable():
            self.sync.ping()

    def ping(self) -> bool:
        try:
            return bool(self.sync.ping())
        except REDIS_ERRORS:
            return False

    async def close(self) -> None:
        self.sync.close()
        await self.aio.aclose()
        await self.listener.aclose()

    @contextlib.contextmanager
    def batch(self) -> Iterator[None]:
        """Writes inside go to Redis together when the outermost batch ends without an
        exception (one round trip), and are dropped when it ends with one. Reads inside still
        go at once: none of them depends on a write of the same batch."""
        if self._batch is not None:
            yield
            return
        self._batch = self.sync.pipeline(transaction=False)
        try:
            yield
            pipe = self._batch
            self._batch = None
            if len(pipe):
                with unavailable():
                    pipe.execute()
        finally:
            self._batch = None

    def _script(self, script: Any, source: str, args: list[Any]) -> Any:
        """Run a registered script now, or queue it in the batch. Queued as EVAL with its text:
        redis-py checks SCRIPT EXISTS before each pipeline that holds EVALSHAs (a round trip
        more), and a Redis restarted since would not know the sha."""
        if self._batch is not None:
            self._batch.eval(source, 0, *args)
            return None
        return script(args=args)

    # -- notifications -----------------------------------------------------------------------

    def publish(self, targets: Sequence[tuple[str, bytes]]) -> list[int] | None:
        """Give each (subscription, frame with seq 0) its next seq, keep it, ring the doorbell;
        0 for a lost subscription (nobody can resume those frames). One round trip, or None
        when queued in a batch."""
        if not targets:
            return []
        args: list[str | bytes] = [self._maxlen]
        for sub_id, data in targets:
            args += [sub_id, data]
        with unavailable():
            seqs = self._script(self._publish, PUBLISH, args)
        return None if seqs is None else [int(s) for s in seqs]

    def control(self, sub_id: str, message: bytes) -> None:
        """A control doorbell for whoever holds the websocket: R<nonce> (replaced), C<code>."""
        if self._batch is not None:
            self._batch.publish(f"{PREFIX}ch:{sub_id}", message)
            return
        with unavailable():
            self.sync.publish(f"{PREFIX}ch:{sub_id}", message)

    async def open(self, sub_id: str, after: int) -> tuple[int, bool, list[tuple[int, bytes]]]:
        """For a hello: (current seq, was lost, frames with seq > after)."""
        with unavailable():
            seq, lost, raw = await self._open(args=[sub_id, f"{after + 1}-0"])
        return int(seq), bool(lost), _entries(raw)

    async def frames_after(self, sub_id: str, after: int) -> list[tuple[int, bytes]]:
        with unavailable():
            return _entries(await self._range(args=[sub_id, f"{after + 1}-0"]))

    def current_seqs(self, sub_ids: Sequence[str]) -> list[int]:
        if not sub_ids:
            return []
        with unavailable():
            values = self.sync.mget([f"{PREFIX}seq:{s}" for s in sub_ids])
        return [int(v) if v is not None else 0 for v in values]

    def current_seq(self, sub_id: str) -> int:
        with unavailable():
            value = self.sync.get(f"{PREFIX}seq:{sub_id}")
        return int(value) if value is not None else 0

    def forget(self, sub_id: str) -> None:
        with unavailable():
            self._script(self._forget, FORGET, [sub_id])

    # -- devices -----------------------------------------------------------------------------

    def seen(self, sub_ids: Sequence[str]) -> list[str]:
        """Record the devices as seen now; those of them already declared lost."""
        if not sub_ids:
            return []
        with unavailable():
            return [bytes(x).decode() for x in self._seen(args=list(sub_ids))]

    def lost(self, sub_ids: Sequence[str]) -> list[bool]:
        if not sub_ids:
            return []
        with unavailable():
            return [bool(x) for x in self.sync.smismember(f"{PREFIX}lost", list(sub_ids))]

    def claim_lost(self, window: float) -> list[str]:
        with unavailable():
            return [bytes(s).decode() for s in self._claim_lost(args=[int(window * 1000)])]

    # -- timers ------------------------------------------------------------------------------

    def arm(self, name: str, delay: float) -> None:
        with unavailable():
            self._script(self._arm, ARM, [name, int(delay * 1000)])

    def disarm(self, name: str) -> None:
        if self._batch is not None:
            self._batch.zrem(f"{PREFIX}timers", name)
            return
        with unavailable():
            self.sync.zrem(f"{PREFIX}timers", name)

    def claim_due(self, lease: float = TIMER_LEASE) -> tuple[list[str], str]:
        """Timers due now, each leased to the caller for `lease` seconds; and the lease."""
        with unavailable():
            names, until = self._claim_due(args=[int(lease * 1000)])
        return [bytes(n).decode() for n in names], bytes(until).decode()

    def done(self, name: str, lease: str) -> None:
        with unavailable():
            self._done(args=[name, lease])

    # -- rate limits -------------------------------------------------------------------------

    def take(self, bucket: str, per_minute: int) -> float | None:
        """Take a token from a shared bucket; None, or the seconds to wait for one."""
        with unavailable():
            wait = self._take(
                keys=[f"{PREFIX}rl:{bucket}"], args=[per_minute / 60000.0, per_minute]
            )
        text = bytes(wait).decode() if wait else ""
        return float(text) / 1000.0 if text else None
