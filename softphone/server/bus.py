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

Every step that must be atomic is one Lua script, timed by Redis' own clock. Publishing uses
redis-py's blocking client on purpose: it runs while the call's row lock is held, between the
write and the commit (see calls.py), where there must be no await point; it costs one loopback
round trip. Everything that waits (the doorbell listener, resume reads) uses redis-py's asyncio
client. Keys are built inside scripts, so this needs one Redis (or a primary), not Redis Cluster.
Redis must keep its data across a restart (appendonly yes): the seqs live there.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterator, Sequence
from typing import Any

import redis
import redis.asyncio
import redis.exceptions
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from softphone.server.store_rows import StoreUnavailable

log = logging.getLogger("softphone.server.bus")

PREFIX = "sp:"
TIMER_LEASE = 5.0  # seconds a claimed timer is a process's before another may take it
REDIS_ERRORS = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)


class BusUnavailable(StoreUnavailable):
    """Redis cannot be reached now; requests get 503 service_unavailable, like a store outage."""


_PUBLISH = """
local maxlen = ARGV[1]
local seqs = {}
for i = 2, #ARGV, 2 do
  local sub = ARGV[i]
  if redis.call('SISMEMBER', 'sp:lost', sub) == 1 then
    seqs[#seqs + 1] = 0
  else
    local seq = redis.call('INCR', 'sp:seq:' .. sub)
    redis.call('XADD', 'sp:st:' .. sub, 'MAXLEN', maxlen, seq .. '-0', 'd', ARGV[i + 1])
    redis.call('PUBLISH', 'sp:ch:' .. sub, 'N' .. seq .. ' ' .. ARGV[i + 1])
    seqs[#seqs + 1] = seq
  end
end
return seqs
"""

_NOW_MS = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
"""

# Heartbeat of the devices this process holds (and the moment one detaches): ARGV = subs.
# Returns those already declared lost (by a process that did not see this heartbeat in time).
_SEEN = (
    _NOW_MS
    + """
local lost = {}
for i = 1, #ARGV do
  if redis.call('SISMEMBER', 'sp:lost', ARGV[i]) == 1 then
    lost[#lost + 1] = ARGV[i]
  else
    redis.call('ZADD', 'sp:seen', now, ARGV[i])
  end
end
return lost
"""
)

# Devices not seen for ARGV[1] ms: each is claimed by exactly one caller, marked lost and its
# stream dropped (a lost device cannot resume: its next hello gets resume_failed).
_CLAIM_LOST = (
    _NOW_MS
    + """
local subs = redis.call('ZRANGEBYSCORE', 'sp:seen', '-inf', now - tonumber(ARGV[1]),
                        'LIMIT', 0, 100)
for _, sub in ipairs(subs) do
  redis.call('ZREM', 'sp:seen', sub)
  redis.call('SADD', 'sp:lost', sub)
  redis.call('DEL', 'sp:st:' .. sub)
  -- Ending the device's calls is a timer due now, so it is leased like any other.
  redis.call('ZADD', 'sp:timers', now, 'lost:' .. sub)
end
return subs
"""
)

_ARM = (
    _NOW_MS
    + """
redis.call('ZADD', 'sp:timers', now + tonumber(ARGV[2]), ARGV[1])
return now
"""
)

# Done with a leased timer: remove it unless it was armed again meanwhile (another score).
_DONE = """
if redis.call('ZSCORE', 'sp:timers', ARGV[1]) == ARGV[2] then
  redis.call('ZREM', 'sp:timers', ARGV[1])
end
return 1
"""

_CLAIM_DUE = (
    _NOW_MS
    + """
-- Each due timer is leased for ARGV[1] ms, not removed: if the claiming process dies before
-- it is done, the timer falls due again and another process takes it.
local due = redis.call('ZRANGEBYSCORE', 'sp:timers', '-inf', now, 'LIMIT', 0, 100)
local lease = now + tonumber(ARGV[1])
for _, name in ipairs(due) do redis.call('ZADD', 'sp:timers', lease, name) end
return {due, tostring(lease)}
"""
)

# Token bucket: KEYS[1] the bucket, ARGV = rate per ms, burst. Returns '' or the wait in ms.
_TAKE = (
    _NOW_MS
    + """
local rate, burst = tonumber(ARGV[1]), tonumber(ARGV[2])
local b = redis.call('HMGET', KEYS[1], 'tokens', 'stamp')
local tokens, stamp = tonumber(b[1]) or burst, tonumber(b[2]) or now
tokens = math.min(burst, tokens + (now - stamp) * rate)
local wait = ''
if tokens < 1 then wait = tostring((1 - tokens) / rate) else tokens = tokens - 1 end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'stamp', now)
redis.call('PEXPIRE', KEYS[1], math.ceil(burst / rate) + 1000)
return wait
"""
)

_FORGET = """
local sub = ARGV[1]
redis.call('DEL', 'sp:seq:' .. sub, 'sp:st:' .. sub)
redis.call('ZREM', 'sp:seen', sub)
redis.call('SREM', 'sp:lost', sub)
return 1
"""

# A consistent view for a resume: the current seq, whether the device was lost (which it no
# longer is once this connection is welcomed), and the frames after ARGV[2].
_OPEN = """
local sub = ARGV[1]
local seq = tonumber(redis.call('GET', 'sp:seq:' .. sub) or '0')
local lost = redis.call('SREM', 'sp:lost', sub)
local frames = redis.call('XRANGE', 'sp:st:' .. sub, ARGV[2], '+')
return {seq, lost, frames}
"""

_RANGE = """
return redis.call('XRANGE', 'sp:st:' .. ARGV[1], ARGV[2], '+')
"""


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
def _unavailable() -> Iterator[None]:
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
        self._publish = self.sync.register_script(_PUBLISH)
        self._seen = self.sync.register_script(_SEEN)
        self._claim_lost = self.sync.register_script(_CLAIM_LOST)
        self._arm = self.sync.register_script(_ARM)
        self._claim_due = self.sync.register_script(_CLAIM_DUE)
        self._done = self.sync.register_script(_DONE)
        self._take = self.sync.register_script(_TAKE)
        self._forget = self.sync.register_script(_FORGET)
        self._open = self.aio.register_script(_OPEN)
        self._range = self.aio.register_script(_RANGE)

    def check(self) -> None:
        """At start: an unreachable Redis is an error at once (BusUnavailable)."""
        with _unavailable():
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

    # -- notifications -----------------------------------------------------------------------

    def publish(self, targets: Sequence[tuple[str, bytes]]) -> list[int]:
        """Give each (subscription, frame with seq 0) its next seq, keep it, ring the doorbell;
        0 for a lost subscription (nobody can resume those frames). One round trip."""
        if not targets:
            return []
        args: list[str | bytes] = [self._maxlen]
        for sub_id, data in targets:
            args += [sub_id, data]
        with _unavailable():
            return [int(s) for s in self._publish(args=args)]

    def control(self, sub_id: str, message: bytes) -> None:
        """A control doorbell for whoever holds the websocket: R<nonce> (replaced), C<code>."""
        with _unavailable():
            self.sync.publish(f"{PREFIX}ch:{sub_id}", message)

    async def open(self, sub_id: str, after: int) -> tuple[int, bool, list[tuple[int, bytes]]]:
        """For a hello: (current seq, was lost, frames with seq > after)."""
        with _unavailable():
            seq, lost, raw = await self._open(args=[sub_id, f"{after + 1}-0"])
        return int(seq), bool(lost), _entries(raw)

    async def frames_after(self, sub_id: str, after: int) -> list[tuple[int, bytes]]:
        with _unavailable():
            return _entries(await self._range(args=[sub_id, f"{after + 1}-0"]))

    def current_seqs(self, sub_ids: Sequence[str]) -> list[int]:
        if not sub_ids:
            return []
        with _unavailable():
            values = self.sync.mget([f"{PREFIX}seq:{s}" for s in sub_ids])
        return [int(v) if v is not None else 0 for v in values]

    def current_seq(self, sub_id: str) -> int:
        with _unavailable():
            value = self.sync.get(f"{PREFIX}seq:{sub_id}")
        return int(value) if value is not None else 0

    def forget(self, sub_id: str) -> None:
        with _unavailable():
            self._forget(args=[sub_id])

    # -- devices -----------------------------------------------------------------------------

    def seen(self, sub_ids: Sequence[str]) -> list[str]:
        """Record the devices as seen now; those of them already declared lost."""
        if not sub_ids:
            return []
        with _unavailable():
            return [bytes(x).decode() for x in self._seen(args=list(sub_ids))]

    def lost(self, sub_ids: Sequence[str]) -> list[bool]:
        if not sub_ids:
            return []
        with _unavailable():
            return [bool(x) for x in self.sync.smismember(f"{PREFIX}lost", list(sub_ids))]

    def claim_lost(self, window: float) -> list[str]:
        with _unavailable():
            return [bytes(s).decode() for s in self._claim_lost(args=[int(window * 1000)])]

    # -- timers ------------------------------------------------------------------------------

    def arm(self, name: str, delay: float) -> None:
        with _unavailable():
            self._arm(args=[name, int(delay * 1000)])

    def disarm(self, name: str) -> None:
        with _unavailable():
            self.sync.zrem(f"{PREFIX}timers", name)

    def claim_due(self, lease: float = TIMER_LEASE) -> tuple[list[str], str]:
        """Timers due now, each leased to the caller for `lease` seconds; and the lease."""
        with _unavailable():
            names, until = self._claim_due(args=[int(lease * 1000)])
        return [bytes(n).decode() for n in names], bytes(until).decode()

    def done(self, name: str, lease: str) -> None:
        with _unavailable():
            self._done(args=[name, lease])

    # -- rate limits -------------------------------------------------------------------------

    def take(self, bucket: str, per_minute: int) -> float | None:
        """Take a token from a shared bucket; None, or the seconds to wait for one."""
        with _unavailable():
            wait = self._take(
                keys=[f"{PREFIX}rl:{bucket}"], args=[per_minute / 60000.0, per_minute]
            )
        text = bytes(wait).decode() if wait else ""
        return float(text) / 1000.0 if text else None


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
        with _unavailable():
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
