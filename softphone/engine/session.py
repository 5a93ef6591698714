"""`CallSession`: one call, and the one place that owns it.

A session owns the call's state (what `Call` snapshots show), its signaling handle, its media
(`CallMedia`), its peer connection (`Peer`; a second one during a media restart), its lock and
its worker, and every transition. Each operation reads top to bottom here: `start_outgoing`,
`ring`, `answer`, `reject`, `ignore`, `end`, `hold`, `unhold`, `start_video`, `stop_video`,
`restart_media`, `mute`, `send_dtmf`, `get_stats`; the other party's actions arrive as
notifications through `deliver`. The mechanics they hand over live beside it: watching the
media (`MediaSupervisor`), restarting it (`MediaRestart`) and the other party's trickled
candidates (`Trickle`), each seeing the call only through a protocol of its module's, and
talking to the server (`CallSignaling`).

Serialisation: operations run under `lock`, one at a time; notifications are queued and
handled in order by the worker under the same lock. Two notifications bypass the queue so an
operation waiting on the other party cannot deadlock: the answer to our re-offer
(`call.update_answer`) resolves the waiting operation, and an ending notification fails it.
Every failure path ends the call (`_fail`: peer connection closed, media released, the server
told) and emits `call:error`, except a re-offer the server cannot take while it is unreachable:
that one rolls back and the call goes on as it was. An end the server cannot hear is handed to
the engine's outbox (`CallSignaling.remember_end`), never waited for.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import random
import time
from collections.abc import Awaitable, Callable
from typing import Any

from softphone.client import errors as client_errors
from softphone.engine.call import Call, Direction
from softphone.engine.call_media import CallMedia
from softphone.engine.context import CallContext
from softphone.engine.errors import EngineError, EngineErrorCode, ErrorInfo
from softphone.engine.events import (
    CallDtmfReceived,
    CallError,
    CallMuteChange,
    CallNewTrack,
    CallStart,
    CallStateChange,
    CallStatsReceived,
    CallTrackEnded,
    MediaError,
    MediaOffered,
    PreviousState,
    TrackKind,
    Transition,
)
from softphone.engine.media_supervisor import MediaSupervisor
from softphone.engine.peer import Peer, TurnFailure
from softphone.engine.restart import MediaRestart, is_restart
from softphone.engine.signaling import CallSignaling
from softphone.engine.states import (
    ESTABLISHED,
    TERMINAL,
    UNANSWERED,
    CallState,
    check_transition,
)
from softphone.engine.trickle import Trickle
from softphone.protocol import frames
from softphone.protocol.errors import ErrorCode
from softphone.protocol.models import CallInfo

log = logging.getLogger("softphone.engine")

S = CallState
Code = EngineErrorCode
DTMF_CHARS = frozenset("0123456789*#ABCDabcd,")
# The server refused an answer because the call is no longer ours to answer (cancelled,
# answered on another device): its notification ends the call.
_NOT_OURS = frozenset(
    {ErrorCode.WRONG_STATE, ErrorCode.NOT_FOUND, ErrorCode.FORBIDDEN, ErrorCode.NOT_IN_CALL}
)
Offer = Callable[[str], Awaitable[CallInfo]]


class _RemoteEnded(Exception):
    """The call ended remotely while an operation waited on the other party."""


class CallSession:
    """One call (see the module documentation)."""

    def __init__(
        self,
        ctx: CallContext,
        signaling: CallSignaling,
        *,
        call_id: str,
        from_: str,
        to: str,
        direction: Direction,
        media_offered: MediaOffered,
        anonymous: bool = False,
        server_id: str | None = None,
        remote_offer: str | None = None,
    ) -> None:
        self._ctx = ctx
        self.signaling = signaling
        # What a `Call` snapshot shows.
        self.id = call_id
        self.from_ = from_
        self.to = to
        self.direction: Direction = direction
        self.media_offered = media_offered
        self.anonymous = anonymous
        self.server_id = server_id
        self.state = S.INITIATING
        self.local_hold = False
        self.remote_hold = False
        self.local_tracks: dict[str, TrackKind] = {}  # track id -> kind
        self.remote_tracks: dict[str, TrackKind] = {}
        self.start_time = time.time()
        self.end_time: float | None = None
        self.end_reason: str | None = None
        self.ended_here = False  # ended by us, so the server must be told (see `_finish`)
        self.muted = False
        self.media_state = "new"  # the peer connection's ICE state
        # What the call is made of.
        self._supervisor = MediaSupervisor(self, ctx)
        # The call's media shows the supervisor its frames (health) before the engine's listeners.
        media_ctx = dataclasses.replace(ctx, seen=self._supervisor.seen)
        self.media = CallMedia(call_id, self.remote_participant, media_ctx)
        self._certificate: Any = None  # the DTLS certificate of every peer connection
        self._trickle = Trickle(self, ctx, self._supervisor.check)
        self._restarts = MediaRestart(self, self._supervisor, self._trickle, ctx.options)
        self.peer: Peer | None = None
        self.lock = asyncio.Lock()
        self._remote_offer = remote_offer  # an incoming call's offer, until answered
        self._inbox: asyncio.Queue[frames.Notification] = asyncio.Queue()
        self._update_answer: asyncio.Future[str] | None = None
        self._ringing: asyncio.Task[None] | None = None
        self._worker = ctx.spawn(self._work(), f"call {call_id}")

    # -- what it is --------------------------------------------------------------------------

    @property
    def terminal(self) -> bool:
        return self.state in TERMINAL

    @property
    def established(self) -> bool:
        return self.state in ESTABLISHED

    @property
    def remote_participant(self) -> str:
        return self.to if self.direction == "outgoing" else self.from_

    def previous(self) -> PreviousState:
        return PreviousState(self.state, self.local_hold, self.remote_hold)

    def snapshot(self) -> Call:
        return Call(
            id=self.id,
            from_=self.from_,
            to=self.to,
            direction=self.direction,
            state=self.state,
            local_hold=self.local_hold,
            remote_hold=self.remote_hold,
            local_tracks=tuple(self.local_tracks),
            remote_tracks=tuple(self.remote_tracks),
            media_offered=self.media_offered,
            remote_participant=self.remote_participant,
            start_time=self.start_time,
            end_time=self.end_time,
            end_reason=self.end_reason,
            muted=self.muted,
            anonymous=self.anonymous,
            server_id=self.server_id,
            media_state=self.media_state,
        )

    def _check(self, allowed: frozenset[CallState] | set[CallState], operation: str) -> None:
        if self.state not in allowed:
            raise EngineError(
                Code.INVALID_STATE,
                f"cannot {operation} call {self.id} in state {self.state.value!r}",
            )

    def _incoming_only(self, operation: str) -> None:
        if self.direction != "incoming":
            raise EngineError(Code.INVALID_STATE, f"cannot {operation} an outgoing call")

    def _server_id(self) -> str:
        if self.server_id is None:
            raise EngineError(Code.INVALID_STATE, f"call {self.id} is not known to the server")
        return self.server_id

    # -- making a call -----------------------------------------------------------------------

    async def start_outgoing(
        self,
        offer_to: Offer,
        video_size: tuple[int, int],
        *,
        prepare: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        """Build the peer connection (after `prepare`, which may set the ICE servers), open
        what we send, make the offer and hand it to `offer_to` (the server) → Initiated."""
        async with self.lock:
            if self.terminal:
                return
            try:
                try:
                    if prepare is not None:
                        await prepare()
                finally:
                    # Made even when `prepare` failed (it gathers nothing until an offer), so a
                    # refused call reports its media closed like any call that failed to start.
                    peer = self.peer = self.new_peer()
                source = self.media.open_audio() if self.media_offered.audio else None
                self._apply_silence()
                peer.add_track("audio", source)
                if self.media_offered.video:
                    self.media.video = self.media.open_video(video_size)
                    peer.add_track("video", self.media.video)
                offer = await peer.create_offer()
                self._check_reachable(peer)
                info = await offer_to(offer.sdp)
            except Exception as exc:
                self._ctx.emit(CallStart(self.id, _error_info(exc)))
                await self._fail(exc)
                return
            self.server_id = info.id
            self._ctx.bind(self.id, info.id)
            for track_id, kind in peer.local_tracks().items():
                self.local_tracks[track_id] = _kind(kind)
                self._ctx.emit(CallNewTrack(self.id, track_id, _kind(kind), True))
            self._transition(S.INITIATED, "call started")

    async def _answered(self, sdp: str) -> None:
        """The other party answered our offer → Connected."""
        assert self.peer is not None
        try:
            await self.peer.apply_answer(sdp)
        except Exception as exc:
            await self._fail(EngineError(Code.ANSWER_MISMATCH, f"bad answer: {exc}"))
            return
        await self._trickle.apply_early()
        self._transition(S.CONNECTED, "answered")
        await self.negotiated("answered")

    # -- receiving a call --------------------------------------------------------------------

    def start_incoming(self) -> None:
        """A new incoming call: tell the caller it rings (in the background)."""
        self._ringing = self._ctx.spawn(self._ring(), f"ringing {self.id}")

    async def _ring(self) -> None:
        async with self.lock:
            if self.state != S.INITIATING:
                return
            if not self._ctx.options.ringing_feedback:
                self._transition(S.INITIATED, "incoming call")
                return
            try:
                await self.signaling.rest.ringing(self._server_id())
            except client_errors.ClientError as exc:
                log.info("call %s: ringing feedback failed: %s", self.id, exc)
                if not self.terminal:
                    self._transition(S.INITIATED, "incoming call (no ringing feedback)")
                return
            if self.state == S.INITIATING:
                self._transition(S.RINGING, "ringing feedback sent")

    async def answer(
        self, *, audio: bool = True, video: bool = False, video_size: tuple[int, int] = (640, 480)
    ) -> None:
        """Answer (Initiated or Ringing) → Connected. Answering right on call:receive (still
        Initiating) waits for the ringing step already under way."""
        allowed = {S.INITIATED, S.RINGING}
        self._check(allowed | {S.INITIATING}, "answer")
        self._incoming_only("answer")
        if self.state == S.INITIATING and self._ringing is not None:
            with contextlib.suppress(Exception):
                await asyncio.shield(self._ringing)
        async with self.lock:
            self._check(allowed, "answer")
            assert self._remote_offer is not None
            peer = self.peer = self.new_peer()
            try:
                tracks: dict[str, Any] = {}
                if audio:
                    tracks["audio"] = self.media.open_audio()
                    self._apply_silence()
                if video and self.media_offered.video:
                    self.media.video = tracks["video"] = self.media.open_video(video_size)
                sdp = await peer.answer(self._remote_offer, tracks)
                self._check_reachable(peer)
                await self._trickle.apply_early()
                await self.signaling.rest.answer(self._server_id(), sdp)
            except client_errors.ServerError as exc:
                if exc.code in _NOT_OURS:
                    # Cancelled or answered elsewhere meanwhile: its notification ends the call.
                    await self._drop_media()
                    raise EngineError(Code.INVALID_STATE, f"cannot answer: {exc}") from exc
                await self._fail(exc)
                raise EngineError(Code.GENERIC, f"answer failed: {exc}") from exc
            except Exception as exc:
                await self._fail(exc)
                raise EngineError(Code.GENERIC, f"answer failed: {exc}") from exc
            self._remote_offer = None
            self._transition(S.CONNECTED, "answered")
            await self.negotiated("answered")

    async def reject(self) -> None:
        """Decline an incoming call; both sides end (reason `rejected`)."""
        allowed = {S.INITIATING, S.INITIATED, S.RINGING}
        self._check(allowed, "reject")
        self._incoming_only("reject")
        async with self.lock:
            self._check(allowed, "reject")
            try:
                await self.signaling.rest.reject(self._server_id())
            except client_errors.ServerError as exc:
                if exc.code != ErrorCode.WRONG_STATE:
                    await self._fail(exc)
                raise EngineError(Code.INVALID_STATE, f"cannot reject: {exc}") from exc
            except client_errors.ClientError as exc:
                remember = self.signaling.remember_end
                if remember is None:
                    await self._fail(exc)
                    raise EngineError(Code.GENERIC, f"reject failed: {exc}") from exc
                # The server is unreachable: the user's decline stands; the outbox delivers it
                # (an end by the callee of an unanswered call is a rejection).
                remember(self._server_id(), "rejected")
            await self._finish(S.ENDED, "rejected", "rejected", local=True)

    async def ignore(self) -> None:
        """Drop an incoming call locally (no signaling: it rings on elsewhere or times out)."""
        allowed = {S.INITIATING, S.INITIATED, S.RINGING}
        self._check(allowed, "ignore")
        self._incoming_only("ignore")
        async with self.lock:
            self._check(allowed, "ignore")
            await self._finish(S.ENDED, "ignored", "ignored")

    # -- ending ------------------------------------------------------------------------------

    async def end(self) -> None:
        """Hang up, cancel or reject, whatever the live state → Ended."""
        if self.terminal:
            raise EngineError(Code.INVALID_STATE, f"call {self.id} already {self.state.value}")
        async with self.lock:
            if self.terminal:
                return  # ended while we waited for the lock
            if self.established:
                reason = "hangup"
            elif self.direction == "outgoing":
                reason = "cancelled"
            else:
                reason = "rejected"
            await self._tell_end(reason)
            await self._finish(S.ENDED, reason, "ended locally", local=True)

    async def _tell_end(self, reason: str, timeout: float | None = None) -> None:
        """Tell the server we ended the call; one it cannot reach goes to the outbox."""
        if self.server_id is not None:
            await self.signaling.tell_end(self.id, self.server_id, reason, timeout)

    async def shutdown(self, timeout: float) -> None:
        """The engine stops: end the call (bounded in time); a call that only rings is left
        to the user's other devices (or the ring timeout)."""
        if self.terminal:
            return
        if self.direction == "incoming" and self.state in UNANSWERED:
            await self._finish(S.ENDED, "ignored", "engine stopped")
            return
        try:
            async with asyncio.timeout(timeout):
                await self.end()
        except (EngineError, TimeoutError) as exc:
            log.info("stop: could not end call %s cleanly: %s", self.id, exc)
            await self._finish(S.ENDED, "stopped", "engine stopped", local=True)

    async def lost(self, why: str) -> None:
        """Our subscription is gone for good: the call cannot go on (the server ends it too)."""
        async with self.lock:
            if self.terminal:
                return
            info = ErrorInfo(Code.GENERIC, why)
            self._ctx.emit(CallError(self.id, info))
            await self._finish(S.ENDED, "connection_lost", why, info, local=True)

    # -- re-offers: hold, unhold, video, media restart ---------------------------------------

    async def hold(self) -> None:
        """Put the call on hold (re-offer sendonly; we send silence and receive nothing)."""
        self._check(ESTABLISHED, "hold")
        if self.local_hold:
            raise EngineError(Code.INVALID_STATE, f"call {self.id} is already held locally")

        def prepare(peer: Peer) -> None:
            if self.local_hold:
                raise EngineError(Code.INVALID_STATE, "already held locally")
            peer.set_hold(True)

        await self._reoffer(prepare, lambda peer: peer.set_hold(False), "local hold")

    async def unhold(self) -> None:
        """Release our hold (media flows again unless the remote party holds too)."""
        self._check(ESTABLISHED, "unhold")
        if not self.local_hold:
            raise EngineError(Code.INVALID_STATE, f"call {self.id} is not held locally")

        def prepare(peer: Peer) -> None:
            if not self.local_hold:
                raise EngineError(Code.INVALID_STATE, "not held locally")
            peer.set_hold(False)

        await self._reoffer(prepare, lambda peer: peer.set_hold(True), "local unhold")

    async def start_video(self, video_size: tuple[int, int] = (640, 480), fps: int = 15) -> None:
        """Start sending video (renegotiated)."""
        allowed = {S.CONNECTED}
        self._check(allowed, "start video on")
        media = self.media
        if media.video is not None:
            raise EngineError(Code.INVALID_STATE, "the call already sends video")
        source = media.open_video(video_size, fps)

        def prepare(peer: Peer) -> None:
            if media.video is not None:
                raise EngineError(Code.INVALID_STATE, "the call already sends video")
            media.video = source
            if not peer.set_track("video", source):
                peer.add_track("video", source)

        def undo(peer: Peer) -> None:
            peer.set_track("video", None)
            media.video = None

        try:
            await self._reoffer(prepare, undo, "video started", allowed)
        except BaseException:
            if media.video is not source:
                source.stop()
            raise

    async def stop_video(self) -> None:
        """Stop sending video (renegotiated)."""
        allowed = {S.CONNECTED}
        self._check(allowed, "stop video on")
        media = self.media
        source = media.video
        if source is None:
            raise EngineError(Code.INVALID_STATE, "the call sends no video")

        def prepare(peer: Peer) -> None:
            peer.set_track("video", None)
            media.video = None

        def undo(peer: Peer) -> None:
            peer.set_track("video", source)
            media.video = source

        await self._reoffer(prepare, undo, "video stopped", allowed)
        source.stop()

    async def restart_media(self) -> None:
        """Restart the call's media under the same call id (`call:mediaConnectionChange`
        `restarting`, then back to `connected`).

        An ICE restart that keeps the DTLS association where it still works, else a new peer
        connection (`MediaRestart`, engine/restart.py). Returns once the new path is up (or
        raises)."""
        self._check(ESTABLISHED, "restart media on")
        async with self.lock:
            self._check(ESTABLISHED, "restart media on")
            await self._restarts.restart()

    async def _reoffer(
        self,
        prepare: Callable[[Peer], None],
        undo: Callable[[Peer], None],
        reason: str,
        allowed: frozenset[CallState] | set[CallState] = ESTABLISHED,
    ) -> None:
        """Re-offer on the current peer connection; glare (409 + Retry-After) rolls back and
        retries later with jitter, letting the other party's re-offer through meanwhile."""
        attempt = 0
        while True:
            async with self.lock:
                self._check(allowed, reason)
                peer = self.peer
                assert peer is not None
                prepare(peer)
                try:
                    offer = await peer.create_offer()
                    # POST first, so a refused re-offer (glare) leaves nothing to roll back;
                    # our offer becomes the local description once the server took it.
                    answer = await self.exchange(offer.sdp)
                    await peer.apply_local(offer)
                    await peer.apply_answer(answer)
                except client_errors.ServerError as exc:
                    undo(peer)
                    if exc.code != ErrorCode.GLARE or attempt >= self._ctx.options.glare_retries:
                        raise EngineError(Code.GENERIC, f"{reason} refused: {exc}") from exc
                    delay = (exc.retry_after or 1.0) * random.uniform(0.5, 1.0)
                except EngineError:
                    undo(peer)
                    raise
                except TimeoutError as exc:
                    await self._fail(EngineError(Code.GENERIC, f"{reason}: no answer"))
                    raise EngineError(Code.GENERIC, f"{reason}: no answer in time") from exc
                except Exception as exc:
                    await self._fail(exc)
                    raise EngineError(Code.GENERIC, f"{reason} failed: {exc}") from exc
                else:
                    await self.negotiated(reason)
                    return
            attempt += 1
            await asyncio.sleep(delay)

    async def exchange(self, sdp: str) -> str:
        """POST a re-offer and wait for the other party's answer (glare raises ServerError)."""
        waiter: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._update_answer = waiter
        try:
            await self.signaling.post_update(
                self.id, self._server_id(), sdp, self._ctx.options.reoffer_wait
            )
            async with asyncio.timeout(self._ctx.options.update_timeout):
                return await waiter
        except _RemoteEnded as exc:
            raise EngineError(Code.INVALID_STATE, "the call ended meanwhile") from exc
        finally:
            self._update_answer = None
            if not waiter.done():
                waiter.cancel()

    async def _remote_update(self, sdp: str) -> None:
        """The other party re-offered: answer it (new ICE credentials: a media restart)."""
        old = self.peer
        assert old is not None
        if is_restart(old.remote_sdp, sdp):
            await self._restarts.answer(sdp)
            return
        answer = await old.answer(sdp, {"audio": self.media.source, "video": self.media.video})
        # Our view changes before the answer goes out, so it is current by the time the other
        # party's operation completes.
        await self.negotiated("remote update")
        await self.send_update_answer(answer)

    async def send_update_answer(self, sdp: str) -> None:
        """Our answer to the other party's re-offer."""
        await self.signaling.rest.update_answer(self._server_id(), sdp)

    # -- mute, DTMF, statistics --------------------------------------------------------------

    def set_muted(self, muted: bool) -> None:
        """Send silence instead of our audio and video (no signaling)."""
        if self.terminal:
            raise EngineError(Code.INVALID_STATE, f"call {self.id} is {self.state.value}")
        changed = self.muted != muted
        self.muted = muted
        self._apply_silence()
        if changed:
            self._ctx.emit(CallMuteChange(self.id, muted))

    async def send_dtmf(
        self, digits: str, *, duration_ms: int, gap_ms: int, inband: bool, signaled: bool
    ) -> None:
        """Send DTMF digits in-band (tones in our audio) and/or signaled (`call.dtmf`)."""
        allowed = {S.CONNECTED}
        self._check(allowed, "send DTMF on")
        if not digits or not set(digits) <= DTMF_CHARS or len(digits) > 64:
            raise EngineError(Code.INVALID_PARAM, f"bad DTMF digits {digits!r}")
        if not 40 <= duration_ms <= 2000:
            raise EngineError(Code.INVALID_PARAM, "DTMF duration is 40-2000 ms")
        async with self.lock:
            self._check(allowed, "send DTMF on")
            source = self.media.source
            if inband and source is not None:
                source.play_dtmf(digits, duration_ms=duration_ms, gap_ms=gap_ms)
            if signaled:
                try:
                    await self.signaling.rest.dtmf(self._server_id(), digits, duration_ms)
                except client_errors.ClientError as exc:
                    raise EngineError(Code.GENERIC, f"DTMF not sent: {exc}") from exc

    async def get_stats(self) -> dict[str, Any]:
        """A summary of the call's RTP statistics; also emitted as `call:statsReceived`."""
        self._check(ESTABLISHED, "get stats of")
        if self.peer is None:
            raise EngineError(Code.INVALID_STATE, "no media session")
        stats = await self.peer.stats()
        # Our receive path and devices: jitter buffer, device latency, processing.
        stats.setdefault("audio", {}).update(self.media.audio_stats())
        self._ctx.emit(CallStatsReceived(self.id, stats))
        return stats

    # -- notifications from the server -------------------------------------------------------

    def deliver(self, frame: frames.Notification) -> None:
        """A notification for this call (from the engine's router), in arrival order."""
        waiter = self._update_answer
        if isinstance(frame, frames.CallUpdateAnswer):
            if waiter is not None and not waiter.done():
                waiter.set_result(frame.sdp)
            return
        if isinstance(frame, frames.CallDtmf):
            self._ctx.emit(CallDtmfReceived(self.id, frame.digits, "signaled"))
            return
        if isinstance(frame, frames.CallCandidate):
            self._trickle.deliver(frame)  # not behind the lock (see engine/trickle.py)
            return
        ending = isinstance(frame, frames.CallEnded | frames.CallCancelled | frames.CallRejected)
        if ending and waiter is not None and not waiter.done():
            waiter.set_exception(_RemoteEnded())
        self._inbox.put_nowait(frame)

    async def _work(self) -> None:
        while not self.terminal:
            frame = await self._inbox.get()
            async with self.lock:
                if self.terminal:
                    return
                try:
                    await self._handle(frame)
                except Exception as exc:
                    log.exception("call %s: handling %s failed", self.id, type(frame).__name__)
                    await self._fail(exc)

    async def _handle(self, frame: frames.Notification) -> None:
        match frame:
            case frames.CallRinging():
                if self.direction == "outgoing" and self.state == S.INITIATED:
                    self._transition(S.RINGING, "ringing")
            case frames.CallAnswered(sdp=sdp):
                if self.direction == "outgoing" and self.state in UNANSWERED:
                    await self._answered(sdp)
            case frames.CallRejected():
                await self._finish(S.ENDED, "rejected", "rejected by the remote party")
            case frames.CallCancelled(reason=reason):
                state = S.CANCELLED if self.state in UNANSWERED else S.ENDED
                await self._finish(state, reason, f"cancelled: {reason}")
            case frames.CallEnded(reason=reason):
                await self._finish(S.ENDED, reason, f"ended: {reason}")
            case frames.CallUpdate(sdp=sdp) if self.established:
                await self._remote_update(sdp)

    # -- transitions and media after each negotiation ----------------------------------------

    def _transition(
        self,
        state: CallState,
        reason: str,
        *,
        status_code: int | None = None,
        error: ErrorInfo | None = None,
    ) -> None:
        check_transition(self.state, state)
        previous = self.previous()
        self.state = state
        transition = Transition(reason, status_code)
        self._ctx.emit(CallStateChange(self.id, previous, transition, state, error))
        if state == S.CONNECTED:
            self._supervisor.watch()

    async def negotiated(self, reason: str) -> None:
        """Both descriptions are applied: announce tracks, move the sinks, and take the hold
        flags (→ On Hold / Connected) from the peer connection."""
        peer = self.peer
        assert peer is not None
        self._sync_tracks(peer)
        await self.media.follow(peer.remote_tracks(), peer.receiver_of, self.listening)
        previous = self.previous()
        self.local_hold, self.remote_hold = peer.local_hold, peer.remote_hold
        self._apply_silence()
        state = S.ON_HOLD if self.local_hold or self.remote_hold else S.CONNECTED
        if (state, self.local_hold, self.remote_hold) != (
            previous.state,
            previous.local_hold,
            previous.remote_hold,
        ):
            check_transition(previous.state, state)
            self.state = state
            self._ctx.emit(CallStateChange(self.id, previous, Transition(reason), state))

    def _sync_tracks(self, peer: Peer) -> None:
        """Announce tracks that appeared or ended (`call:newTrack`, `call:trackEnded`)."""
        for mine, now in (
            (self.local_tracks, peer.local_tracks()),
            (self.remote_tracks, {t: kind for t, (kind, _) in peer.remote_tracks().items()}),
        ):
            local = mine is self.local_tracks
            for track_id, kind in list(mine.items()):
                if track_id not in now:
                    del mine[track_id]
                    self._ctx.emit(CallTrackEnded(self.id, track_id, kind, local))
            for track_id, raw in now.items():
                if track_id not in mine:
                    mine[track_id] = _kind(raw)
                    self._ctx.emit(CallNewTrack(self.id, track_id, _kind(raw), local))

    def listening(self) -> bool:
        """Whether remote audio should be arriving now (for the gap watch)."""
        return self.state == S.CONNECTED and not self.local_hold and not self.remote_hold

    def _apply_silence(self) -> None:
        self.media.set_silent(self.muted or self.local_hold)

    def new_peer(self, *, fresh_certificate: bool = False) -> Peer:
        """A peer connection of this call: the call's DTLS certificate (the first
        connection's) unless `fresh_certificate`; its state changes feed the media health."""
        peer: Peer

        def ice_changed(previous: str, state: str) -> None:
            if self.peer is not peer:
                return  # an old peer connection after restart_media
            self.media_state = state
            self._supervisor.check()

        def connection_changed(previous: str, state: str) -> None:
            if self.peer is peer:
                self._supervisor.check()

        def turn_failed(failure: TurnFailure) -> None:
            # At once, naming the server: a wrong secret is the user's (or admin's) to fix.
            info = ErrorInfo(Code.MEDIA_UNAVAILABLE, failure.describe())
            self._ctx.emit(MediaError(info, self.id))

        certificate = None if fresh_certificate else self._certificate
        peer = Peer(
            self.signaling.ice,
            on_connection_state=ice_changed,
            on_peer_state=connection_changed,
            on_turn_failure=turn_failed,
            certificate=certificate,
        )
        if self._certificate is None or fresh_certificate:
            self._certificate = peer.certificate
        return peer

    def _check_reachable(self, peer: Peer) -> None:
        """Our offer or answer has no candidate at all because TURN refused us (and there is no
        host address to offer): nobody can reach us, so the call fails now, saying why."""
        failures = peer.turn_failures
        if failures and not peer.has_local_candidates:
            described = "; ".join(f.describe() for f in failures)
            why = f"no media path: {described}; no other address to offer"
            raise EngineError(Code.MEDIA_UNAVAILABLE, why)

    # -- what the media supervisor may ask ----------------------------------------------------

    async def restart_media_locked(self) -> None:
        """`restart_media` for a caller that holds `lock` already."""
        await self._restarts.restart()

    async def end_with(self, error: EngineError) -> None:
        """End the call with `error` (the caller holds `lock`)."""
        await self._fail(error)

    # -- the end -----------------------------------------------------------------------------

    async def _drop_media(self) -> None:
        """Forget an answer that the server refused; the call itself goes on (to its end)."""
        await self._release()
        self.peer = None
        self.media.source = self.media.video = None

    async def _release(self) -> None:
        """Close the peer connection and release the media (never raises)."""
        waiter = self._update_answer
        if waiter is not None and not waiter.done():
            waiter.set_exception(_RemoteEnded())
        if self.peer is not None:
            await self.peer.close()
        self._supervisor.stop()
        self._trickle.stop()
        await self.media.release()
        if self.signaling.anonymous is not None:
            with contextlib.suppress(Exception):
                await self.signaling.anonymous.close()

    async def _finish(
        self,
        state: CallState,
        end_reason: str,
        reason_text: str,
        error: ErrorInfo | None = None,
        *,
        local: bool = False,
    ) -> None:
        """Move to a terminal state and release everything (idempotent). `local`: we ended
        it (not the other party, not the server), so the server must hear of it."""
        if self.terminal:
            return
        previous = self.previous()
        self.state = state
        self.ended_here = local
        self.end_time = time.time()
        self.end_reason = end_reason
        for mine, local in ((self.local_tracks, True), (self.remote_tracks, False)):
            for track_id, kind in mine.items():
                self._ctx.emit(CallTrackEnded(self.id, track_id, kind, local))
            mine.clear()
        await self._release()
        if self.server_id is not None:
            self._ctx.unbind(self.server_id)
        if self._worker is not asyncio.current_task():
            self._worker.cancel()
        transition = Transition(reason_text)
        self._ctx.emit(CallStateChange(self.id, previous, transition, state, error))

    async def _fail(self, exc: BaseException) -> None:
        """An error ends the call: tell the user and the server, release everything."""
        info = _error_info(exc)
        self._ctx.emit(CallError(self.id, info))
        if self.terminal:
            return
        await self._tell_end("error", timeout=3.0)
        await self._finish(S.ENDED, "error", info.message, info, local=True)


def _kind(kind: str) -> TrackKind:
    return "video" if kind == "video" else "audio"


def _error_info(exc: BaseException) -> ErrorInfo:
    if isinstance(exc, EngineError):
        return exc.info
    if isinstance(exc, client_errors.ServerError):
        return ErrorInfo(Code.GENERIC, f"server: {exc.code}: {exc.message}")
    if isinstance(exc, client_errors.ClientError):
        return ErrorInfo(Code.SIGNALING_UNAVAILABLE, f"signaling: {exc}")
    return ErrorInfo(Code.UNKNOWN, f"{type(exc).__name__}: {exc}")


__all__ = ["DTMF_CHARS", "CallSession"]
