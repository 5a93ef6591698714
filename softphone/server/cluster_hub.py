"""The hub when several server processes share a PostgreSQL store and a Redis bus.

Same interface and frames as `Hub`; what differs is where things live. Subscriptions are rows
(read from the store on each use, so one made on another process counts at once); each
subscription's seq and resume window are its Redis stream; this process keeps only the
websockets it holds, each fed by its subscription's doorbell channel, in seq order, with gaps
filled from the stream. A hello on any process resumes from the stream; the process that held
the subscription before is told (a control doorbell) and closes its socket with 4001. Devices
are declared lost and subscriptions expire through atomic claims, so whichever process sweeps
first does it once, even when the process that held the device died.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections import deque
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any

import msgspec
from aiohttp import web

from softphone.protocol.errors import CloseCode, ErrorCode
from softphone.protocol.frames import (
    EndReason,
    GoneReason,
    Notification,
    ResumeFailed,
    SubscriptionGone,
    Welcome,
)
from softphone.server.auth import Sessions, bearer_token
from softphone.server.bus import RedisBus, with_seq
from softphone.server.connection import (
    CLOSE_TIMEOUT,
    Connection,
)
from softphone.server.doorbells import Doorbells
from softphone.server.errors import ApiError
from softphone.server.hub import Hub, HubLimits, Subscription
from softphone.server.storage import SharedStore
from softphone.server.store_rows import Session, StoreUnavailable, SubscriptionRow

log = logging.getLogger("softphone.server.hub")

_encoder = msgspec.json.Encoder()
_NO_REPLAY = 2**53  # `after` for a hello without last_seq: no frames, only the current seq


@dataclass(eq=False)
class _Holder:
    """This process's hold on one subscription's websocket."""

    sub: Subscription
    nonce: bytes
    pending: list[tuple[int, bytes]] | None = field(default_factory=list)  # while opening
    filling: bool = False
    newest_seen: int = 0  # the highest seq a doorbell announced (gaps are filled up to it)
    replaced: bool = False


class ClusterHub(Hub):
    def __init__(
        self, store: SharedStore, sessions: Sessions, bus: RedisBus, limits: HubLimits
    ) -> None:
        # Not Hub.__init__: it would load every subscription into this process; here
        # `_subs` holds only the subscriptions whose socket is in this process.
        self._setup(store, sessions, limits)
        self._shared = store
        self._bus = bus
        self._doorbells = Doorbells(bus)
        self._holders: dict[str, _Holder] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def start(self) -> None:
        self._doorbells.start()

    # -- subscriptions -----------------------------------------------------------------------

    def _wrap(self, row: SubscriptionRow) -> Subscription:
        held = self._subs.get(row.id)
        if held is not None:
            held.row = row
            return held
        sub = Subscription(row, False, deque(maxlen=0), resumable=True, detached_at=None)
        sub.seq = self._bus.current_seq(row.id)  # what a hello would be welcomed with now
        return sub

    def subscribe(
        self, session: Session, services: list[str], expires: float, force_logout: bool
    ) -> Subscription:
        now = time.time()
        existing = self._shared.subscription_of_session(session.token_hash)
        if existing is not None:
            existing.services = services
            existing.expires_at = now + expires
            self._store.put_subscription(existing)
            return self._wrap(existing)
        if not session.anonymous:
            devices = self._shared.subscriptions_of(session.user)
            if len(devices) >= self._max_devices:
                if not force_logout:
                    raise ApiError(
                        ErrorCode.TOO_MANY_DEVICES,
                        f"{len(devices)} devices are subscribed already; "
                        "set force_logout to replace the oldest",
                    )
                self.remove(
                    self._wrap(devices[0]), GoneReason.REPLACED, "replaced by a newer device"
                )
        row = SubscriptionRow(
            secrets.token_urlsafe(16),
            session.token_hash,
            session.user,
            services,
            now,
            now + expires,
        )
        self._store.put_subscription(row)
        self._bus.seen([row.id])  # detached from its creation, as in one process
        return self._wrap(row)

    def get(self, sub_id: str) -> Subscription | None:
        row = self._shared.get_subscription(sub_id)
        return self._wrap(row) if row is not None else None

    def for_session(self, session_hash: str) -> Subscription | None:
        row = self._shared.subscription_of_session(session_hash)
        return self._wrap(row) if row is not None else None

    def is_subscribed(self, session_hash: str) -> bool:
        # The row is enough: wrapping it would read its seq from Redis for nothing.
        return self._shared.subscription_of_session(session_hash) is not None

    def refresh(self, sub: Subscription, expires: float) -> None:
        sub.row.expires_at = time.time() + expires
        self._store.put_subscription(sub.row)

    def remove(
        self,
        sub: Subscription,
        reason: GoneReason,
        message: str,
        code: int = CloseCode.DO_NOT_RECONNECT,
    ) -> None:
        self._store.remove_subscription(sub.id)
        self._gone(sub.row, reason, message, code)

    def _gone(self, row: SubscriptionRow, reason: GoneReason, message: str, code: int) -> None:
        # The device's calls end first, so their notifications precede the goodbye.
        self.on_device_gone(row.session_hash, EndReason.HANGUP)
        self._publish_to([row.id], SubscriptionGone(reason=reason, message=message))
        self._bus.control(row.id, b"C%d" % code)
        self._bus.forget(row.id)

    def remove_session(
        self,
        session_hash: str,
        reason: GoneReason,
        message: str,
        code: int = CloseCode.DO_NOT_RECONNECT,
    ) -> None:
        row = self._shared.subscription_of_session(session_hash)
        if row is not None:
            self.remove(self._wrap(row), reason, message, code)

    def _call_devices(self, user: str, exclude: str | None) -> list[SubscriptionRow]:
        return [
            r
            for r in self._shared.subscriptions_of(user)
            if "call" in r.services and r.session_hash != exclude
        ]

    def user_online(self, user: str, *, exclude: str | None = None) -> bool:
        devices = self._call_devices(user, exclude)
        return not all(self._bus.lost([r.id for r in devices])) if devices else False

    # -- publishing --------------------------------------------------------------------------

    def to_user(self, user: str, frame: Notification, *, exclude: str | None = None) -> None:
        self._publish_to([r.id for r in self._call_devices(user, exclude)], frame)

    def to_session(self, session_hash: str, frame: Notification) -> None:
        row = self._shared.subscription_of_session(session_hash)
        if row is not None:
            self._publish_to([row.id], frame)

    def _publish_to(self, sub_ids: list[str], frame: Notification) -> None:
        data = _encoder.encode(msgspec.structs.replace(frame, seq=0))
        self._bus.publish([(sub_id, data) for sub_id in sub_ids])

    # -- the websockets this process holds ---------------------------------------------------

    async def handle(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(
            heartbeat=self.ping_interval, max_msg_size=self._max_frame + 1, timeout=CLOSE_TIMEOUT
        )
        await ws.prepare(request)
        greeted = await self._hello(ws, bearer_token(request))
        if greeted is None:
            return ws
        hello, session = greeted
        try:
            row = self._shared.get_subscription(hello.subscription_id)
            if row is None or row.session_hash != session.token_hash:
                await self._refuse_subscription(ws)
                return ws
            opened = await self._open(row, session, hello.last_seq)
        except StoreUnavailable as exc:
            # The client retries (1001) and resumes once the store and the bus are back.
            await self._refuse(ws, ErrorCode.SERVICE_UNAVAILABLE, str(exc), CloseCode.GOING_AWAY)
            return ws
        holder, first_frames = opened
        sub = holder.sub
        connection = self._attach(sub, ws, request.transport, first_frames)
        self._subs[sub.id] = sub
        pending, holder.pending = holder.pending or [], None
        for seq, data in pending:
            self._deliver(holder, seq, data)
        if holder.replaced:
            connection.close_after_flush(CloseCode.REPLACED)
        await self._serve(sub, ws, connection)
        return ws

    async def _open(
        self, row: SubscriptionRow, session: Session, last_seq: int | None
    ) -> tuple[_Holder, list[bytes]]:
        """Listen on the doorbell first, then read the stream: a frame published in between is
        in both, and the seq drops the copy."""
        sub = Subscription(row, session.anonymous, deque(maxlen=0), resumable=True)
        holder = _Holder(sub, secrets.token_hex(8).encode())
        previous = self._holders.get(row.id)
        self._holders[row.id] = holder
        if previous is not None and previous.sub.connection is not None:
            previous.sub.connection.close_after_flush(CloseCode.REPLACED)
        try:
            await self._doorbells.add(
                row.id, lambda data: self._doorbell(holder, data), lambda: self._refill(holder)
            )
            self._bus.control(row.id, b"R" + holder.nonce)  # another process's socket: 4001
            # Any int may come in a hello; a stream id must be a non-negative 64-bit one.
            after = _NO_REPLAY if last_seq is None else min(max(last_seq, 0), _NO_REPLAY)
            seq, was_lost, frames = await self._bus.open(row.id, after)
        except BaseException:
            if self._holders.get(row.id) is holder:
                del self._holders[row.id]
                await self._doorbells.remove(row.id)
            raise
        replay: list[bytes] | None = None
        if last_seq is not None and not was_lost and last_seq <= seq:
            if last_seq == seq:
                replay = []
            elif frames and frames[0][0] == last_seq + 1:
                replay = [with_seq(data, s) for s, data in frames if s <= seq]
        first = [
            _encoder.encode(
                Welcome(
                    seq=seq,
                    subscription_id=row.id,
                    resumed=replay is not None,
                    ping_interval=self.ping_interval,
                )
            )
        ]
        if replay is not None:
            first += replay
        elif last_seq is not None:
            first.append(
                _encoder.encode(
                    ResumeFailed(
                        seq=seq,
                        reason="missed notifications are no longer available; "
                        "resynchronise with GET /v1/calls",
                    )
                )
            )
        sub.seq = seq
        self._bus.seen([row.id])
        return holder, first

    def _doorbell(self, holder: _Holder, data: bytes) -> None:
        kind, body = data[:1], data[1:]
        if kind == b"N":
            seq_text, _, frame = body.partition(b" ")
            seq = int(seq_text)
            if holder.pending is not None:
                holder.pending.append((seq, frame))
            else:
                self._deliver(holder, seq, frame)
        elif kind == b"R" and body != holder.nonce:
            holder.replaced = True
            if holder.sub.connection is not None:
                holder.sub.connection.close_after_flush(CloseCode.REPLACED)
        elif kind == b"C" and holder.sub.connection is not None:
            holder.sub.connection.close_after_flush(int(body))

    def _deliver(self, holder: _Holder, seq: int, frame: bytes) -> None:
        sub = holder.sub
        holder.newest_seen = max(holder.newest_seen, seq)
        if seq <= sub.seq:
            return  # already sent (replayed, or filled from the stream)
        if seq == sub.seq + 1 and not holder.filling:
            sub.seq = seq
            if sub.connection is not None:
                sub.connection.send(with_seq(frame, seq))
            return
        if not holder.filling:  # a doorbell went missing: the stream has it
            self._spawn(self._refill(holder))

    async def _refill(self, holder: _Holder) -> None:
        if holder.filling:
            return
        holder.filling = True
        sub = holder.sub
        try:
            while True:
                frames = await self._bus.frames_after(sub.id, sub.seq)
                for seq, data in frames:
                    if seq != sub.seq + 1:
                        # Trimmed past what this socket sent: it resumes, and learns it must
                        # resynchronise (resume_failed), like a slow consumer.
                        if sub.connection is not None:
                            sub.connection.close_after_flush(CloseCode.SLOW_CONSUMER)
                        return
                    sub.seq = seq
                    if sub.connection is not None:
                        sub.connection.send(with_seq(data, seq))
                if holder.newest_seen <= sub.seq:
                    return
        except StoreUnavailable as exc:
            log.warning("cannot fill %s from its stream: %s", sub.id, exc)
        finally:
            holder.filling = False

    def _spawn(self, coroutine: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _detach(self, sub: Subscription, connection: Connection) -> None:
        if sub.connection is not connection:
            return
        sub.connection = None
        holder = self._holders.get(sub.id)
        if holder is not None and holder.sub is sub:
            del self._holders[sub.id]
            self._subs.pop(sub.id, None)
            self._spawn(self._doorbells.remove(sub.id))
            with contextlib.suppress(StoreUnavailable):
                self._bus.seen([sub.id])  # detached now: the resume window starts here

    # -- housekeeping ------------------------------------------------------------------------

    def sweep(self, now_wall: float, now_mono: float) -> None:
        """Heartbeat the sockets held here; take expired subscriptions and lost devices."""
        for sub_id in self._bus.seen(list(self._subs)):
            # Declared lost while this process could not say it held it (a bus outage longer
            # than the window): its frames were dropped, so the client must resynchronise.
            gone = self._subs.get(sub_id)
            if gone is not None and gone.connection is not None:
                gone.connection.close_after_flush(CloseCode.SLOW_CONSUMER)
        # A doorbell can go missing (Redis restarted between a publish and the listener's
        # return): whatever a held socket is behind is filled from its stream.
        holders = list(self._holders.values())
        seqs = self._bus.current_seqs([h.sub.id for h in holders])
        for holder, seq in zip(holders, seqs, strict=True):
            if holder.pending is None and seq > holder.sub.seq and not holder.filling:
                holder.newest_seen = max(holder.newest_seen, seq)
                self._spawn(self._refill(holder))
        for row, session_gone in self._shared.take_expired_subscriptions(now_wall):
            if session_gone:
                self._gone(row, GoneReason.EXPIRED, "session expired", CloseCode.AUTH_EXPIRED)
            else:
                self._gone(
                    row, GoneReason.EXPIRED, "subscription expired", CloseCode.DO_NOT_RECONNECT
                )
        # Each device claimed here becomes a `lost:` timer, due now (see device_lost).
        self._bus.claim_lost(self.resume_window)

    def device_lost(self, sub_id: str) -> None:
        """A device away longer than the resume window: its calls end (connection_lost)."""
        lost = self._shared.get_subscription(sub_id)
        if lost is not None:
            self.on_device_gone(lost.session_hash, EndReason.CONNECTION_LOST)

    async def shutdown(self) -> None:
        """Close the sockets held here with 1001: their clients resume on another process."""
        await super().shutdown()
        await self._doorbells.stop()
        for task in list(self._tasks):
            task.cancel()
