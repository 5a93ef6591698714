"""`SoftphoneApp`: the terminal softphone.

Textual owns the main thread; the engine runs on its own thread (`EngineThread`). Engine events
come in as messages posted by `Bridge` on the engine thread; every engine operation runs in a
thread worker so the UI never blocks. The engine, media and the embedded server are imported
only after the first paint.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterable
from functools import partial
from typing import TYPE_CHECKING, Any

from textual import on, work
from textual.app import App, ComposeResult, SystemCommand
from textual.binding import Binding
from textual.css.query import NoMatches
from textual.screen import Screen
from textual.widgets import Footer, Input
from textual.worker import Worker, WorkerState

from softphone.tui.bridge import Bridge
from softphone.tui.devices_screen import DevicePicked, DevicesScreen
from softphone.tui.messages import (
    DevicesListed,
    EngineEventMessage,
    EngineReady,
    Note,
    StatsUpdated,
)
from softphone.tui.options import TuiOptions
from softphone.tui.screens import QuitScreen
from softphone.tui.widgets.banner import Banner
from softphone.tui.widgets.calls import CallsPane, CallView
from softphone.tui.widgets.dial import DialPane
from softphone.tui.widgets.incoming import IncomingCall, IncomingPane
from softphone.tui.widgets.log import MessageLog
from softphone.tui.widgets.status import StatusLine, describe_stats

if TYPE_CHECKING:
    from softphone.engine import EngineThread
    from softphone.tui.embedded import Embedded

DTMF_KEYS = {str(d): str(d) for d in range(10)} | {"asterisk": "*", "number_sign": "#"}
ENDED_ROW_SECONDS = 4.0

_BINDINGS: list[Binding | tuple[str, str] | tuple[str, str, str]] = [
    # Textual's own ctrl+q is hidden from the footer; a phone should always show how to quit.
    Binding("ctrl+q", "quit", "Quit", priority=True),
    Binding("a", "answer('audio')", "Answer"),
    Binding("A", "answer('video')", "Answer video"),
    Binding("r", "reject", "Reject"),
    Binding("e", "end", "End"),
    Binding("h", "hold", "Hold"),
    Binding("m", "mute", "Mute"),
    Binding("v", "video", "Video"),
    Binding("s", "switch_call", "Switch"),
    Binding("d", "focus_dial", "Dial"),
    Binding("escape", "focus_calls", "Calls", show=False),
    *(
        Binding(key, f"dtmf('{digit}')", "DTMF", show=key == "1", key_display="0-9*#")
        for key, digit in DTMF_KEYS.items()
    ),
]


def _synthetic(*specs: str) -> bool:
    """True when no spec needs a sound card (tones, silence, WAV files, the null sink)."""
    return all(
        s.split(":")[0] in ("tone", "silence", "null") or s.lower().endswith(".wav") for s in specs
    )


class SoftphoneApp(App[None]):
    TITLE = "softphone"
    CSS = """
    Screen { layout: vertical; }
    """
    BINDINGS = _BINDINGS  # ctrl+q quit and ctrl+p the command palette come from App

    def __init__(self, options: TuiOptions | None = None) -> None:
        super().__init__()
        self.options = options or TuiOptions()
        self.engine: EngineThread | None = None
        self.embedded: Embedded | None = None
        self.views: dict[str, CallView] = {}
        self._server_url = ""
        self._start_failed: set[str] = set()
        self._last_bytes: dict[str, tuple[float, int, float | None]] = {}
        self._quitting = False

    # -- layout ------------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        yield StatusLine()
        yield Banner()
        yield DialPane(self.options.video)
        yield IncomingPane()
        yield CallsPane()
        yield MessageLog()
        yield Footer()

    @property
    def log_pane(self) -> MessageLog:
        return self.query_one(MessageLog)

    @property
    def calls_pane(self) -> CallsPane:
        return self.query_one(CallsPane)

    @property
    def incoming_pane(self) -> IncomingPane:
        return self.query_one(IncomingPane)

    @property
    def status(self) -> StatusLine:
        return self.query_one(StatusLine)

    @property
    def banner(self) -> Banner:
        return self.query_one(Banner)

    @property
    def anonymous(self) -> bool:
        return self.options.anonymous

    def on_mount(self) -> None:
        self.query_one("#target", Input).focus()
        if self.anonymous:
            self.incoming_pane.turn_off(
                "Anonymous mode: you are not logged in, so nobody can call you; "
                "calls you place are anonymous."
            )
        self.say("Starting…")
        # First paint now; the engine, media and server imports come after it.
        self.call_after_refresh(self._start_engine)
        self.set_interval(1.0, self._tick)

    def say(self, text: str, error: bool = False) -> None:
        self.log_pane.say(text, error)

    # -- start-up and shut-down ----------------------------------------------------------------

    @work(thread=True, group="startup", exit_on_error=False, description="start")
    def _start_engine(self) -> None:
        options = self.options
        url, user, password = options.server_url, options.user, options.password
        embedded = None
        if not url and options.anonymous:
            from softphone.tui.embedded import start_embedded

            self.post_message(Note("No server configured: starting the embedded server…"))
            embedded = start_embedded("me", options.embedded_data_dir)
            url = embedded.url
            self.post_message(Note(f"Embedded server on {url}; 'echo' takes anonymous calls."))
        if options.anonymous:
            self._start_anonymous(url, embedded)
            return
        if not url:
            from softphone.tui.embedded import start_embedded

            self.post_message(Note("No server configured: starting the embedded server…"))
            embedded = start_embedded(user or "me", options.embedded_data_dir)
            url, user, password = embedded.url, embedded.user, embedded.password
            self.post_message(
                Note(f"Embedded server on {url}: you are {user!r}; the echo bot answers 'echo'.")
            )
        if not user:
            raise ValueError("no user name: give --user or set [client] user")
        from softphone.engine import EngineThread

        engine_options: dict[str, Any] = {
            "audio_in": options.audio_in,
            "audio_out": options.audio_out,
            "show_video": options.show_video,
        }
        engine_options.update(options.engine_options)
        engine = EngineThread(**engine_options)
        try:
            engine.subscribe(Bridge(self, engine.engine))
            secret = password or ""
            engine.start(url, user, lambda: secret, **options.client_options)
        except BaseException:
            engine.close()
            if embedded is not None:
                embedded.stop()
            raise
        self.post_message(EngineReady(engine, user, url, embedded))

    def _start_anonymous(self, url: str, embedded: Embedded | None) -> None:
        """No login: an engine for anonymous calls only, then the call asked for at start."""
        from softphone.engine import EngineThread

        engine_options: dict[str, Any] = {
            "audio_in": self.options.audio_in,
            "audio_out": self.options.audio_out,
            "show_video": self.options.show_video,
        }
        engine_options.update(self.options.engine_options)
        engine = EngineThread(**engine_options)
        try:
            engine.subscribe(Bridge(self, engine.engine))
        except BaseException:
            engine.close()
            if embedded is not None:
                embedded.stop()
            raise
        who = self.options.anonymous_from or "anonymous"
        self.post_message(EngineReady(engine, who, url, embedded, anonymous=True))
        if self.options.anonymous_to or self.options.token_file or self.options.token_url:
            try:
                self._place_anonymous(engine, url, self.options.anonymous_to, self.options.video)
            except Exception as exc:  # refused, unreachable...: say so, stay up for another try
                text = getattr(exc, "message", None) or str(exc) or type(exc).__name__
                self.post_message(Note(f"Could not place the anonymous call: {text}", True))

    def _place_anonymous(self, engine: EngineThread, url: str, to: str, video: bool) -> None:
        """Runs on a worker thread. Token mode reads or fetches the tokens first."""
        from softphone.protocol.models import TokenCredentials
        from softphone.tui.tokens import TokenSourceError, fetch_tokens, read_token_file

        options = self.options
        credentials = None
        caller = options.anonymous_from or None
        if options.token_file is not None or options.token_url:
            try:
                tokens = (
                    read_token_file(options.token_file)
                    if options.token_file is not None
                    else fetch_tokens(options.token_url)
                )
            except TokenSourceError as exc:
                self.post_message(Note(f"Cannot place the anonymous call: {exc}", error=True))
                return
            to = to or tokens.callee
            caller = None  # the tokens name the caller; the server reads it from them
            credentials = TokenCredentials(
                tokens.realm, tokens.account_token, tokens.from_token, tokens.to_token
            )
            self.post_message(Note(f"Token-based anonymous call to {to} (realm {tokens.realm})."))
        if not to:
            self.post_message(Note("No callee: give --to NAME", error=True))
            return
        engine.make_anonymous(
            to, credentials, from_=caller, audio=True, video=video, server_url=url
        )

    @on(EngineReady)
    def _engine_ready(self, message: EngineReady) -> None:
        if self._quitting:  # quit while starting
            self._hang_up_and_close(message.engine, message.embedded)
            return
        self.engine, self.embedded = message.engine, message.embedded
        self._server_url = message.server_url
        where = "embedded server" if message.embedded else message.server_url
        if message.anonymous:
            self.status.set_identity(f"anonymous ({message.user}) @ {where}")
            self.status.set_connection("anonymous")
            self.say(f"Anonymous mode on {message.server_url}: not logged in.")
        else:
            self.status.set_identity(f"{message.user} @ {where}")
            self.status.set_connection("connected")
            self.say(f"Logged in as {message.user} on {message.server_url}.")
        if message.embedded is not None:
            self.say("Dial echo to test your audio and video.")
        self._list_devices(pick=False)
        self.refresh_bindings()

    @work(thread=True, group="devices", exclusive=True, exit_on_error=False)
    def _list_devices(self, pick: bool) -> None:
        engine = self.engine
        if engine is not None:
            self.post_message(DevicesListed(engine.list_devices(), pick))

    @on(DevicesListed)
    def _devices_listed(self, message: DevicesListed) -> None:
        with contextlib.suppress(NoMatches):  # a late reply while the app is torn down
            self._show_devices(message)

    def _show_devices(self, message: DevicesListed) -> None:
        devices = message.devices
        self.status.set_devices(
            devices.audio_in_label or devices.audio_in, devices.audio_out_label or devices.audio_out
        )
        if message.pick:
            self.push_screen(DevicesScreen(devices))
        elif devices.problem and not _synthetic(devices.audio_in, devices.audio_out):
            self.say(f"{devices.problem} Calls go on without sound; see `softphone devices`.")

    @on(DevicePicked)
    def _device_picked(self, message: DevicePicked) -> None:
        kind, spec = message.kind, message.spec
        if kind == "audio_in":
            self._op(f"use microphone {spec}", lambda e: e.set_audio_input(spec))
        else:
            self._op(f"use speaker {spec}", lambda e: e.set_audio_output(spec))

    def action_devices(self) -> None:
        self._list_devices(pick=True)

    @on(Note)
    def _note(self, message: Note) -> None:
        self.say(message.text, message.error)

    def action_quit(self) -> None:  # type: ignore[override]
        live = [v for v in self.views.values() if v.live]
        if not live:
            self._quit()
            return

        def answered(yes: bool | None) -> None:
            if yes:
                self._quit()

        self.push_screen(QuitScreen(len(live)), answered)

    def _quit(self) -> None:
        if self._quitting:
            return
        self._quitting = True
        live = [v.call.id for v in self.views.values() if v.live]
        if live:
            self.say(f"Ending {'the call' if len(live) == 1 else f'{len(live)} calls'}; quitting…")
        self._hang_up_and_close(self.engine, self.embedded, live, then_exit=True)

    @work(thread=True, group="shutdown", exit_on_error=False, description="quitting")
    def _hang_up_and_close(
        self,
        engine: EngineThread | None,
        embedded: Embedded | None,
        live: Iterable[str] = (),
        then_exit: bool = False,
    ) -> None:
        try:
            if engine is not None:
                for call_id in live:
                    with contextlib.suppress(Exception):  # best effort; close() ends the rest
                        engine.end(call_id)
                engine.close()
            if embedded is not None:
                embedded.stop()
        finally:
            if then_exit:
                self.call_from_thread(self.exit)

    def on_unmount(self) -> None:
        # Exited another way (e.g. an error): do not leave the engine's thread running.
        if self.engine is not None and not self._quitting:
            self._quitting = True
            self.engine.close()
            if self.embedded is not None:
                self.embedded.stop()

    # -- engine events -------------------------------------------------------------------------

    @on(EngineEventMessage)
    def _engine_event(self, message: EngineEventMessage) -> None:
        # While the app is torn down the engine's last events have no pane to go to.
        with contextlib.suppress(NoMatches):
            self._handle_engine_event(message)

    def _handle_engine_event(self, message: EngineEventMessage) -> None:
        event, call = message.event, message.call
        name = event.name
        view = self._update_view(call) if call is not None else None
        party = call.remote_participant if call is not None else "?"
        if name == "call:start":
            error = getattr(event, "error", None)
            if error is not None:  # the SDK reports a failed start as call:start with an error
                self.say(f"Could not call {party}: {getattr(error, 'message', error)}", True)
                if call is not None:  # its call:error would say it again
                    self._start_failed.add(call.id)
                return
            self.say(f"Calling {party}…")
            if call is not None:
                self.calls_pane.select(call.id)
        elif name == "call:receive":
            offered = getattr(event, "media_offered", None)
            if call is not None:
                incoming = IncomingCall(
                    call.id,
                    party,
                    bool(getattr(offered, "audio", True)),
                    bool(getattr(offered, "video", False)),
                )
                self.incoming_pane.add(incoming)
                self.say(f"Incoming call from {party} ({incoming.media}): press a to answer.")
                self.bell()
                focused = self.focused
                if focused is None or (isinstance(focused, Input) and not focused.value):
                    self.set_focus(self.query_one("#answer_audio"))
        elif name == "call:stateChange":
            self._state_changed(event, view, party)
        elif name == "call:newTrack" or name == "call:trackEnded":
            self._track_changed(event, view, party)
        elif name == "call:dtmf":
            self.say(f"Call with {party}: received DTMF {getattr(event, 'digits', '')}")
        elif name == "call:error" and getattr(event, "call_id", None) in self._start_failed:
            pass
        elif name in ("call:error", "media:error"):
            error = getattr(event, "error", None)
            text = getattr(error, "message", str(error))
            where = f"Call with {party}: " if call is not None else ""
            self.say(f"{where}{text}", error=True)
        elif name == "call:mediaConnectionChange":
            if getattr(event, "state", "") == "failed":
                self.say(f"Call with {party}: the media connection failed", error=True)
        elif name == "media:sourceMuted" and not getattr(event, "local", True):
            self.say(f"Call with {party}: their audio stopped arriving", error=True)
        elif name == "media:sourceUnmuted" and not getattr(event, "local", True):
            self.say(f"Call with {party}: their audio is back")
        elif name == "media:deviceChange":
            self._device_changed(event)
        elif name == "ws:change":
            self._ws_changed(event)
        elif name in ("auth:error", "subscription:error"):
            self.say(f"Server: {getattr(event, 'error', event)}", error=True)
        elif name == "subscription:change" and getattr(event, "state", "") == "unsubscribed":
            reason = getattr(event, "reason", None)
            if reason is not None:
                self.status.set_connection("offline", str(reason))
                self.banner.show_state("offline", f"signed out by the server ({reason})")
                self.say(f"Signed out by the server ({reason})", error=True)
        self.refresh_bindings()

    def _update_view(self, call: Any) -> CallView:
        view = self.views.get(call.id)
        if view is None:
            view = self.views[call.id] = CallView(call)
        view.call = call
        if call.state.value == "Connected" and view.connected_at is None:
            view.connected_at = time.time()
        self.calls_pane.show(view)
        return view

    def _state_changed(self, event: Any, view: CallView | None, party: str) -> None:
        previous = event.previous.state.value
        state = event.state.value
        reason = event.transition.reason_text
        if previous != state:
            because = f" ({reason})" if reason and state in ("Ended", "Cancelled") else ""
            self.say(f"Call with {party}: state changed from {previous} to {state}{because}")
        elif view is not None:
            self.say(f"Call with {party}: {view.flags() or 'resumed'}")
        if state not in ("Initiating", "Initiated", "Ringing"):
            self.incoming_pane.drop(event.call_id)
        if state == "Connected" and previous != "On Hold" and view is not None:
            self.calls_pane.select(view.call.id)
            focused = self.focused
            if (
                focused is None
                or isinstance(focused, Input)
                or not focused.id
                or focused.id.startswith(("answer", "reject"))
            ):
                self.calls_pane.focus()
        if state in ("Ended", "Cancelled"):
            self.set_timer(ENDED_ROW_SECONDS, partial(self._forget, event.call_id))
            if not self.incoming_pane.calls and self.focused is None:
                self.calls_pane.focus()

    def _track_changed(self, event: Any, view: CallView | None, party: str) -> None:
        kind, local = event.kind, event.local
        started = event.name == "call:newTrack"
        if view is not None and local and kind == "video":
            view.sending_video = started
            self.calls_pane.show(view)
        if not local:
            verb = "receiving" if started else "no longer receiving"
            self.say(f"Call with {party}: {verb} {kind}")

    def _device_changed(self, event: Any) -> None:
        what = {"audio_in": "Microphone", "audio_out": "Speaker", "camera": "Camera"}
        moved = len(event.call_ids)
        calls = f" ({moved} live call{'s' if moved != 1 else ''} moved)" if moved else ""
        self.say(f"{what.get(event.kind, event.kind)}: now {event.label}{calls}")
        status = self.status
        mic, spk = status.devices_in_use
        if event.kind == "audio_in":
            mic = event.label
        elif event.kind == "audio_out":
            spk = event.label
        status.set_devices(mic, spk)

    def _ws_changed(self, event: Any) -> None:
        state, reason = event.state, event.reason or ""
        if state == "connected":
            self.status.set_connection("connected")
            self.banner.show_state("connected")
            if event.attempt:
                self.say("Connection to the server is back.")
        elif state == "reconnecting":
            retry = f"retry in {event.retry_in:.0f} s" if event.retry_in else "retrying"
            self.status.set_connection("reconnecting", ", ".join(x for x in (reason, retry) if x))
            live = sum(1 for v in self.views.values() if v.live)
            keep = ""
            if live:
                keep = " · the call keeps its media" if live == 1 else f" · {live} calls keep media"
            self.banner.show_state("reconnecting", f"{retry}{keep}")
            self.say(f"Lost the server connection ({reason or 'no reason given'}); {retry}.")
        elif state == "disconnected" and not self._quitting:
            self.status.set_connection("offline", reason)
            self.banner.show_state("offline", reason)
            self.say(f"Offline: {reason or 'disconnected'}", error=True)

    def _forget(self, call_id: str) -> None:
        view = self.views.get(call_id)
        if view is not None and not view.live:
            del self.views[call_id]
            self._last_bytes.pop(call_id, None)
            self.calls_pane.forget(call_id)
            self.refresh_bindings()

    # -- once a second: durations and the selected call's statistics ----------------------------

    def _tick(self) -> None:
        with contextlib.suppress(NoMatches):
            self._refresh_live()

    def _refresh_live(self) -> None:
        for view in self.views.values():
            if view.live and view.connected_at is not None:
                self.calls_pane.show(view)
        selected = self.selected_view
        if selected is None or selected.call.state.value not in ("Connected", "On Hold"):
            self.status.set_call_info("")
            return
        self._poll_stats(selected.call.id)

    @work(thread=True, group="stats", exclusive=True, exit_on_error=False, description="stats")
    def _poll_stats(self, call_id: str) -> None:
        engine = self.engine
        if engine is not None:
            engine.get_stats(call_id)  # the bridge brings the result as StatsUpdated

    @on(StatsUpdated)
    def _stats(self, message: StatsUpdated) -> None:
        with contextlib.suppress(NoMatches):  # a late reply while the app is torn down
            self._show_stats(message)

    def _show_stats(self, message: StatsUpdated) -> None:
        audio = message.stats.get("audio") or {}
        received = audio.get("bytes_received", audio.get("remote_bytes_sent"))
        kbps = None
        now = time.monotonic()
        if isinstance(received, int):
            # The count may come from the far end's sender reports, which arrive about once a
            # second: the rate is measured between changes and shown until the next one.
            last = self._last_bytes.get(message.call_id)
            if last is None or received != last[1]:
                if last is not None and now > last[0]:
                    kbps = (received - last[1]) * 8 / 1000 / (now - last[0])
                self._last_bytes[message.call_id] = (now, received, kbps)
            else:
                kbps = last[2]
        selected = self.selected_view
        if selected is not None and selected.call.id == message.call_id:
            party = selected.call.remote_participant
            self.status.set_call_info(f"{party}: {describe_stats(message.stats, kbps)}")

    # -- the selection -------------------------------------------------------------------------

    @property
    def selected_view(self) -> CallView | None:
        call_id = self.calls_pane.selected
        return self.views.get(call_id) if call_id is not None else None

    @on(CallsPane.RowHighlighted)
    def _highlighted(self) -> None:
        self.status.set_call_info("")
        self.refresh_bindings()

    # -- actions -------------------------------------------------------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in ("quit", "command_palette", "focus_dial", "focus_calls"):
            return True
        if self.engine is None or self._quitting:
            return False
        view = self.selected_view
        state = view.call.state.value if view is not None and view.live else None
        if action in ("answer", "reject"):
            if self.anonymous:
                return False
            first = self.incoming_pane.first
            if first is None:
                return False
            return action != "answer" or parameters != ("video",) or first.video
        if action == "end":
            return state is not None
        if action in ("hold", "mute"):
            return state in ("Connected", "On Hold")
        if action in ("video", "dtmf"):
            return state == "Connected"
        if action == "switch_call":
            return sum(1 for v in self.views.values() if v.live) > 1
        return True

    def _active_others(self, keep: str | None = None) -> list[str]:
        """Live calls other than `keep` that we are not holding: a second call puts these on
        hold first, as a desk phone does, so you never talk into two calls at once."""
        return [
            v.call.id
            for v in self.views.values()
            if v.live
            and v.call.id != keep
            and v.call.state.value == "Connected"
            and not v.call.local_hold
        ]

    @staticmethod
    def _hold_all(engine: EngineThread, call_ids: list[str]) -> None:
        for call_id in call_ids:
            engine.hold(call_id)

    def _op(self, description: str, fn: Callable[[EngineThread], object]) -> None:
        engine = self.engine
        if engine is None:
            self.say("Not connected yet.", error=True)
            return
        self.run_worker(
            partial(fn, engine),
            thread=True,
            group="engine",
            description=description,
            exit_on_error=False,
        )

    @on(Worker.StateChanged)
    def _worker_changed(self, event: Worker.StateChanged) -> None:
        with contextlib.suppress(NoMatches):  # a worker ending while the app is torn down
            self._worker_outcome(event)

    def _worker_outcome(self, event: Worker.StateChanged) -> None:
        worker = event.worker
        if event.state == WorkerState.ERROR:
            error = worker.error
            text = getattr(error, "message", None) or str(error) or type(error).__name__
            self.say(f"Could not {worker.description}: {text}", error=True)
            if worker.group == "startup":
                self.status.set_connection("offline", text)
                self.banner.show_state("offline", text)

    @on(DialPane.DialRequested)
    def _dial(self, message: DialPane.DialRequested) -> None:
        target, video = message.target, message.video
        self.query_one(DialPane).clear()
        if self.anonymous:  # regular mode: a token set is good for one call only
            url = self._server_url
            self._op(
                f"call {target} anonymously",
                lambda e: e.make_anonymous(
                    target,
                    None,
                    from_=self.options.anonymous_from or None,
                    video=video,
                    server_url=url,
                ),
            )
            return
        others = self._active_others()

        def dial(engine: EngineThread) -> None:
            self._hold_all(engine, others)
            engine.make(target, audio=True, video=video)

        self._op(f"call {target}", dial)

    @on(IncomingPane.Action)
    def _incoming_action(self, message: IncomingPane.Action) -> None:
        if message.action == "reject":
            self.action_reject()
        else:
            self.action_answer("video" if message.action == "answer_video" else "audio")

    def action_answer(self, media: str = "audio") -> None:
        first = self.incoming_pane.first
        if first is None:
            return
        video = media == "video" and first.video
        self.incoming_pane.drop(first.call_id)
        self.say(f"Answering {first.caller}{' with video' if video else ''}…")
        call_id = first.call_id
        others = self._active_others()

        def answer(engine: EngineThread) -> None:
            self._hold_all(engine, others)
            engine.answer(call_id, audio=True, video=video)

        self._op(f"answer {first.caller}", answer)

    def action_reject(self) -> None:
        first = self.incoming_pane.first
        if first is None:
            return
        self.incoming_pane.drop(first.call_id)
        call_id = first.call_id
        self._op(f"reject {first.caller}", lambda e: e.reject(call_id))

    def _selected_op(self, verb: str, fn: Callable[[EngineThread, str], object]) -> None:
        view = self.selected_view
        if view is None or not view.live:
            self.say("No call selected.", error=True)
            return
        call_id = view.call.id
        self._op(f"{verb} the call with {view.call.remote_participant}", lambda e: fn(e, call_id))

    def action_end(self) -> None:
        self._selected_op("end", lambda e, c: e.end(c))

    def action_hold(self) -> None:
        view = self.selected_view
        if view is not None and view.call.local_hold:
            others = self._active_others(keep=view.call.id)  # resuming one holds the rest

            def resume(engine: EngineThread, call_id: str) -> None:
                self._hold_all(engine, others)
                engine.unhold(call_id)

            self._selected_op("resume", resume)
        else:
            self._selected_op("hold", lambda e, c: e.hold(c))

    def action_mute(self) -> None:
        view = self.selected_view
        if view is not None and view.call.muted:
            self._selected_op("unmute", lambda e, c: e.unmute(c))
        else:
            self._selected_op("mute", lambda e, c: e.mute(c))

    def action_video(self) -> None:
        view = self.selected_view
        if view is not None and view.sending_video:
            self._selected_op("stop video on", lambda e, c: e.stop_video(c))
        else:
            self._selected_op("start video on", lambda e, c: e.start_video(c))

    def action_dtmf(self, digit: str) -> None:
        view = self.selected_view
        if view is None:
            return
        self.say(f"Call with {view.call.remote_participant}: sending DTMF {digit}")
        self._selected_op("send DTMF on", lambda e, c: e.send_dtmf(c, digit))

    def action_switch_call(self) -> None:
        live = [v.call.id for v in self.views.values() if v.live]
        if not live:
            return
        current = self.calls_pane.selected
        index = live.index(current) + 1 if current in live else 0
        self.calls_pane.select(live[index % len(live)])
        self.calls_pane.focus()

    def action_focus_dial(self) -> None:
        self.query_one("#target", Input).focus()

    def action_focus_calls(self) -> None:
        self.calls_pane.focus()

    # -- the command palette -------------------------------------------------------------------

    def get_system_commands(self, screen: Screen[Any]) -> Iterable[SystemCommand]:
        commands: list[tuple[str, str, Callable[[], object]]] = [
            ("Dial", "Type who to call in the dial box", self.action_focus_dial),
            ("Answer", "Answer the first incoming call with audio", self.action_answer),
            (
                "Answer with video",
                "Answer the first incoming call with video",
                partial(self.action_answer, "video"),
            ),
            ("Reject", "Reject the first incoming call", self.action_reject),
            ("End call", "Hang up the selected call", self.action_end),
            ("Hold", "Put the selected call on hold", self._palette_hold(True)),
            ("Unhold", "Resume the selected call", self._palette_hold(False)),
            ("Mute", "Stop sending your audio", self._palette_mute(True)),
            ("Unmute", "Send your audio again", self._palette_mute(False)),
            ("DTMF", "Focus the calls pane; type 0-9 * # to send tones", self.action_focus_calls),
            (
                "Video on",
                "Start sending video on the selected call",
                lambda: self._selected_op("start video on", lambda e, c: e.start_video(c)),
            ),
            (
                "Video off",
                "Stop sending video on the selected call",
                lambda: self._selected_op("stop video on", lambda e, c: e.stop_video(c)),
            ),
            ("Switch call", "Select the next live call", self.action_switch_call),
            ("Devices", "Pick the microphone and speaker (live calls move)", self.action_devices),
        ]
        for title, help_text, callback in commands:
            yield SystemCommand(title, help_text, callback)
        yield from super().get_system_commands(screen)

    def _palette_hold(self, hold: bool) -> Callable[[], None]:
        if hold:
            return lambda: self._selected_op("hold", lambda e, c: e.hold(c))
        return lambda: self._selected_op("resume", lambda e, c: e.unhold(c))

    def _palette_mute(self, mute: bool) -> Callable[[], None]:
        if mute:
            return lambda: self._selected_op("mute", lambda e, c: e.mute(c))
        return lambda: self._selected_op("unmute", lambda e, c: e.unmute(c))


__all__ = ["SoftphoneApp"]
