"""The engine's core: calls over the signaling client and aiortc, on one asyncio loop.

Operations on one call are serialised by the call's lock (its operation queue); notifications
for a call are processed in order by the call's worker under the same lock. Two notifications
are handled at once instead, so an operation waiting on them cannot deadlock: the answer to our
re-offer (`call.update_answer`) resolves the waiting operation, and an ending notification
fails it. Every failure path ends the call (peer connection closed, tracks and sinks stopped)
and emits `call:error`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from softphone.client import AnonymousSignaling, RestClient, SignalingClient
from softphone.client import errors as client_errors
from softphone.client import events as client_events
from softphone.client.session import PasswordProvider
from softphone.engine import errors
from softphone.engine.call import Call, CallRecord
from softphone.engine.errors import EngineError, ErrorInfo
from softphone.engine.events import (
    CallDtmf,
    CallError,
    CallMediaConnectionChange,
    CallNewTrack,
    CallStateChange,
    CallTrackEnded,
    EngineCallback,
    EngineEvent,
    MediaError,
    MediaSourceMuted,
    MediaSourceUnmuted,
    Transition,
)
from softphone.engine.media_kit import MediaKit, default_kit
from softphone.engine.peer import Peer
from softphone.engine.states import UNANSWERED, CallState, check_transition
from softphone.media.audio_switch import SwitchableSource
from softphone.media.video import SwitchableVideo
from softphone.protocol import frames
from softphone.protocol.models import CallInfo, IceServer

log = logging.getLogger("softphone.engine")

S = CallState
PcmListener = Callable[[str, np.ndarray[Any, Any]], None]
FrameListener = Callable[[str, Any], None]
DTMF_CHARS = frozenset("0123456789*#ABCDabcd,")
MAX_ORPHANS = 256
# Remote audio that stops arriving for this long while connected (and not held) is reported
# as `media:sourceMuted`; the next audio block reports `media:sourceUnmuted`.
AUDIO_GAP = 1.0
_GAP_CHECK = 0.2
PATTERN = "pattern"  # the camera spec of the moving test pattern (the default)


class _RemoteEnded(Exception):
    """The call ended remotely while an operation waited on the other party."""


@dataclass(eq=False)
class _Res:
    """The resources and plumbing of one call."""

    rest: RestClient | None = None
    ice: list[IceServer] = field(default_factory=list)
    anon: AnonymousSignaling | None = None
    peer: Peer | None = None
    source: Any = None
    video: Any = None
    sink: Any = None
    sink_track: Any = None
    video_sink: Any = None
    video_track: Any = None
    window: Any = None  # the remote video's window (a viewer process), when shown
    window_noticed: bool = False
    media_watched: Any = None  # the peer connection the media watchdog is waiting on
    detector: Any = None
    last_audio: float = 0.0  # monotonic time of the last remote audio block (0: none yet)
    audio_gap: bool = False  # media:sourceMuted was reported and no audio came since
    gap_watch: asyncio.Task[None] | None = None
    update_answer: asyncio.Future[str] | None = None
    queue: asyncio.Queue[frames.Notification] = field(default_factory=asyncio.Queue)
    worker: asyncio.Task[None] | None = None
    feedback: asyncio.Task[None] | None = None  # an incoming call's ringing step


class EngineCore:
    """State, events, signaling and media plumbing shared by every call operation.

    The operations live in mixins (outgoing, incoming, renegotiation, controls) that
    `softphone.engine.engine.Engine` combines; see that class for the public API.

    Calls for one user (or anonymous calls), with events after the calling SDK.

    `audio_in` / `audio_out` are media specs (`"tone"`, `"silence"`, `"wav:PATH"`, `"device"`,
    `"null"`, ...) opened per call; an unavailable device gives a `media:error` event and
    silence / the null sink instead, and the call goes on. `camera` is the video source spec
    (`"pattern"`, `"default"`, `"/dev/video0"`). All three can be switched mid-call
    (`set_audio_input` & co., `softphone.engine.devices`).
    """

    def __init__(
        self,
        *,
        audio_in: str = "tone",
        audio_out: str = "null",
        camera: str = PATTERN,
        media: MediaKit | None = None,
        ringing_feedback: bool = True,
        update_timeout: float = 10.0,
        glare_retries: int = 5,
        inband_dtmf: bool = True,
        anonymous_ice_servers: list[IceServer] | None = None,
        show_video: bool = False,
        media_timeout: float = 20.0,
    ) -> None:
        self.audio_in = audio_in
        self.audio_out = audio_out
        self.camera = camera
        self._kit = media
        self._ringing_feedback = ringing_feedback
        self._update_timeout = update_timeout
        self._glare_retries = glare_retries
        self._inband_dtmf = inband_dtmf
        self._anonymous_ice = list(anonymous_ice_servers or [])
        self._show_video = show_video
        self._media_timeout = media_timeout
        self._listeners: list[EngineCallback] = []
        self._pcm_listeners: list[PcmListener] = []
        self._frame_listeners: list[FrameListener] = []
        self._calls: dict[str, CallRecord] = {}
        self._res: dict[str, _Res] = {}
        self._by_server: dict[str, CallRecord] = {}
        self._orphans: dict[str, list[frames.Notification]] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._client: SignalingClient | None = None
        self._server_url: str | None = None
        self.username: str | None = None

    # -- events ------------------------------------------------------------------------------

    def subscribe(self, callback: EngineCallback) -> Callable[[], None]:
        """Call `callback(event)` for every event, on the engine's loop; returns an
        unsubscribe function. Callbacks must be quick and must not raise."""
        self._listeners.append(callback)
        return lambda: self._listeners.remove(callback) if callback in self._listeners else None

    def add_pcm_listener(self, callback: PcmListener) -> Callable[[], None]:
        """Call `callback(call_id, pcm)` with every block of remote audio received (mono,
        48 kHz, int16), on the engine's loop."""
        self._pcm_listeners.append(callback)
        return lambda: (
            self._pcm_listeners.remove(callback) if callback in self._pcm_listeners else None
        )

    def add_video_listener(self, callback: FrameListener) -> Callable[[], None]:
        """Call `callback(call_id, frame)` with every remote video frame (`av.VideoFrame`), on
        the engine's loop; keep it quick (hand frames to a viewer process, drop if busy)."""
        self._frame_listeners.append(callback)
        return lambda: (
            self._frame_listeners.remove(callback) if callback in self._frame_listeners else None
        )

    def _emit(self, event: EngineEvent) -> None:
        for callback in list(self._listeners):
            try:
                callback(event)
            except Exception:
                log.exception("event callback failed on %s", event.name)

    @property
    def kit(self) -> MediaKit:
        if self._kit is None:
            self._kit = default_kit()
        return self._kit

    # -- implemented by the operation mixins (engine.py combines them) ------------------------

    async def end(self, call_id: str) -> None:
        raise NotImplementedError

    def _incoming(self, frame: frames.CallIncoming) -> None:
        raise NotImplementedError

    async def _answered(self, rec: CallRecord, res: _Res, sdp: str) -> None:
        raise NotImplementedError

    async def _remote_update(self, rec: CallRecord, res: _Res, sdp: str) -> None:
        raise NotImplementedError

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(
        self,
        server_url: str,
        username: str,
        password_provider: PasswordProvider,
        *,
        wait: bool = True,
        timeout: float = 10.0,
        **client_options: Any,
    ) -> None:
        """Log in and subscribe (`SignalingClient`); with `wait`, until the channel is up
        (raises what stopped it: `AuthError`, `ServerError`, `Disconnected`, TimeoutError)."""
        if self._client is not None:
            raise EngineError(errors.INVALID_STATE, "engine already started")
        self._server_url = server_url
        self.username = username
        client = SignalingClient(
            server_url,
            username,
            password_provider,
            on_event=self._on_client_event,
            **client_options,
        )
        self._client = client
        await client.start()
        if wait:
            try:
                await client.wait_connected(timeout)
            except BaseException:
                self._client = None
                await client.stop()
                raise

    async def stop(self, timeout: float = 3.0) -> None:
        """End every live call (bounded in time), then leave the server."""
        for rec in list(self._calls.values()):
            if rec.direction == "incoming" and rec.state in UNANSWERED:
                # Only ringing here: leave it to the user's other devices (or the timeout).
                await self._finish(rec, S.ENDED, "ignored", "engine stopped")
            elif not rec.terminal:
                try:
                    async with asyncio.timeout(timeout):
                        await self.end(rec.id)
                except (EngineError, TimeoutError) as exc:
                    log.info("stop: could not end call %s cleanly: %s", rec.id, exc)
                    await self._finish(rec, S.ENDED, "stopped", "engine stopped")
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        client, self._client = self._client, None
        if client is not None:
            await client.stop()

    def _spawn(self, coro: Awaitable[Any], name: str) -> asyncio.Task[Any]:
        task: asyncio.Task[Any] = asyncio.ensure_future(coro)
        task.set_name(name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    # -- queries -----------------------------------------------------------------------------

    def get(self, call_id: str) -> Call:
        return self._record(call_id).snapshot()

    def get_all(self) -> list[Call]:
        return [rec.snapshot() for rec in self._calls.values()]

    def _record(self, call_id: str) -> CallRecord:
        rec = self._calls.get(call_id)
        if rec is None:
            raise EngineError(errors.INVALID_PARAM, f"no call {call_id!r}")
        return rec

    def _require(
        self, call_id: str, allowed: frozenset[CallState] | set[CallState], operation: str
    ) -> CallRecord:
        rec = self._record(call_id)
        self._check(rec, allowed, operation)
        return rec

    @staticmethod
    def _check(rec: CallRecord, allowed: frozenset[CallState] | set[CallState], op: str) -> None:
        if rec.state not in allowed:
            raise EngineError(
                errors.INVALID_STATE, f"cannot {op} call {rec.id} in state {rec.state.value!r}"
            )

    # -- records -----------------------------------------------------------------------------

    def _register(self, rec: CallRecord, res: _Res) -> None:
        self._calls[rec.id] = rec
        self._res[rec.id] = res
        res.worker = self._spawn(self._work(rec, res), f"call {rec.id}")
        if rec.server_id is not None:
            self._bind(rec)

    def _bind(self, rec: CallRecord) -> None:
        assert rec.server_id is not None
        self._by_server[rec.server_id] = rec
        for frame in self._orphans.pop(rec.server_id, []):
            self._deliver(rec, frame)

    def _transition(
        self,
        rec: CallRecord,
        state: CallState,
        reason: str,
        *,
        status_code: int | None = None,
        error: ErrorInfo | None = None,
    ) -> None:
        check_transition(rec.state, state)
        previous = rec.previous()
        rec.state = state
        self._emit(CallStateChange(rec.id, previous, Transition(reason, status_code), state, error))
        if state == S.CONNECTED:
            self._watch_media(rec)

    def _watch_media(self, rec: CallRecord) -> None:
        """Both descriptions are applied: the media connection must come up in time. aiortc
        never reports a failure when there is no candidate pair at all (it does not even
        start ICE), and a call would sit Connected in silence for ever."""
        res = self._res.get(rec.id)
        peer = res.peer if res is not None else None
        if res is None or peer is None or res.media_watched is peer:
            return
        res.media_watched = peer
        self._spawn(self._media_watchdog(rec, res, peer), f"media watchdog {rec.id}")

    async def _media_watchdog(self, rec: CallRecord, res: _Res, peer: Peer) -> None:
        deadline = time.monotonic() + self._media_timeout
        while time.monotonic() < deadline:
            if rec.terminal or res.peer is not peer or peer.closed:
                return
            if peer.ice_state in ("connected", "completed"):
                return
            await asyncio.sleep(0.2)
        async with rec.lock:
            if rec.terminal or res.peer is not peer or peer.ice_state in ("connected", "completed"):
                return
            seconds = f"{self._media_timeout:g}"
            await self._fail(
                rec,
                EngineError(
                    errors.GENERIC,
                    f"no media connection after {seconds} s (ICE found no working path)",
                ),
            )

    # -- signaling events --------------------------------------------------------------------

    def _on_client_event(self, event: client_events.Event) -> None:
        if isinstance(event, client_events.Notification):
            self._route(event.frame)
        elif isinstance(event, client_events.Resynced):
            self._resync(event.calls)
        else:
            self._emit(event)
            if (
                isinstance(event, client_events.SubscriptionChange)
                and event.state == "unsubscribed"
                and event.reason is not None
            ):
                self._signaling_lost(f"subscription ended: {event.reason}")

    def _signaling_lost(self, why: str) -> None:
        """The device lost its subscription for good: its calls cannot go on (the server
        ends them too); end them here with an error."""
        for rec in list(self._calls.values()):
            if not rec.terminal and not rec.anonymous:
                self._spawn(self._lost(rec, why), f"lost {rec.id}")

    async def _lost(self, rec: CallRecord, why: str) -> None:
        async with rec.lock:
            if rec.terminal:
                return
            info = ErrorInfo(errors.GENERIC, why)
            self._emit(CallError(rec.id, info))
            await self._finish(rec, S.ENDED, "connection_lost", why, info)

    def _on_anonymous_event(self, event: client_events.Event) -> None:
        if isinstance(event, client_events.Notification):
            self._route(event.frame)

    def _route(self, frame: frames.Notification) -> None:
        if isinstance(frame, frames.CallIncoming):
            self._incoming(frame)
            return
        if isinstance(frame, frames.SubscriptionGone):
            return
        rec = self._by_server.get(frame.call_id)
        if rec is None:
            # A notification may overtake the response to our own POST /v1/calls.
            if len(self._orphans) < MAX_ORPHANS:
                self._orphans.setdefault(frame.call_id, []).append(frame)
            return
        self._deliver(rec, frame)

    def _deliver(self, rec: CallRecord, frame: frames.Notification) -> None:
        res = self._res[rec.id]
        if isinstance(frame, frames.CallUpdateAnswer):
            if res.update_answer is not None and not res.update_answer.done():
                res.update_answer.set_result(frame.sdp)
            return
        if isinstance(frame, frames.CallDtmf):
            self._emit(CallDtmf(rec.id, frame.digits, "signaled"))
            return
        ending = isinstance(frame, frames.CallEnded | frames.CallCancelled | frames.CallRejected)
        if ending and res.update_answer is not None and not res.update_answer.done():
            res.update_answer.set_exception(_RemoteEnded())
        res.queue.put_nowait(frame)

    def _resync(self, calls: list[CallInfo]) -> None:
        """After a resume failed: calls the server no longer knows as live have ended."""
        live = {info.id for info in calls}
        for rec in list(self._calls.values()):
            gone = rec.server_id and rec.server_id not in live
            if gone and not rec.terminal and not rec.anonymous:
                assert rec.server_id is not None
                ended = frames.CallEnded(call_id=rec.server_id, reason="connection_lost")
                self._deliver(rec, ended)

    async def _work(self, rec: CallRecord, res: _Res) -> None:
        while not rec.terminal:
            frame = await res.queue.get()
            async with rec.lock:
                if rec.terminal:
                    return
                try:
                    await self._handle(rec, res, frame)
                except Exception as exc:
                    log.exception("call %s: handling %s failed", rec.id, type(frame).__name__)
                    await self._fail(rec, exc)

    async def _handle(self, rec: CallRecord, res: _Res, frame: frames.Notification) -> None:
        if isinstance(frame, frames.CallRinging):
            if rec.direction == "outgoing" and rec.state == S.INITIATED:
                self._transition(rec, S.RINGING, "ringing")
        elif isinstance(frame, frames.CallAnswered):
            if rec.direction == "outgoing" and rec.state in UNANSWERED:
                await self._answered(rec, res, frame.sdp)
        elif isinstance(frame, frames.CallRejected):
            await self._finish(rec, S.ENDED, "rejected", "rejected by the remote party")
        elif isinstance(frame, frames.CallCancelled):
            state = S.CANCELLED if rec.state in UNANSWERED else S.ENDED
            await self._finish(rec, state, frame.reason, f"cancelled: {frame.reason}")
        elif isinstance(frame, frames.CallEnded):
            await self._finish(rec, S.ENDED, frame.reason, f"ended: {frame.reason}")
        elif isinstance(frame, frames.CallUpdate) and rec.established:
            await self._remote_update(rec, res, frame.sdp)

    # -- media plumbing ----------------------------------------------------------------------

    def _open_source(self, rec: CallRecord) -> Any:
        """The call's outgoing audio: switchable mid-call (`set_audio_input`)."""
        kit = self.kit
        try:
            return SwitchableSource(kit.open_source(self.audio_in))
        except kit.unavailable as exc:
            self._emit(MediaError(ErrorInfo(errors.MEDIA_UNAVAILABLE, str(exc)), rec.id))
            return SwitchableSource(kit.silence())

    def _open_sink(self, rec: CallRecord) -> Any:
        kit = self.kit
        try:
            return kit.open_sink(self.audio_out)
        except kit.unavailable as exc:
            self._emit(MediaError(ErrorInfo(errors.MEDIA_UNAVAILABLE, str(exc)), rec.id))
            return kit.null_sink()

    def _open_video(self, size: tuple[int, int], fps: int = 15) -> Any:
        """The call's outgoing video from `camera` (switchable mid-call: `set_camera`); a
        camera that cannot be opened gives `media:error` and the test pattern."""
        try:
            source = self._open_camera(self.camera, size, fps)
        except self.kit.unavailable as exc:
            self._emit(MediaError(ErrorInfo(errors.MEDIA_UNAVAILABLE, str(exc))))
            source = self._open_camera(PATTERN, size, fps)
        return SwitchableVideo(source, size, fps)

    def _open_camera(self, spec: str, size: tuple[int, int], fps: int) -> Any:
        kit = self.kit
        if spec != PATTERN and kit.open_video is not None:
            return kit.open_video(spec, size[0], size[1], fps)
        if kit.video_source is None:
            raise EngineError(errors.NOT_SUPPORTED, "no video source available")
        return kit.video_source(size[0], size[1], fps)

    def _new_peer(self, rec: CallRecord, res: _Res) -> Peer:
        peer: Peer

        def changed(previous: str, state: str) -> None:
            if res.peer is not peer:
                return  # an old peer connection after restart_media
            rec.media_state = state
            self._emit(CallMediaConnectionChange(rec.id, previous, state))
            if state == "failed" and not rec.terminal:
                self._spawn(self._media_failed(rec), f"media failed {rec.id}")

        peer = Peer(res.ice, on_connection_state=changed)
        return peer

    async def _media_failed(self, rec: CallRecord) -> None:
        async with rec.lock:
            if not rec.terminal:
                await self._fail(rec, EngineError(errors.GENERIC, "media connection failed (ICE)"))

    def _apply_mute(self, rec: CallRecord, res: _Res) -> None:
        silent = rec.muted or rec.local_hold
        for source in (res.source, res.video):
            if source is not None:
                source.muted = silent

    def _on_pcm(self, rec: CallRecord, res: _Res, pcm: np.ndarray[Any, Any]) -> None:
        res.last_audio = time.monotonic()
        if res.audio_gap:
            res.audio_gap = False
            self._emit(MediaSourceUnmuted(rec.id, _remote_audio_id(rec), False))
        for listener in list(self._pcm_listeners):
            try:
                listener(rec.id, pcm)
            except Exception:
                log.exception("pcm listener failed")
        # Listeners (recorders, the benchmarks' click detector) first: detection is slower.
        if res.detector is not None:
            try:
                digits = res.detector.feed(pcm)
            except Exception:
                log.exception("DTMF detection failed")
                digits = []
            for digit in digits:
                self._emit(CallDtmf(rec.id, digit, "inband"))

    def _on_frame(self, rec: CallRecord, res: _Res, frame: Any) -> None:
        for listener in list(self._frame_listeners):
            try:
                listener(rec.id, frame)
            except Exception:
                log.exception("video listener failed")
        window = res.window
        if window is not None:
            window.show(frame)  # never blocks: a frame the window is not ready for is dropped
            if window.notice and not res.window_noticed:
                res.window_noticed = True  # no display, no GUI: say it once; the call goes on
                self._emit(MediaError(ErrorInfo(errors.MEDIA_UNAVAILABLE, window.notice), rec.id))

    def _open_window(self, rec: CallRecord, res: _Res) -> None:
        if not self._show_video or self.kit.window is None or res.window is not None:
            return
        party = rec.to if rec.direction == "outgoing" else rec.from_
        res.window = self.kit.window(f"softphone: {party}")
        res.window.start()

    async def _close_window(self, res: _Res) -> None:
        window, res.window = res.window, None
        if window is not None:  # close() waits for the viewer process: not on this loop
            await _quietly(asyncio.get_running_loop().run_in_executor(None, window.close))

    async def _sync_tracks(self, rec: CallRecord, res: _Res) -> None:
        """Announce tracks that appeared or ended; keep the sink on the remote audio."""
        peer = res.peer
        assert peer is not None
        local = peer.local_tracks()
        remote = peer.remote_tracks()
        for track_id, kind in list(rec.local_tracks.items()):
            if track_id not in local:
                del rec.local_tracks[track_id]
                self._emit(CallTrackEnded(rec.id, track_id, _kind(kind), True))
        for track_id, kind in local.items():
            if track_id not in rec.local_tracks:
                rec.local_tracks[track_id] = kind
                self._emit(CallNewTrack(rec.id, track_id, _kind(kind), True))
        for track_id, kind in list(rec.remote_tracks.items()):
            if track_id not in remote:
                del rec.remote_tracks[track_id]
                self._emit(CallTrackEnded(rec.id, track_id, _kind(kind), False))
        for track_id, (kind, _track) in remote.items():
            if track_id not in rec.remote_tracks:
                rec.remote_tracks[track_id] = kind
                self._emit(CallNewTrack(rec.id, track_id, _kind(kind), False))
        audio = next((t for k, t in remote.values() if k == "audio"), None)
        if audio is not None and audio is not res.sink_track:
            old_sink, res.sink = res.sink, None  # no sink to switch while this one stops
            if old_sink is not None:
                await _quietly(old_sink.stop())
            sink = self._open_sink(rec)
            if res.detector is None and self._inband_dtmf and self.kit.dtmf_detector is not None:
                res.detector = self.kit.dtmf_detector()
            sink.on_pcm = lambda pcm: self._on_pcm(rec, res, pcm)
            sink.start(audio)
            res.sink, res.sink_track = sink, audio
            res.last_audio = 0.0  # a gap is only reported once this track has delivered
            if res.gap_watch is None:
                res.gap_watch = self._spawn(self._watch_audio(rec, res), f"audio gaps {rec.id}")
        video = next((t for k, t in remote.values() if k == "video"), None)
        if video is not res.video_track and self.kit.video_sink is not None:
            if res.video_sink is not None:
                await _quietly(res.video_sink.stop())
                res.video_sink = None
            if video is not None:
                viewer = self.kit.video_sink()
                viewer.on_frame = lambda frame: self._on_frame(rec, res, frame)
                viewer.start(video)
                res.video_sink = viewer
                self._open_window(rec, res)
            else:
                await self._close_window(res)
            res.video_track = video

    async def _watch_audio(self, rec: CallRecord, res: _Res) -> None:
        """Report remote audio that stops arriving (debounced by AUDIO_GAP) while the call is
        connected and not held; `_on_pcm` reports it back."""
        while not rec.terminal:
            await asyncio.sleep(_GAP_CHECK)
            if rec.state != S.CONNECTED or rec.local_hold or rec.remote_hold:
                continue
            if res.audio_gap or not res.last_audio:
                continue
            if time.monotonic() - res.last_audio > AUDIO_GAP:
                res.audio_gap = True
                self._emit(MediaSourceMuted(rec.id, _remote_audio_id(rec), False))

    def _after_negotiation(self, rec: CallRecord, res: _Res, reason: str) -> None:
        peer = res.peer
        assert peer is not None
        if res.last_audio:
            res.last_audio = time.monotonic()  # a fresh grace period after (un)hold or restart
        previous = rec.previous()
        rec.local_hold, rec.remote_hold = peer.local_hold, peer.remote_hold
        self._apply_mute(rec, res)
        state = S.ON_HOLD if rec.local_hold or rec.remote_hold else S.CONNECTED
        if (state, rec.local_hold, rec.remote_hold) != (
            previous.state,
            previous.local_hold,
            previous.remote_hold,
        ):
            check_transition(previous.state, state)
            rec.state = state
            self._emit(CallStateChange(rec.id, previous, Transition(reason), state))

    # -- teardown ----------------------------------------------------------------------------

    async def _release(self, rec: CallRecord, res: _Res) -> None:
        """Close the peer connection, stop sources and sinks (never raises)."""
        waiter = res.update_answer
        if waiter is not None and not waiter.done():
            waiter.set_exception(_RemoteEnded())
        if res.peer is not None:
            await res.peer.close()
        for source in (res.source, res.video):
            if source is not None:
                with contextlib.suppress(Exception):
                    source.stop()
        sink, res.sink = res.sink, None
        if sink is not None:
            await _quietly(sink.stop())
        res.sink_track = None
        if res.video_sink is not None:
            await _quietly(res.video_sink.stop())
        res.video_sink = res.video_track = None
        await self._close_window(res)
        if res.anon is not None:
            await _quietly(res.anon.close())
        if res.gap_watch is not None and res.gap_watch is not asyncio.current_task():
            res.gap_watch.cancel()
        res.gap_watch = None

    async def _finish(
        self,
        rec: CallRecord,
        state: CallState,
        end_reason: str,
        reason_text: str,
        error: ErrorInfo | None = None,
    ) -> None:
        """Move to a terminal state and release everything (idempotent)."""
        if rec.terminal:
            return
        res = self._res[rec.id]
        previous = rec.previous()
        rec.state = state
        rec.end_time = time.time()
        rec.end_reason = end_reason
        for track_id, kind in list(rec.local_tracks.items()):
            self._emit(CallTrackEnded(rec.id, track_id, _kind(kind), True))
        for track_id, kind in list(rec.remote_tracks.items()):
            self._emit(CallTrackEnded(rec.id, track_id, _kind(kind), False))
        rec.local_tracks.clear()
        rec.remote_tracks.clear()
        await self._release(rec, res)
        if rec.server_id is not None:
            self._by_server.pop(rec.server_id, None)
        if res.worker is not None and res.worker is not asyncio.current_task():
            res.worker.cancel()
        self._emit(CallStateChange(rec.id, previous, Transition(reason_text), state, error))

    async def _fail(self, rec: CallRecord, exc: BaseException) -> None:
        """An error ends the call: tell the user and the server, release everything."""
        info = _error_info(exc)
        self._emit(CallError(rec.id, info))
        if rec.terminal:
            return
        res = self._res[rec.id]
        if rec.server_id is not None and res.rest is not None:
            try:
                async with asyncio.timeout(3.0):
                    await res.rest.end(rec.server_id)
            except (client_errors.ClientError, TimeoutError) as err:
                log.info("call %s: end after an error failed: %s", rec.id, err)
        await self._finish(rec, S.ENDED, "error", info.message, info)


def _remote_audio_id(rec: CallRecord) -> str:
    return next((t for t, kind in rec.remote_tracks.items() if kind == "audio"), "remote:audio")


def _incoming_only(rec: CallRecord, operation: str) -> None:
    if rec.direction != "incoming":
        raise EngineError(errors.INVALID_STATE, f"cannot {operation} an outgoing call")


def _kind(kind: str) -> Any:
    return "video" if kind == "video" else "audio"


def _new_id() -> str:
    return "c" + secrets.token_hex(8)


def _error_info(exc: BaseException) -> ErrorInfo:
    if isinstance(exc, EngineError):
        return exc.info
    if isinstance(exc, client_errors.ServerError):
        return ErrorInfo(errors.GENERIC, f"server: {exc.code}: {exc.message}")
    if isinstance(exc, client_errors.ClientError):
        return ErrorInfo(errors.GENERIC, f"signaling: {exc}")
    return ErrorInfo(errors.UNKNOWN, f"{type(exc).__name__}: {exc}")


async def _quietly(awaitable: Awaitable[Any]) -> None:
    try:
        await awaitable
    except Exception:
        log.exception("cleanup step failed")
