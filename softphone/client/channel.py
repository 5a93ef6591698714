"""The notification websocket of one subscription: one reader task, reconnect and resume.

One task owns the socket and does everything in order: connect, `hello` (with the last `seq`
seen), read frames, send the app-level `ping` every `ping_interval`, resynchronise after
`resume_failed`, and reconnect with back-off. Nothing else touches the socket, so there are no
races between a reader, a pinger and a reconnector.

- Every notification is emitted once, in `seq` order: a frame with `seq <= last_seq` is a
  duplicate and dropped (defensive; the server does not send them). A gap (a `seq` skipped)
  cannot be repaired from the socket, so it triggers a resync.
- When `welcome.resumed` is false the cursor becomes `welcome.seq`; `resume_failed` then asks
  `GET /v1/calls` for the live calls and emits `Resynced`. The first connect of a subscription
  sends `last_seq = 0` ("I have seen nothing"), so whatever the server published between
  subscribe and connect is replayed, or resynchronised.
- Close and error are acted on as soon as the socket reports them (not at the next ping); a
  connection that answers no `ping` for `missed_pongs` intervals is dead and is dropped.
- Close codes: 4000 (subscription gone; a `subscription.gone` frame says why) and 4001
  (replaced by a newer connection) end the channel without reconnecting; 4002 (authentication
  expired or invalid) ends it with `AuthChange`/`AuthError` so the owner can log in again;
  anything else (1001 going away, abnormal closure, refused connection) reconnects.
- Giving up (after `Backoff.max_attempts`) is explicit: `WsChange("disconnected")` then
  `SubscriptionChange("unsubscribed", "lost_connection")`.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import time
from dataclasses import dataclass

import aiohttp
import msgspec

from softphone.client import errors, events
from softphone.client.backoff import Backoff
from softphone.client.events import Event, EventCallback
from softphone.client.rest import RestClient
from softphone.protocol.errors import CloseCode
from softphone.protocol.frames import (
    ClientPing,
    ClientPong,
    ErrorFrame,
    GoneReason,
    Hello,
    Notification,
    ResumeFailed,
    ServerFrames,
    ServerPing,
    ServerPong,
    SubscriptionGone,
    Welcome,
)

log = logging.getLogger("softphone.client.channel")

_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(ServerFrames)
_PING = _encoder.encode(ClientPing()).decode()
# After `subscription.gone` the server closes at once; do not wait longer than this for it.
GONE_CLOSE_WAIT = 2.0


class ChannelEnd(enum.Enum):
    """Why a channel stopped for good."""

    STOPPED = "stopped"  # stop() was called
    GONE = "gone"  # 4000: the subscription ended (logout, unsubscribe, expiry, replaced device)
    REPLACED = "replaced"  # 4001: another connection took this subscription's channel
    AUTH = "auth"  # 4002: the token expired or is not valid any more
    GAVE_UP = "gave_up"  # reconnect attempts exhausted


@dataclass(frozen=True, slots=True)
class _Outcome:
    """How one connection ended: a final end, or a reason to reconnect."""

    end: ChannelEnd | None
    reason: str
    welcomed: bool = False
    error: errors.ClientError | None = None
    gone: GoneReason | None = None  # the server's machine reason, when it ended the subscription


class _Reconnect(Exception):
    """Drop this connection and reconnect (raised inside the reader)."""


def subscription_reason(gone: GoneReason | None) -> events.SubscriptionReason:
    """The SDK's reason for a subscription the server ended (`subscription.gone`)."""
    if gone is GoneReason.EXPIRED:
        return "expired"
    if gone is GoneReason.REPLACED:
        return "replaced"
    return "gone"


def _gone_text(gone: SubscriptionGone) -> str:
    return gone.message or str(gone.reason)


class NotificationChannel:
    """The websocket of subscription `subscription_id`, authenticated with `rest`'s token.

    `start()` spawns the reader task; `stop()` ends it; `wait_closed()` returns the
    `ChannelEnd`. `ping_interval` None uses the server's (from `welcome`). `resume_from` is the
    last `seq` already seen on this subscription (0 for a new one).
    """

    def __init__(
        self,
        rest: RestClient,
        subscription_id: str,
        *,
        channel: str = "/v1/notifications",
        on_event: EventCallback = events.ignore,
        ping_interval: float | None = None,
        missed_pongs: int = 2,
        backoff: Backoff | None = None,
        connect_timeout: float = 10.0,
        resume_from: int = 0,
    ) -> None:
        if missed_pongs < 1:
            raise ValueError("missed_pongs must be at least 1")
        self._rest = rest
        self.subscription_id = subscription_id
        self._channel = channel
        self._on_event = on_event
        self._ping_override = ping_interval
        self._missed_pongs = missed_pongs
        self._backoff = backoff or Backoff()
        self._connect_timeout = connect_timeout
        self._last_seq = resume_from
        self._needs_resync = False
        self._state: events.WsState = "disconnected"
        self._task: asyncio.Task[ChannelEnd] | None = None
        self._end: ChannelEnd | None = None
        self.end_detail: str | None = None
        self.connections = 0  # successful connections (welcomes) so far

    # -- public ------------------------------------------------------------------------------

    @property
    def last_seq(self) -> int:
        return self._last_seq

    @property
    def state(self) -> events.WsState:
        return self._state

    @property
    def connected(self) -> bool:
        return self._state == "connected"

    @property
    def end(self) -> ChannelEnd | None:
        """Why the channel stopped, once it has."""
        return self._end

    def start(self) -> None:
        if self._task is not None:
            raise RuntimeError("this channel was started already; make a new one")
        self._task = asyncio.create_task(self._run(), name=f"notifications {self.subscription_id}")

    async def stop(self) -> None:
        """Close the socket and end the reader (idempotent)."""
        task = self._task
        if task is None or task.done():
            return
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    async def wait_closed(self) -> ChannelEnd:
        if self._task is None:
            raise RuntimeError("the channel was not started")
        return await asyncio.shield(self._task)

    # -- emitting ----------------------------------------------------------------------------

    def _emit(self, event: Event) -> None:
        try:
            self._on_event(event)
        except Exception:
            log.exception("on_event callback failed on %s; event dropped", event.name)

    def _set_state(
        self,
        state: events.WsState,
        attempt: int = 0,
        reason: str | None = None,
        retry_in: float | None = None,
    ) -> None:
        self._state = state
        self._emit(events.WsChange(state, attempt, reason, retry_in))

    # -- the reader task ---------------------------------------------------------------------

    async def _run(self) -> ChannelEnd:
        attempt = 0
        self._set_state("connecting")
        try:
            while True:
                outcome = await self._connect_once(attempt)
                if outcome.end is not None:
                    self._finish(outcome)
                    return outcome.end
                if outcome.welcomed:
                    attempt = 0
                attempt += 1
                if self._backoff.exhausted(attempt):
                    reason = f"gave up after {attempt - 1} attempts ({outcome.reason})"
                    self._finish(_Outcome(ChannelEnd.GAVE_UP, reason))
                    return ChannelEnd.GAVE_UP
                delay = self._backoff.delay(attempt)
                log.info(
                    "notification channel lost (%s); reconnect %d in %.2f s",
                    outcome.reason,
                    attempt,
                    delay,
                )
                self._set_state("reconnecting", attempt, outcome.reason, delay)
                await asyncio.sleep(delay)
        except asyncio.CancelledError:
            # Only stop() cancels this task; ending normally lets wait_closed() say STOPPED.
            if self._end is None:
                self._end = ChannelEnd.STOPPED
                self.end_detail = "stopped"
                self._set_state("disconnected", reason="stopped")
            return ChannelEnd.STOPPED

    def _finish(self, outcome: _Outcome) -> None:
        """Emit the final events, in order: socket, subscription, authentication."""
        assert outcome.end is not None
        self._end = outcome.end
        self.end_detail = outcome.reason
        self._set_state("disconnected", reason=outcome.reason)
        sub = self.subscription_id
        if outcome.end is ChannelEnd.GONE:
            self._emit(
                events.SubscriptionChange(
                    "unsubscribed", subscription_reason(outcome.gone), outcome.reason, sub
                )
            )
        elif outcome.end is ChannelEnd.REPLACED:
            self._emit(events.SubscriptionChange("unsubscribed", "replaced", outcome.reason, sub))
        elif outcome.end is ChannelEnd.GAVE_UP:
            self._emit(
                events.SubscriptionChange("unsubscribed", "lost_connection", outcome.reason, sub)
            )
        elif outcome.end is ChannelEnd.AUTH:
            self._emit(events.SubscriptionChange("unsubscribed", "expired", outcome.reason, sub))
            self._emit(events.AuthChange("unauthenticated", outcome.reason))
            error = outcome.error or errors.AuthError("unauthorized", outcome.reason, 401)
            self._emit(events.AuthError(error))

    async def _connect_once(self, attempt: int) -> _Outcome:
        try:
            async with asyncio.timeout(self._connect_timeout):
                ws = await self._rest.connect_websocket(self._channel)
        except errors.AuthError as exc:
            return _Outcome(ChannelEnd.AUTH, exc.message, error=exc)
        except TimeoutError:
            return _Outcome(None, "websocket connect timed out")
        except errors.ClientError as exc:
            return _Outcome(None, str(exc))
        try:
            hello = Hello(subscription_id=self.subscription_id, last_seq=self._last_seq)
            await ws.send_str(_encoder.encode(hello).decode())
            return await self._read(ws, attempt)
        except _Reconnect as exc:
            return _Outcome(None, str(exc))
        except (ConnectionError, aiohttp.ClientError) as exc:
            return _Outcome(None, f"websocket failed: {exc}")
        finally:
            await self._close(ws)

    async def _close(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        if not ws.closed:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(ws.close(), 2.0)

    async def _read(self, ws: aiohttp.ClientWebSocketResponse, attempt: int) -> _Outcome:
        welcomed = False
        interval = self._ping_override or self._connect_timeout
        deadline = time.monotonic() + self._connect_timeout  # for welcome, then the next ping
        outstanding = 0  # pings sent since anything was last received
        refused: ErrorFrame | None = None
        gone: SubscriptionGone | None = None
        gone_deadline = 0.0
        while True:
            wait = deadline - time.monotonic()
            if gone is not None:
                wait = min(wait, gone_deadline - time.monotonic())
            try:
                # receive(0) would mean "no timeout" to aiohttp; keep it strictly positive.
                msg = await ws.receive(timeout=max(wait, 0.001))
            except TimeoutError:
                if gone is not None:
                    return _Outcome(ChannelEnd.GONE, _gone_text(gone), welcomed, gone=gone.reason)
                if not welcomed:
                    return _Outcome(None, "no welcome from the server in time")
                if outstanding >= self._missed_pongs:
                    return _Outcome(None, f"no answer to {outstanding} pings", welcomed)
                await ws.send_str(_PING)
                outstanding += 1
                deadline = time.monotonic() + interval
                continue
            if msg.type is aiohttp.WSMsgType.TEXT:
                outstanding = 0
                try:
                    frame = _decoder.decode(msg.data)
                except (msgspec.DecodeError, msgspec.ValidationError) as exc:
                    log.warning("ignoring a frame that does not parse: %s", exc)
                    continue
                if isinstance(frame, Welcome):
                    welcomed = True
                    self.connections += 1
                    if not frame.resumed:
                        self._last_seq = frame.seq
                    interval = self._ping_override or frame.ping_interval
                    deadline = time.monotonic() + interval
                    self._set_state("connected", attempt)
                    if self._needs_resync and frame.resumed:
                        await self._resync()  # one that failed on an earlier connection
                elif isinstance(frame, ResumeFailed):
                    log.info("resume failed (%s); resynchronising", frame.reason)
                    self._needs_resync = True
                    await self._resync()
                elif isinstance(frame, ServerPing):
                    await ws.send_str(_encoder.encode(ClientPong(id=frame.id)).decode())
                elif isinstance(frame, ServerPong):
                    pass
                elif isinstance(frame, ErrorFrame):
                    log.warning("server error frame: %s: %s", frame.code, frame.message)
                    refused = frame
                elif isinstance(frame, SubscriptionGone):
                    if frame.seq > self._last_seq:
                        self._last_seq = frame.seq
                    gone = frame
                    gone_deadline = time.monotonic() + GONE_CLOSE_WAIT
                else:
                    await self._notification(frame)
            elif msg.type is aiohttp.WSMsgType.BINARY:
                log.warning("ignoring a binary frame (%d bytes)", len(msg.data))
            else:  # CLOSE, CLOSING, CLOSED, ERROR: act now, not at the next ping
                return self._closed(ws, welcomed, refused, gone)

    async def _notification(self, frame: Notification) -> None:
        if frame.seq <= self._last_seq:
            log.debug("dropping duplicate notification seq %d (seen %d)", frame.seq, self._last_seq)
            return
        gap = frame.seq > self._last_seq + 1
        if gap:
            log.warning(
                "notifications %d-%d never arrived; resynchronising",
                self._last_seq + 1,
                frame.seq - 1,
            )
        self._last_seq = frame.seq
        self._emit(events.Notification(frame))
        if gap:
            self._needs_resync = True
            await self._resync()

    async def _resync(self) -> None:
        """Fetch the live calls; on failure reconnect and try again after the next welcome."""
        try:
            calls = await self._rest.list_calls()
        except errors.ClientError as exc:
            raise _Reconnect(f"resync failed: {exc}") from exc
        self._needs_resync = False
        self._emit(events.Resynced(calls))

    def _closed(
        self,
        ws: aiohttp.ClientWebSocketResponse,
        welcomed: bool,
        refused: ErrorFrame | None,
        gone: SubscriptionGone | None,
    ) -> _Outcome:
        code = ws.close_code
        detail = refused.message if refused is not None else None
        reason_code = gone.reason if gone is not None else None
        if code == CloseCode.DO_NOT_RECONNECT:
            reason = _gone_text(gone) if gone is not None else (detail or "subscription ended")
            return _Outcome(ChannelEnd.GONE, reason, welcomed, gone=reason_code)
        if code == CloseCode.REPLACED:
            return _Outcome(ChannelEnd.REPLACED, "replaced by a newer connection", welcomed)
        if code == CloseCode.AUTH_EXPIRED:
            reason = _gone_text(gone) if gone is not None else (detail or "authentication expired")
            error = errors.AuthError(refused.code if refused else "unauthorized", reason, 401)
            return _Outcome(ChannelEnd.AUTH, reason, welcomed, error)
        if gone is not None:  # gone, then the socket died before the close code arrived
            return _Outcome(ChannelEnd.GONE, _gone_text(gone), welcomed, gone=reason_code)
        return _Outcome(None, f"closed with code {code}", welcomed)


__all__ = ["ChannelEnd", "NotificationChannel", "subscription_reason"]
