"""Subscriptions and their notification websockets: sequence numbers, resume, devices.

Every subscription keeps a bounded buffer of its recent notifications, so a client that lost its
socket can come back with its last `seq` and miss nothing. A subscription whose socket has been
gone longer than the resume window is "lost": its calls are ended by the owner's callback and
its buffer is dropped, so the next connection gets `resume_failed` and resynchronises.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import msgspec
from aiohttp import WSMsgType, web

from softphone.config import ServerSection
from softphone.protocol.errors import CloseCode, ErrorCode
from softphone.protocol.frames import (
    ClientFrames,
    ClientPing,
    EndReason,
    ErrorFrame,
    GoneReason,
    Hello,
    Notification,
    ResumeFailed,
    ServerFrame,
    ServerPong,
    SubscriptionGone,
    Welcome,
)
from softphone.server.auth import Sessions, bearer_token
from softphone.server.connection import (
    CLOSE_TIMEOUT,
    SEND_QUEUE_BYTES,
    Connection,
    QueueWatermark,
)
from softphone.server.errors import ApiError
from softphone.server.storage import Storage
from softphone.server.store_rows import Session, SubscriptionRow

log = logging.getLogger("softphone.server.hub")

HELLO_TIMEOUT = 10.0
_encoder = msgspec.json.Encoder()
_client_decoder = msgspec.json.Decoder(ClientFrames)


@dataclass(eq=False)
class Subscription:
    row: SubscriptionRow
    anonymous: bool
    buffer: deque[tuple[int, bytes]]
    seq: int = 0
    resumable: bool = False
    connection: Connection | None = None
    detached_at: float | None = field(default_factory=time.monotonic)
    lost: bool = False

    @property
    def id(self) -> str:
        return self.row.id

    @property
    def available(self) -> bool:
        return not self.lost and "call" in self.row.services


@dataclass(frozen=True, slots=True)
class HubLimits:
    """What a hub takes from [server]: how long and how much it keeps for a resume, how often
    it pings, and how big frames, send queues and device counts may get."""

    resume_window: float
    resume_buffer: int
    ping_interval: float
    max_frame_bytes: int
    max_devices: int
    max_queue_bytes: int = SEND_QUEUE_BYTES

    @classmethod
    def of(cls, server: ServerSection) -> HubLimits:
        return cls(
            resume_window=server.resume_window,
            resume_buffer=server.resume_buffer,
            ping_interval=server.ping_interval,
            max_frame_bytes=server.max_frame_bytes,
            max_devices=server.max_devices_per_user,
            max_queue_bytes=server.max_websocket_queue_bytes,
        )


class Hub:
    def __init__(self, store: Storage, sessions: Sessions, limits: HubLimits) -> None:
        self._setup(store, sessions, limits)
        for row in store.subscriptions(time.time()):
            session = sessions.get(row.session_hash)
            if session is not None:
                self._add(row, session.anonymous, fresh=False)

    def _setup(self, store: Storage, sessions: Sessions, limits: HubLimits) -> None:
        """The state every hub keeps: its limits, the sockets this process holds, counters."""
        self._store = store
        self._sessions = sessions
        self.resume_window = limits.resume_window
        self._resume_buffer = limits.resume_buffer
        self.ping_interval = limits.ping_interval
        self._max_frame = limits.max_frame_bytes
        self._max_devices = limits.max_devices
        self._max_queue_bytes = limits.max_queue_bytes
        self.queue_watermark = QueueWatermark()
        self._subs: dict[str, Subscription] = {}
        self._by_session: dict[str, Subscription] = {}
        self._by_user: dict[str, dict[str, Subscription]] = {}
        self.slow_consumers = 0  # sockets closed because their send queue overflowed
        self._refused_by_closed = 0  # client frames dropped beyond a closed socket's budget
        # Called with (session hash, end reason) when a device stops being reachable: lost
        # past the resume window, or gone for good (logout, unsubscribe, replaced, expired).
        self.on_device_gone: Callable[[str, EndReason], None] = lambda session_hash, reason: None

    def start(self) -> None:
        """Called on the running loop at start; the in-process hub has nothing to start."""

    # -- subscriptions -----------------------------------------------------------------------

    def _add(self, row: SubscriptionRow, anonymous: bool, *, fresh: bool) -> Subscription:
        # A fresh subscription can be resumed from seq 0, so nothing published before its first
        # socket is lost; one reloaded after a restart has lost its buffer and cannot.
        sub = Subscription(row, anonymous, deque(maxlen=self._resume_buffer), resumable=fresh)
        self._subs[row.id] = sub
        self._by_session[row.session_hash] = sub
        if not anonymous:
            self._by_user.setdefault(row.user, {})[row.id] = sub
        return sub

    def subscribe(
        self, session: Session, services: list[str], expires: float, force_logout: bool
    ) -> Subscription:
        now = time.time()
        existing = self._by_session.get(session.token_hash)
        if existing is not None:
            # Subscribing again on the same session refreshes it rather than leaking a twin.
            existing.row.services = services
            existing.row.expires_at = now + expires
            self._store.put_subscription(existing.row)
            return existing
        if not session.anonymous:
            devices = sorted(self._devices(session.user), key=lambda s: s.row.created_at)
            if len(devices) >= self._max_devices:
                if not force_logout:
                    raise ApiError(
                        ErrorCode.TOO_MANY_DEVICES,
                        f"{len(devices)} devices are subscribed already; "
                        "set force_logout to replace the oldest",
                    )
                self.remove(devices[0], GoneReason.REPLACED, "replaced by a newer device")
        row = SubscriptionRow(
            secrets.token_urlsafe(16),
            session.token_hash,
            session.user,
            services,
            now,
            now + expires,
        )
        self._store.put_subscription(row)
        return self._add(row, session.anonymous, fresh=True)

    def get(self, sub_id: str) -> Subscription | None:
        return self._subs.get(sub_id)

    def for_session(self, session_hash: str) -> Subscription | None:
        return self._by_session.get(session_hash)

    def is_subscribed(self, session_hash: str) -> bool:
        return self.for_session(session_hash) is not None

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
        """End a subscription: tell its socket why (`reason` for the client to act on,
        `message` for a person), then close it so it does not reconnect."""
        self._subs.pop(sub.id, None)
        if self._by_session.get(sub.row.session_hash) is sub:
            del self._by_session[sub.row.session_hash]
        devices = self._by_user.get(sub.row.user)
        if devices is not None:
            devices.pop(sub.id, None)
            if not devices:
                del self._by_user[sub.row.user]
        self._store.remove_subscription(sub.id)
        # The device's calls end first, so their notifications precede the goodbye.
        self.on_device_gone(sub.row.session_hash, EndReason.HANGUP)
        self._publish(sub, SubscriptionGone(reason=reason, message=message))
        if sub.connection is not None:
            sub.connection.close_after_flush(code)
            sub.connection = None

    def remove_session(
        self,
        session_hash: str,
        reason: GoneReason,
        message: str,
        code: int = CloseCode.DO_NOT_RECONNECT,
    ) -> None:
        sub = self._by_session.get(session_hash)
        if sub is not None:
            self.remove(sub, reason, message, code)

    def _devices(self, user: str) -> list[Subscription]:
        """The user's own subscriptions (anonymous parties are never anyone's device)."""
        return list(self._by_user.get(user, {}).values())

    def user_online(self, user: str, *, exclude: str | None = None) -> bool:
        """Whether a device of `user` (other than session `exclude`) can be told of a call."""
        return any(s.available and s.row.session_hash != exclude for s in self._devices(user))

    @property
    def connection_count(self) -> int:
        return sum(1 for s in self._subs.values() if s.connection is not None)

    @property
    def queued_bytes(self) -> int:
        """Bytes waiting in the send queues of every attached socket."""
        return sum(s.connection.queued_bytes for s in self._subs.values() if s.connection)

    @property
    def replies_refused(self) -> int:
        """Client frames dropped, undecoded, beyond a socket's reply budget."""
        live = sum(s.connection.budget.refused for s in self._subs.values() if s.connection)
        return self._refused_by_closed + live

    @property
    def subscription_count(self) -> int:
        return len(self._subs)

    # -- publishing --------------------------------------------------------------------------

    def to_user(self, user: str, frame: Notification, *, exclude: str | None = None) -> None:
        for sub in self._devices(user):
            if sub.available and sub.row.session_hash != exclude:
                self._publish(sub, frame)

    def to_session(self, session_hash: str, frame: Notification) -> None:
        sub = self._by_session.get(session_hash)
        if sub is not None:
            self._publish(sub, frame)

    def _publish(self, sub: Subscription, frame: Notification) -> None:
        if sub.lost and sub.connection is None:
            return  # nobody can resume these frames; the client resynchronises instead
        sub.seq += 1
        # Frames are shared between subscriptions; copy so each carries its own seq.
        data = _encoder.encode(msgspec.structs.replace(frame, seq=sub.seq))
        sub.buffer.append((sub.seq, data))
        if sub.connection is not None:
            sub.connection.send(data)

    def _detach(self, sub: Subscription, connection: Connection) -> None:
        if sub.connection is connection:
            sub.connection = None
            sub.detached_at = time.monotonic()

    # -- websocket ---------------------------------------------------------------------------

    async def handle(self, request: web.Request) -> web.WebSocketResponse:
        # aiohttp refuses a message of exactly max_msg_size; the protocol allows up to the limit.
        ws = web.WebSocketResponse(
            heartbeat=self.ping_interval,
            max_msg_size=self._max_frame + 1,
            timeout=CLOSE_TIMEOUT,
        )
        await ws.prepare(request)
        accepted = await self._authenticate(ws, bearer_token(request))
        if accepted is None:
            return ws
        sub, first_frames = accepted
        connection = self._attach(sub, ws, request.transport, first_frames)
        await self._serve(sub, ws, connection)
        return ws

    async def _serve(
        self, sub: Subscription, ws: web.WebSocketResponse, connection: Connection
    ) -> None:
        """Read the client's frames until the socket ends, then detach and close it."""
        reader = asyncio.create_task(self._read(sub, ws, connection))
        connection.set_reader(reader)
        try:
            # The connection's close stops the reader (it reads the client's close itself).
            await asyncio.wait([reader])
        finally:
            reader.cancel()
            self._detach(sub, connection)
            # Always wake the writer: it exits after closing (a no-op on a closed socket).
            connection.close_after_flush(CloseCode.GOING_AWAY)
            await connection.finish()
            self._refused_by_closed += connection.budget.refused

    async def _refuse(
        self, ws: web.WebSocketResponse, code: ErrorCode, message: str, close: int
    ) -> None:
        if ws.closed:
            return  # aiohttp closed it already (e.g. 1009 for an oversized first frame)
        with contextlib.suppress(ConnectionError):
            await ws.send_str(
                _encoder.encode(ErrorFrame(code=code.value, message=message)).decode()
            )
            await ws.close(code=close)

    async def _authenticate(
        self, ws: web.WebSocketResponse, header_token: str | None
    ) -> tuple[Subscription, list[bytes]] | None:
        greeted = await self._hello(ws, header_token)
        if greeted is None:
            return None
        hello, session = greeted
        sub = self._subs.get(hello.subscription_id)
        if sub is None or sub.row.session_hash != session.token_hash:
            await self._refuse_subscription(ws)
            return None
        return sub, self._start(sub, hello.last_seq)

    async def _refuse_subscription(self, ws: web.WebSocketResponse) -> None:
        await self._refuse(
            ws,
            ErrorCode.NOT_FOUND,
            "no such subscription for this session",
            CloseCode.DO_NOT_RECONNECT,
        )

    async def _hello(
        self, ws: web.WebSocketResponse, header_token: str | None
    ) -> tuple[Hello, Session] | None:
        """The first frame, a hello with a live session's token; otherwise refused."""
        try:
            msg = await ws.receive(timeout=HELLO_TIMEOUT)
        except TimeoutError:
            await self._refuse(
                ws, ErrorCode.UNAUTHORIZED, "no hello frame in time", CloseCode.AUTH_EXPIRED
            )
            return None
        if msg.type != WSMsgType.TEXT:
            if msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED, WSMsgType.ERROR):
                return None
            await self._refuse(
                ws,
                ErrorCode.INVALID_JSON,
                "expected a text hello frame",
                CloseCode.DO_NOT_RECONNECT,
            )
            return None
        try:
            hello = _client_decoder.decode(msg.data)
        except msgspec.DecodeError as exc:
            await self._refuse(
                ws, ErrorCode.VALIDATION, f"bad hello frame: {exc}", CloseCode.DO_NOT_RECONNECT
            )
            return None
        if not isinstance(hello, Hello):
            await self._refuse(
                ws,
                ErrorCode.VALIDATION,
                "the first frame must be 'hello'",
                CloseCode.DO_NOT_RECONNECT,
            )
            return None
        token = header_token or hello.token
        session = self._sessions.lookup(token) if token else None
        if session is None:
            await self._refuse(
                ws,
                ErrorCode.UNAUTHORIZED,
                "unknown, revoked or expired token",
                CloseCode.AUTH_EXPIRED,
            )
            return None
        return hello, session

    def _start(self, sub: Subscription, last_seq: int | None) -> list[bytes]:
        """The frames that open a connection: welcome, then the replay or resume_failed."""
        frames: list[bytes] = []
        replay = self._replay(sub, last_seq) if last_seq is not None else None
        frames.append(
            _encoder.encode(
                Welcome(
                    seq=sub.seq,
                    subscription_id=sub.id,
                    resumed=replay is not None,
                    ping_interval=self.ping_interval,
                )
            )
        )
        if replay is not None:
            frames += replay
        elif last_seq is not None:
            frames.append(
                _encoder.encode(
                    ResumeFailed(
                        seq=sub.seq,
                        reason="missed notifications are no longer available; "
                        "resynchronise with GET /v1/calls",
                    )
                )
            )
        sub.resumable = True
        sub.lost = False
        return frames

    def _replay(self, sub: Subscription, last_seq: int) -> list[bytes] | None:
        if not sub.resumable or last_seq > sub.seq:
            return None
        if last_seq == sub.seq:
            return []
        if not sub.buffer or sub.buffer[0][0] > last_seq + 1:
            return None
        return [data for seq, data in sub.buffer if seq > last_seq]

    def _attach(
        self,
        sub: Subscription,
        ws: web.WebSocketResponse,
        transport: asyncio.BaseTransport | None,
        first_frames: list[bytes],
    ) -> Connection:
        """Queue welcome and replay before any live frame can slip in (no await in between)."""
        if sub.connection is not None:
            sub.connection.close_after_flush(CloseCode.REPLACED)

        def overflowed(connection: Connection) -> None:
            # Closing with SLOW_CONSUMER: the client resumes from the buffer, as after a drop.
            self.slow_consumers += 1
            self._detach(sub, connection)

        connection = Connection(
            ws,
            transport,
            first_frames,
            overflowed,
            max_bytes=self._max_queue_bytes,
            watermark=self.queue_watermark,
        )
        sub.connection = connection
        sub.detached_at = None
        return connection

    async def _read(
        self, sub: Subscription, ws: web.WebSocketResponse, connection: Connection
    ) -> None:
        def error(code: ErrorCode, message: str) -> None:
            # Control frames repeat the current seq: they are never replayed.
            connection.send(
                _encoder.encode(ErrorFrame(seq=sub.seq, code=code.value, message=message))
            )

        async for msg in ws:
            if msg.type in (WSMsgType.TEXT, WSMsgType.BINARY) and not connection.budget.take():
                continue  # over the reply budget: not decoded, not answered
            if msg.type == WSMsgType.TEXT:
                try:
                    frame = _client_decoder.decode(msg.data)
                except msgspec.DecodeError as exc:
                    error(ErrorCode.VALIDATION, str(exc))
                    continue
                if isinstance(frame, ClientPing):
                    connection.send(_encoder.encode(ServerPong(seq=sub.seq, id=frame.id)))
                elif isinstance(frame, Hello):
                    error(ErrorCode.WRONG_STATE, "already authenticated on this socket")
            elif msg.type == WSMsgType.BINARY:
                error(
                    ErrorCode.VALIDATION,
                    "binary frames are not part of the protocol; send JSON text",
                )
            elif msg.type == WSMsgType.ERROR:
                log.info("websocket error on %s: %s", sub.id, ws.exception())

    # -- housekeeping ------------------------------------------------------------------------

    def sweep(self, now_wall: float, now_mono: float) -> None:
        """Expire subscriptions and sessions, and declare long-detached subscriptions lost."""
        for sub in list(self._subs.values()):
            if sub.row.expires_at <= now_wall:
                self.remove(sub, GoneReason.EXPIRED, "subscription expired")
            elif not self._sessions.is_valid(sub.row.session_hash, now_wall):
                self.remove(sub, GoneReason.EXPIRED, "session expired", CloseCode.AUTH_EXPIRED)
            elif (
                not sub.lost
                and sub.detached_at is not None
                and now_mono - sub.detached_at >= self.resume_window
            ):
                sub.lost = True
                sub.resumable = False
                sub.buffer.clear()
                self.on_device_gone(sub.row.session_hash, EndReason.CONNECTION_LOST)

    async def shutdown(self) -> None:
        connections = [s.connection for s in self._subs.values() if s.connection]
        for connection in connections:
            connection.close_after_flush(CloseCode.GOING_AWAY)
        await asyncio.gather(*(c.finish() for c in connections))


__all__ = ["Connection", "Hub", "ServerFrame", "Subscription"]
