"""`Engine`: the registry of a user's calls and the router of the server's notifications.

Each call is a `CallSession` (softphone/engine/session.py), which owns everything about it.
The engine creates sessions (`make`, `make_anonymous`, an incoming `call.incoming`), finds them
by our id or the server's, hands each notification to its session, and passes every public
operation to the session it names. It also holds what all calls share: the signaling client,
the device settings (`MediaSettings`), the event subscribers, and the outbox of ends the server
has not heard yet (`EndOutbox`: a hang-up made during an outage is delivered once it is back).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import Callable, Coroutine
from typing import Any

import numpy as np

from softphone.client import AnonymousSignaling, ServerError, ServerUnreachable, SignalingClient
from softphone.client import events as client_events
from softphone.client.session import PasswordProvider
from softphone.engine.call import Call
from softphone.engine.context import CallContext, CallOptions
from softphone.engine.device_watch import DeviceWatch
from softphone.engine.devices import DeviceList, Devices
from softphone.engine.errors import EngineError, EngineErrorCode
from softphone.engine.events import (
    CallReceive,
    CallStart,
    EngineCallback,
    EngineEvent,
    MediaOffered,
)
from softphone.engine.media_kit import MediaKit
from softphone.engine.outbox import EndOutbox
from softphone.engine.ringer import Ringer
from softphone.engine.session import CallSession
from softphone.engine.signaling import CallSignaling
from softphone.engine.sources import PATTERN, AudioProcessing, MediaSettings
from softphone.protocol import frames
from softphone.protocol.errors import ErrorCode
from softphone.protocol.models import CallInfo, IceServer, TokenCredentials

log = logging.getLogger("softphone.engine")

Code = EngineErrorCode
PcmListener = Callable[[str, np.ndarray[Any, Any]], None]
FrameListener = Callable[[str, Any], None]
MAX_ORPHANS = 256
# The client options of start() that an anonymous call's own connection takes.
ANONYMOUS_CLIENT_OPTIONS = frozenset(
    {
        "backoff",
        "ping_interval",
        "missed_pongs",
        "timeout",
        "ca_file",
        "insecure_skip_tls_verify_for_development",
    }
)
# The others only configure a subscription: an anonymous call has none.
SUBSCRIPTION_CLIENT_OPTIONS = frozenset(
    {"services", "expires", "force_logout", "refresh_at", "refresh_jitter", "stop_timeout"}
)


class Engine:
    """Calls for one user (or anonymous calls), with events after the calling SDK.

    `audio_in` / `audio_out` are media specs (`"tone"`, `"silence"`, `"wav:PATH"`, `"device"`,
    `"null"`, ...) opened per call; an unavailable device gives a `media:error` event and
    silence / the null sink instead, and the call goes on. `camera` picks the video source
    (`"pattern"`, `"default"`, `"/dev/video0"`). `list_devices`, `set_audio_input`,
    `set_audio_output` and `set_camera` list and switch them, live calls included
    (`media:deviceChange`). `echo_cancellation` ("auto": microphones only, "on", "off"),
    `noise_suppression` and `auto_gain` say what audio processing calls get
    (`AudioProcessing`); `set_audio_processing` changes it, live calls included.
    `start_ringing` / `stop_ringing` play the ring tone (`ring_sound`: "tone" or "wav:PATH")
    on `ring_device` (an `audio_out` spec, "none" for no tone; None: the speaker's device),
    see `Ringer`. The other options are `CallOptions`.

    An outage of the server does not end calls: their media goes on, a hang-up ends the call
    here at once and reaches the server when it is back (`outbox`), and a re-offer (hold,
    video, media restart) waits `reoffer_wait` seconds for it, then fails leaving the call as
    it was.

    `watch_devices`: where a PulseAudio or PipeWire server runs, devices plugged in or out
    are `media:deviceListChange` events, and a call whose microphone or speaker went away
    moves to the default one (`softphone.engine.device_watch`); off for tests and bots.
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
        reoffer_wait: float = 10.0,
        glare_retries: int = 5,
        inband_dtmf: bool = True,
        anonymous_ice_servers: list[IceServer] | None = None,
        show_video: bool = False,
        watch_devices: bool = True,
        media_timeout: float = 20.0,
        media_dead_timeout: float = 10.0,
        auto_restart: bool = True,
        stall_after: float = 2.0,
        echo_cancellation: str = "auto",
        noise_suppression: bool = True,
        auto_gain: bool = True,
        ring_device: str | None = None,
        ring_sound: str = "tone",
    ) -> None:
        processing = AudioProcessing(
            echo_cancellation,  # type: ignore[arg-type]
            noise_suppression,
            auto_gain,
        )
        self._listeners: list[EngineCallback] = []
        self._pcm_listeners: list[PcmListener] = []
        self._frame_listeners: list[FrameListener] = []
        self.media = MediaSettings(
            self._emit,
            audio_in=audio_in,
            audio_out=audio_out,
            camera=camera,
            kit=media,
            processing=processing,
        )
        options = CallOptions(
            ringing_feedback=ringing_feedback,
            update_timeout=update_timeout,
            reoffer_wait=reoffer_wait,
            glare_retries=glare_retries,
            inband_dtmf=inband_dtmf,
            show_video=show_video,
            media_timeout=media_timeout,
            media_dead_timeout=media_dead_timeout,
            auto_restart=auto_restart,
            stall_after=stall_after,
        )
        self._ctx = CallContext(
            options=options,
            media=self.media,
            emit=self._emit,
            spawn=self._spawn,
            bind=self._bind,
            unbind=self._unbind,
            heard=self._heard,
            seen=self._seen,
        )
        self._devices = Devices(self.media, self._emit, self._live_sessions)
        self._device_watch = (
            DeviceWatch(self._devices, self.media, self._emit) if watch_devices else None
        )
        self._watch_devices()
        self.ringer = Ringer(self.media, self._emit, ring_device, ring_sound)
        self._anonymous_ice = list(anonymous_ice_servers or [])
        self._sessions: dict[str, CallSession] = {}
        self._by_server: dict[str, CallSession] = {}
        self._orphans: dict[str, list[frames.Notification]] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._client: SignalingClient | None = None
        self.outbox = EndOutbox(self._send_end)
        self._server_url: str | None = None
        self.username: str | None = None

    # -- the devices new calls use -----------------------------------------------------------

    @property
    def audio_in(self) -> str:
        return self.media.audio_in

    @property
    def audio_out(self) -> str:
        return self.media.audio_out

    @property
    def camera(self) -> str:
        return self.media.camera

    @property
    def ringing(self) -> bool:
        return self.ringer.ringing

    # -- events ------------------------------------------------------------------------------

    def subscribe(self, callback: EngineCallback) -> Callable[[], None]:
        """Call `callback(event)` for every event, on the engine's loop; returns an
        unsubscribe function. Callbacks must be quick and must not raise."""
        return _add(self._listeners, callback)

    def add_pcm_listener(self, callback: PcmListener) -> Callable[[], None]:
        """Call `callback(call_id, pcm)` with every block of remote audio received (mono,
        48 kHz, int16), on the engine's loop."""
        return _add(self._pcm_listeners, callback)

    def add_video_listener(self, callback: FrameListener) -> Callable[[], None]:
        """Call `callback(call_id, frame)` with every remote video frame (`av.VideoFrame`), on
        the engine's loop; keep it quick (hand frames to a viewer process, drop if busy)."""
        return _add(self._frame_listeners, callback)

    def _emit(self, event: EngineEvent) -> None:
        for callback in list(self._listeners):
            try:
                callback(event)
            except Exception:
                log.exception("event callback failed on %s", event.name)

    def _heard(self, call_id: str, pcm: np.ndarray[Any, Any]) -> None:
        for listener in list(self._pcm_listeners):
            try:
                listener(call_id, pcm)
            except Exception:
                log.exception("pcm listener failed")

    def _seen(self, call_id: str, frame: Any) -> None:
        for listener in list(self._frame_listeners):
            try:
                listener(call_id, frame)
            except Exception:
                log.exception("video listener failed")

    def _spawn(self, coro: Coroutine[Any, Any, Any], name: str) -> asyncio.Task[Any]:
        task: asyncio.Task[Any] = asyncio.ensure_future(coro)
        task.set_name(name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

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
            raise EngineError(Code.INVALID_STATE, "engine already started")
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
        self._watch_devices()
        self.outbox.start()
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
        if self._device_watch is not None:
            await self._device_watch.stop()
        await self.ringer.stop()
        for session in list(self._sessions.values()):
            await session.shutdown(timeout)
        await self.outbox.stop()
        if len(self.outbox):
            # One last try; what is still pending is lost with the engine (the server ends
            # those calls when this device's subscription is declared lost).
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await self.outbox.flush()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        client, self._client = self._client, None
        if client is not None:
            await client.stop()

    @property
    def client(self) -> SignalingClient | None:
        """The signaling client of the logged-in user (None before `start`)."""
        return self._client

    async def _send_end(self, server_id: str) -> None:
        client = self._client
        if client is None:
            raise ServerUnreachable("the engine is not started")
        await client.rest.end(server_id)

    def _user_signaling(self, client: SignalingClient) -> CallSignaling:
        return CallSignaling(
            client.rest, client.ice_servers, device=client, remember_end=self.outbox.add
        )

    def _signaling(self) -> SignalingClient:
        if self._client is None:
            raise EngineError(Code.INVALID_STATE, "engine not started")
        return self._client

    # -- the registry ------------------------------------------------------------------------

    def session(self, call_id: str) -> CallSession:
        """The session of a call (for embedders and tests that need its media or peer)."""
        session = self._sessions.get(call_id)
        if session is None:
            raise EngineError(Code.INVALID_PARAM, f"no call {call_id!r}")
        return session

    def get(self, call_id: str) -> Call:
        return self.session(call_id).snapshot()

    def get_all(self) -> list[Call]:
        return [session.snapshot() for session in self._sessions.values()]

    def _add(self, session: CallSession) -> None:
        self._sessions[session.id] = session
        if session.server_id is not None:
            self._bind(session.id, session.server_id)

    def _bind(self, call_id: str, server_id: str) -> None:
        """The server knows the call as `server_id`: route its notifications to the session
        (those that overtook the server's answer were kept, and go first)."""
        session = self._sessions[call_id]
        self._by_server[server_id] = session
        for frame in self._orphans.pop(server_id, []):
            session.deliver(frame)

    def _unbind(self, server_id: str) -> None:
        self._by_server.pop(server_id, None)

    def _live_sessions(self) -> list[CallSession]:
        return [s for s in self._sessions.values() if not s.terminal]

    # -- making calls ------------------------------------------------------------------------

    async def make(
        self,
        to: str,
        *,
        audio: bool = True,
        video: bool = False,
        video_size: tuple[int, int] = (640, 480),
        display_name: str | None = None,
    ) -> str:
        """Start a call to `to`; returns its id at once (`call:start`, Initiating). The call
        moves to Initiated when the server accepted it, Ringing, then Connected."""
        client = self._signaling()
        if not audio and not video:
            raise EngineError(Code.INVALID_PARAM, "a call needs audio or video")
        rest = client.rest
        session = CallSession(
            self._ctx,
            self._user_signaling(client),
            call_id=_new_id(),
            from_=client.username,
            to=to,
            direction="outgoing",
            media_offered=MediaOffered(audio, video),
        )

        async def offer_to(sdp: str) -> CallInfo:
            return await rest.make_call(
                to, sdp, audio=audio, video=video, display_name=display_name
            )

        self._add(session)
        self._emit(CallStart(session.id))
        self._spawn(session.start_outgoing(offer_to, video_size), f"make {session.id}")
        return session.id

    async def make_anonymous(
        self,
        to: str,
        credentials: TokenCredentials | None = None,
        *,
        from_: str | None = None,
        audio: bool = True,
        video: bool = False,
        video_size: tuple[int, int] = (640, 480),
        display_name: str | None = None,
        server_url: str | None = None,
        **client_options: Any,
    ) -> str:
        """An anonymous call (no login): regular mode (`credentials` None; `from_` defaults to
        "anonymous") or token mode (the tokens name both parties: `from_`, when given, must
        match the caller's token, and the call's `from_` becomes the caller the server read
        from it).

        The offer gathers its candidates with the ICE servers (TURN) the server gives for this
        call before it is made (`POST /v1/anonymous/ice-servers`); only a server too old for
        that lookup (404) leaves the offer to `anonymous_ice_servers`. Later offers (a media
        restart) use the ICE servers of the call's response. `client_options` are those of
        `start()`: the ones a call's own connection uses apply (`ANONYMOUS_CLIENT_OPTIONS`:
        back-off, pings, timeout, TLS such as `ca_file` for a private CA); subscription
        settings have nothing to apply to here."""
        url = server_url or self._server_url
        if url is None:
            raise EngineError(Code.INVALID_PARAM, "no server url (start() or server_url=)")
        unknown = set(client_options) - ANONYMOUS_CLIENT_OPTIONS - SUBSCRIPTION_CLIENT_OPTIONS
        if unknown:
            raise EngineError(Code.INVALID_PARAM, f"unknown client options: {sorted(unknown)}")
        try:
            anon = AnonymousSignaling(
                url,
                on_event=self._on_anonymous_event,
                **{k: v for k, v in client_options.items() if k in ANONYMOUS_CLIENT_OPTIONS},
            )
        except ValueError as exc:  # an unreadable CA file, or both TLS options
            raise EngineError(Code.INVALID_PARAM, str(exc)) from exc
        signaling = CallSignaling(anon.rest, list(self._anonymous_ice), anon)
        session = CallSession(
            self._ctx,
            signaling,
            call_id=_new_id(),
            from_=from_ or ("anonymous" if credentials is None else ""),
            to=to,
            direction="outgoing",
            media_offered=MediaOffered(audio, video),
            anonymous=True,
        )
        caller = from_ if credentials is not None else session.from_

        async def lookup() -> None:
            try:
                found = await anon.lookup_ice_servers(to=to, from_=caller, credentials=credentials)
            except ServerError as exc:
                if exc.code != ErrorCode.NOT_FOUND:
                    raise
                log.info(
                    "call %s: server has no anonymous ICE lookup; local ICE servers", session.id
                )
                return
            signaling.ice = list(found.ice_servers)

        async def offer_to(sdp: str) -> CallInfo:
            info = await anon.call(
                sdp=sdp,
                to=to,
                from_=caller,
                audio=audio,
                video=video,
                display_name=display_name,
                credentials=credentials,
            )
            signaling.ice = anon.ice_servers  # freshly minted, for later offers (restart_media)
            if credentials is not None:
                session.from_ = info.caller
            return info

        self._add(session)
        self._emit(CallStart(session.id))
        self._spawn(
            session.start_outgoing(offer_to, video_size, prepare=lookup), f"make {session.id}"
        )
        return session.id

    # -- operations on one call --------------------------------------------------------------

    async def answer(
        self,
        call_id: str,
        *,
        audio: bool = True,
        video: bool = False,
        video_size: tuple[int, int] = (640, 480),
    ) -> None:
        """Answer an incoming call (Initiated or Ringing) → Connected. Stops the ring tone
        first: the call's speaker may be the ring device."""
        await self.ringer.stop()
        await self.session(call_id).answer(audio=audio, video=video, video_size=video_size)

    async def reject(self, call_id: str) -> None:
        """Decline an incoming call; both sides end (reason `rejected`)."""
        await self.session(call_id).reject()

    async def ignore(self, call_id: str) -> None:
        """Drop an incoming call locally (it rings on elsewhere or times out)."""
        await self.session(call_id).ignore()

    async def end(self, call_id: str) -> None:
        """Hang up, cancel or reject, whatever the live state; → Ended."""
        await self.session(call_id).end()

    async def hold(self, call_id: str) -> None:
        await self.session(call_id).hold()

    async def unhold(self, call_id: str) -> None:
        await self.session(call_id).unhold()

    async def start_video(
        self, call_id: str, video_size: tuple[int, int] = (640, 480), fps: int = 15
    ) -> None:
        await self.session(call_id).start_video(video_size, fps)

    async def stop_video(self, call_id: str) -> None:
        await self.session(call_id).stop_video()

    async def show_video(self, call_id: str) -> None:
        """Show the call's remote video in a new window when none shows it (the user closed
        it); EngineError when the call has none, or there are no windows here."""
        session = self.session(call_id)
        if session.terminal:
            raise EngineError(Code.INVALID_STATE, f"the call {call_id!r} has ended")
        await session.media.show_window()

    async def restart_media(self, call_id: str) -> None:
        await self.session(call_id).restart_media()

    async def mute(self, call_id: str) -> None:
        """Send silence instead of our audio and video (no signaling)."""
        self.session(call_id).set_muted(True)

    async def unmute(self, call_id: str) -> None:
        self.session(call_id).set_muted(False)

    async def send_dtmf(
        self,
        call_id: str,
        digits: str,
        *,
        duration_ms: int = 100,
        gap_ms: int = 70,
        inband: bool = True,
        signaled: bool = True,
    ) -> None:
        """Send DTMF digits in-band (tones in our audio) and/or signaled (`call.dtmf`)."""
        await self.session(call_id).send_dtmf(
            digits, duration_ms=duration_ms, gap_ms=gap_ms, inband=inband, signaled=signaled
        )

    async def get_stats(self, call_id: str) -> dict[str, Any]:
        """A summary of the call's RTP statistics; also emitted as `call:statsReceived`."""
        return await self.session(call_id).get_stats()

    # -- devices -----------------------------------------------------------------------------

    async def list_devices(self, *, rescan: bool = False) -> DeviceList:
        return self._devices.list_devices(rescan=rescan)

    @property
    def watching_devices(self) -> bool:
        """Devices plugged in or out are reported now (`watch_devices`, a sound server)."""
        return self._device_watch is not None and self._device_watch.watching

    def _watch_devices(self) -> None:
        """Start the device watch once a loop runs (the engine may be built before one)."""
        if self._device_watch is not None:
            with contextlib.suppress(RuntimeError):  # no running loop yet: start() does it
                asyncio.get_running_loop()
                self._device_watch.start()

    async def set_audio_input(self, spec: str) -> None:
        await self._devices.set_audio_input(spec)

    async def set_audio_output(self, spec: str) -> None:
        await self._devices.set_audio_output(spec)

    async def set_camera(self, spec: str) -> None:
        await self._devices.set_camera(spec)

    async def start_ringing(self) -> None:
        """Play the ring tone on the ring device until `stop_ringing` (or an answer); again:
        no-op. A ring device that cannot be used gives `media:error` (device "ring")."""
        await self.ringer.start()

    async def stop_ringing(self) -> None:
        await self.ringer.stop()

    async def set_audio_processing(
        self,
        echo_cancellation: str | None = None,
        noise_suppression: bool | None = None,
        auto_gain: bool | None = None,
    ) -> AudioProcessing:
        """Echo cancellation ("auto", "on", "off"), noise suppression, gain control (None:
        unchanged) for new calls and at once for live ones; `list_devices()` and each call's
        `get_stats()["audio"]["processing"]` say what runs."""
        return self._devices.set_audio_processing(echo_cancellation, noise_suppression, auto_gain)

    # -- routing the server's notifications --------------------------------------------------

    def _on_client_event(self, event: client_events.Event) -> None:
        match event:
            case client_events.Notification(frame=frame):
                self._route(frame)
            case client_events.Resynced(calls=calls):
                self._resync(calls)
            case client_events.WsChange(state="connected"):
                self._emit(event)
                self.outbox.wake()  # the server is back: deliver the ends it missed
            case client_events.SubscriptionChange(state="unsubscribed", reason=reason) if (
                reason is not None
            ):
                self._emit(event)
                self._signaling_lost(f"subscription ended: {reason}")
            case _:
                self._emit(event)

    def _on_anonymous_event(self, event: client_events.Event) -> None:
        if isinstance(event, client_events.Notification):
            self._route(event.frame)

    def _route(self, frame: frames.Notification) -> None:
        if isinstance(frame, frames.CallIncoming):
            self._incoming(frame)
            return
        if isinstance(frame, frames.SubscriptionGone):
            return
        session = self._by_server.get(frame.call_id)
        if session is None:
            # A notification may overtake the response to our own POST /v1/calls.
            if len(self._orphans) < MAX_ORPHANS:
                self._orphans.setdefault(frame.call_id, []).append(frame)
            return
        session.deliver(frame)

    def _incoming(self, frame: frames.CallIncoming) -> None:
        info = frame.call
        client = self._client
        if info.id in self._sessions or client is None:
            return
        session = CallSession(
            self._ctx,
            self._user_signaling(client),
            call_id=info.id,
            from_=info.caller,
            to=info.callee,
            direction="incoming",
            media_offered=MediaOffered(info.media.audio, info.media.video),
            anonymous=info.anonymous,
            server_id=info.id,
            remote_offer=frame.sdp,
        )
        self._add(session)
        self._emit(CallReceive(session.id, session.media_offered))
        session.start_incoming()

    def _resync(self, calls: list[CallInfo]) -> None:
        """After a resume failed, reconcile both ways: calls the server no longer lists as
        live have ended (here too), and calls it lists that we ended here are ended there."""
        live = {info.id for info in calls}
        for session in list(self._sessions.values()):
            sid = session.server_id
            if not sid or session.anonymous:
                continue
            if sid not in live and not session.terminal:
                lost = frames.EndReason.CONNECTION_LOST
                session.deliver(frames.CallEnded(call_id=sid, reason=lost))
            elif sid in live and session.terminal and session.ended_here:
                self.outbox.add(sid, session.end_reason or "hangup")

    def _signaling_lost(self, why: str) -> None:
        """The device lost its subscription for good: its calls cannot go on (the server
        ends them too); end them here with an error."""
        for session in list(self._sessions.values()):
            if not session.terminal and not session.anonymous:
                self._spawn(session.lost(why), f"lost {session.id}")


def _add(listeners: list[Any], callback: Any) -> Callable[[], None]:
    listeners.append(callback)
    return lambda: listeners.remove(callback) if callback in listeners else None


def _new_id() -> str:
    return "c" + secrets.token_hex(8)


__all__ = ["Engine"]
