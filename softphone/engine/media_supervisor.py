"""Watching one call's media for its whole life, and acting when it dies.

A `MediaSupervisor` belongs to one `CallSession` and feeds the call's `MediaHealth` (the model,
engine/media_health.py) what it observes: the current peer connection's transport states and
TURN failures, what each remote track decoded, whether a media restart is under way. A change
is reported at once (`call:mediaConnectionChange`; `media:error` when it went bad). While the
call lives it looks every `HEALTH_EVERY` seconds: dead media (failed, stalled) is restarted
(`auto_restart`; the caller first, the callee `CALLEE_RESTART_DELAY` later, so they do not
re-offer at once) and the call ended past `media_dead_timeout`. Each new peer connection also
gets `media_timeout` to come up (`watch`).

The supervisor never touches the session's state: it reads what `SupervisedCall` shows and asks
the call to restart or end through it, under the call's lock like any operation.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from typing import Any, Protocol

from softphone.engine.call_media import CallMedia
from softphone.engine.context import CallContext
from softphone.engine.errors import EngineError, EngineErrorCode, ErrorInfo
from softphone.engine.events import CallMediaConnectionChange, MediaError, TrackKind
from softphone.engine.media_health import BAD, HealthChange, MediaHealth
from softphone.engine.peer import Peer
from softphone.engine.sdp import candidate_count, has_end_of_candidates
from softphone.engine.states import CallState

log = logging.getLogger("softphone.engine")

Code = EngineErrorCode
HEALTH_EVERY = 0.25  # seconds between looks at a call's media health
# An automatic restart is tried at most this often; the callee waits this much longer than the
# caller before trying, so both sides do not re-offer at once (glare).
RESTART_SPACING = 4.0
CALLEE_RESTART_DELAY = 1.5


class SupervisedCall(Protocol):
    """What the supervisor may read of its call, and what it may ask of it."""

    @property
    def id(self) -> str: ...
    @property
    def direction(self) -> str: ...
    @property
    def state(self) -> CallState: ...
    @property
    def terminal(self) -> bool: ...
    @property
    def established(self) -> bool: ...
    @property
    def peer(self) -> Peer | None: ...
    @property
    def media_state(self) -> str: ...  # the current peer connection's ICE state
    @property
    def remote_tracks(self) -> Mapping[str, TrackKind]: ...
    @property
    def media(self) -> CallMedia: ...
    @property
    def lock(self) -> asyncio.Lock: ...

    def listening(self) -> bool:
        """Whether remote media should be arriving now."""
        ...

    async def restart_media_locked(self) -> None:
        """Restart the media (the caller holds `lock`)."""
        ...

    async def end_with(self, error: EngineError) -> None:
        """End the call with `error` (the caller holds `lock`)."""
        ...


class MediaSupervisor:
    """See the module documentation."""

    def __init__(self, call: SupervisedCall, ctx: CallContext) -> None:
        self._call = call
        self._ctx = ctx
        self.health = MediaHealth(stall_after=ctx.options.stall_after)
        self._frames = 0  # remote video frames seen (what a video track decoded)
        self._task: asyncio.Task[None] | None = None
        self._last_restart = 0.0  # monotonic time of the last automatic restart
        self._restarting = False  # a media restart's negotiation is under way
        self._ice_restart: asyncio.Task[bool] | None = None  # an ICE restart's checks
        self._watched: Peer | None = None  # the peer connection the watchdog waits on

    def seen(self, call_id: str, frame: Any) -> None:
        """A remote video frame (the call media's `seen`): counted, then the engine's."""
        self._frames += 1
        self._ctx.seen(call_id, frame)

    def set_restarting(self, restarting: bool) -> None:
        self._restarting = restarting
        self.check()

    def ice_restart_started(self, task: asyncio.Task[bool]) -> None:
        """An ICE restart's connectivity checks run in `task`: restarting until it is done."""
        self._ice_restart = task

    def watch(self) -> None:
        """Both descriptions are applied: the media connection must come up in time (aiortc
        never reports a failure when there is no candidate pair at all: it does not even
        start ICE), and its health is watched for the rest of the call."""
        call = self._call
        if self._task is None:
            self._task = self._ctx.spawn(self._loop(), f"media health {call.id}")
        self.check()
        peer = call.peer
        if peer is None or self._watched is peer:
            return
        self._watched = peer
        self._ctx.spawn(self._watchdog(peer), f"media watchdog {call.id}")

    def stop(self) -> None:
        """The call is over: stop looking (not from inside the look itself)."""
        if self._task is not None and self._task is not asyncio.current_task():
            self._task.cancel()

    def check(self) -> HealthChange | None:
        """Look at the media now; report a change at once (never raises)."""
        call = self._call
        if call.terminal:
            return None
        peer = call.peer
        health = self.health
        if peer is None:
            return None
        try:
            turn = [f.describe() for f in peer.turn_failures]
            # The ICE state as its callback reported it (media_state) for the current peer.
            health.transport(call.media_state, peer.connection_state, peer.dtls_failure, turn)
            remote = peer.remote_sdp
            if remote and not candidate_count(remote) and has_end_of_candidates(remote):
                health.path_note = "the other party offered no address to reach it"
            task = self._ice_restart
            health.set_restarting(self._restarting or (task is not None and not task.done()))
            health.flows(self._flow_counts(), call.listening() and not health.restarting)
            change = health.update()
        except Exception:
            log.exception("call %s: media health check failed", call.id)
            return None
        if change is not None:
            self._report(change)
        return change

    def _flow_counts(self) -> dict[str, tuple[str, int]]:
        """What arrived and was decoded so far per remote track we can count."""
        counts: dict[str, tuple[str, int]] = {}
        media = self._call.media
        for track_id, kind in self._call.remote_tracks.items():
            if kind == "audio" and media.receive is not None:
                stats = media.receive.stats()
                counts[track_id] = ("audio", stats.played + stats.fec)
            elif kind == "video" and media.video_sink is not None:
                counts[track_id] = ("video", self._frames)
        return counts

    def _report(self, change: HealthChange) -> None:
        call = self._call
        self._ctx.emit(
            CallMediaConnectionChange(
                call.id,
                change.previous,
                change.state,
                ice=change.ice,
                connection=change.connection,
                reason=change.reason,
            )
        )
        if change.state in BAD and change.reason:
            self._ctx.emit(MediaError(ErrorInfo(Code.MEDIA_UNAVAILABLE, change.reason), call.id))
        if change.state == "failed" and call.established:
            # ICE or DTLS failed for good on this connection: during setup nothing can be
            # recovered (a fingerprint that does not match, no path), and after it aioice
            # declares ICE failed only once consent has failed for 30 s, long after the media
            # stalled (restarted then) and beyond `media_dead_timeout`.
            if self.health.dtls_failure is not None:
                reason = change.reason or "the secure media connection (DTLS) failed"
            else:
                reason = f"media connection failed (ICE): {change.reason}"
            self._ctx.spawn(self._end(reason, call.peer), f"media failed {call.id}")

    async def _end(self, reason: str, peer: Peer | None = None) -> None:
        """End the call for its media, unless it ended or moved to another peer connection."""
        call = self._call
        async with call.lock:
            if call.terminal or (peer is not None and call.peer is not peer):
                return
            await call.end_with(EngineError(Code.MEDIA_UNAVAILABLE, reason))

    async def _loop(self) -> None:
        """While the call lives: look at the media every HEALTH_EVERY; media dead (failed,
        stalled) is restarted (`auto_restart`), and ended past `media_dead_timeout`."""
        call = self._call
        options = self._ctx.options
        started_dead = 0.0
        while not call.terminal:
            await asyncio.sleep(HEALTH_EVERY)
            self.check()
            health = self.health
            dead = health.dead_for()
            if not dead or health.state not in BAD | {"restarting"}:
                started_dead = 0.0
                continue
            if not started_dead:
                started_dead = time.monotonic()
            if dead > options.media_dead_timeout:
                why = health.reason or "the media stopped"
                await self._end(f"no media for {options.media_dead_timeout:g} s: {why}")
                return
            if options.auto_restart and health.state in BAD and not call.lock.locked():
                wait = CALLEE_RESTART_DELAY if call.direction == "incoming" else 0.0
                now = time.monotonic()
                if now - started_dead >= wait and now - self._last_restart >= RESTART_SPACING:
                    self._last_restart = now
                    self._ctx.spawn(self._restart(), f"media restart {call.id}")

    async def _restart(self) -> None:
        """Restart dead media, within what is left of `media_dead_timeout` (a far end that
        never answers the re-offer must not hold the call past it)."""
        call = self._call
        try:
            async with call.lock:
                if call.terminal or call.state != CallState.CONNECTED:
                    return
                if self.health.state not in BAD:
                    return
                left = self._ctx.options.media_dead_timeout - self.health.dead_for()
                log.info("call %s: restarting the media (%s)", call.id, self.health.reason)
                async with asyncio.timeout(max(left, 0.5)):
                    await call.restart_media_locked()
        except TimeoutError:
            log.info("call %s: automatic media restart: no answer in time", call.id)
        except EngineError as exc:
            log.info("call %s: automatic media restart failed: %s", call.id, exc.info.message)
        except Exception:
            log.exception("call %s: automatic media restart failed", call.id)

    async def _watchdog(self, peer: Peer) -> None:
        call = self._call
        timeout = self._ctx.options.media_timeout
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if call.terminal or call.peer is not peer or peer.closed:
                return
            if peer.connection_state == "connected":
                return
            await asyncio.sleep(0.2)
        async with call.lock:
            if call.terminal or call.peer is not peer:
                return
            if peer.connection_state == "connected":
                return
            if peer.ice_state in ("connected", "completed"):
                why = "the secure media connection (DTLS) did not complete its handshake"
            else:
                why = self.health.no_path_reason()
            why = f"no media connection after {timeout:g} s ({why})"
            await call.end_with(EngineError(Code.GENERIC, why))


__all__ = ["MediaSupervisor", "SupervisedCall"]
