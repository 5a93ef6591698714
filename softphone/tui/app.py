"""`SoftphoneApp`: the terminal softphone's layout, keys, command palette and message routing.

Textual owns the main thread; the engine runs on its own thread (`EngineThread`). The parts:
start-up and shut-down in `lifecycle` (thread workers), what the user asks for in `actions`
(keys and palette call the same methods), what the engine says in `engine_events` (with the
words from `presenter`). The engine, media and the embedded server are imported only after the
first paint.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Callable, Iterable
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from textual import on, work
from textual.app import App, ComposeResult, SystemCommand
from textual.binding import Binding
from textual.css.query import NoMatches
from textual.screen import Screen
from textual.widgets import Footer, Input
from textual.worker import Worker, WorkerState

from softphone.tui import lifecycle
from softphone.tui.actions import CallActions
from softphone.tui.devices_screen import MIC_TEST, DevicePicked, MicTest
from softphone.tui.messages import (
    DevicesListed,
    EngineEventMessage,
    EngineReady,
    Note,
    StatsUpdated,
)
from softphone.tui.options import TuiOptions
from softphone.tui.ring_tone import RingTone
from softphone.tui.widgets.banner import Banner
from softphone.tui.widgets.calls import CallsPane
from softphone.tui.widgets.dial import DialPane
from softphone.tui.widgets.incoming import IncomingCall, IncomingPane
from softphone.tui.widgets.log import MessageLog
from softphone.tui.widgets.recent import RecentCalls
from softphone.tui.widgets.status import StatusLine

if TYPE_CHECKING:
    from softphone.embedded import Embedded
    from softphone.engine import Call, EngineThread
    from softphone.engine.events import EngineCallback, EngineEvent
    from softphone.tui.engine_events import EngineEvents
    from softphone.tui.presenter import CallView

DTMF_KEYS = {str(d): str(d) for d in range(10)} | {"asterisk": "*", "number_sign": "#"}
RING_EVERY = 3.0  # seconds between bells while a call rings

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
    Binding("w", "show_video", "Window"),
    Binding("s", "switch_call", "Switch"),
    # Not in the footer (it fits 80 columns with a call's keys): the dial box says it.
    Binding("d", "focus_dial", "Dial", show=False),
    Binding("l", "log_in", "Log in"),
    Binding("escape", "focus_calls", "Calls", show=False),
    *(
        Binding(key, f"dtmf('{digit}')", "tones", show=key == "1", key_display="0-9")
        for key, digit in DTMF_KEYS.items()
    ),
]


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
        self.server_url = self.options.server_url  # the embedded one once it runs
        self.user = self.options.user
        self.quitting = False
        self.logging_in = False  # a new login is on its way: the old session's end is no news
        self._connecting: EngineThread | None = None  # started, not connected yet
        self._current: object = None  # the engine whose events count (the newest)
        self._ring_timer: Any = None
        self.bells = 0  # how often the bell rang (the terminal gives no way to ask)
        self.ring_tone = RingTone(self)  # the engine's ring tone on the ring device
        self.actions = CallActions(self)
        self._engine_events: EngineEvents | None = None

    # -- layout ------------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        yield StatusLine()
        yield Banner()
        yield DialPane(self.options.video)
        yield IncomingPane()
        yield CallsPane()
        yield RecentCalls()
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
    def recent(self) -> RecentCalls:
        return self.query_one(RecentCalls)

    @property
    def banner(self) -> Banner:
        return self.query_one(Banner)

    @property
    def anonymous(self) -> bool:
        return self.options.anonymous

    @property
    def selected_view(self) -> CallView | None:
        call_id = self.calls_pane.selected
        return self.views.get(call_id) if call_id is not None else None

    def on_mount(self) -> None:
        self.query_one("#target", Input).focus()
        if self.anonymous:
            self.incoming_pane.turn_off(
                "Anonymous mode: you are not logged in, so nobody can call you; "
                "calls you place are anonymous."
            )
        self.say("Starting…")
        self._show_settings()
        # First paint now; the engine, media and server imports come after it.
        self.call_after_refresh(self._painted)
        self.set_interval(1.0, self._tick)
        self.status.set_connection("starting")

    def say(self, text: str, error: bool = False) -> None:
        self.log_pane.say(text, error)

    # -- start-up and shut-down ----------------------------------------------------------------

    def _painted(self) -> None:
        if not gc.isenabled():  # the CLI holds the collector off until the first frame
            gc.freeze()  # start-up's objects live as long as the app: never scan them again
            gc.enable()
        self._start()

    @work(thread=True, group="startup", exit_on_error=False, description="start")
    def _start(self) -> None:
        lifecycle.start(self.options, self.post_message, self._subscriber)

    def _subscriber(self, engine: EngineThread) -> EngineCallback:
        from softphone.tui.bridge import Bridge  # the engine is loaded: this runs after it

        bridge = Bridge(self, engine.engine)
        self._current = engine

        def deliver(event: EngineEvent) -> None:
            if self._current is engine:  # a replaced engine's last words are no news
                bridge(event)

        return deliver

    @on(EngineReady)
    def _engine_ready(self, message: EngineReady) -> None:
        if self.quitting:  # quit while starting
            self._stop(message.engine, message.embedded)
            return
        self.logging_in = False
        self.embedded = message.embedded
        self.server_url, self.user = message.server_url, message.user
        where = "embedded server" if message.embedded else message.server_url
        if message.anonymous:
            self.engine = message.engine
            self.status.set_identity(f"anonymous ({message.user}) @ {where}")
            self.status.set_connection("anonymous")
            self.say(f"Anonymous mode on {message.server_url}: not logged in.")
            self._list_devices(pick=False)
        else:
            # Usable once connected (`became_online`); the connection's events say how it goes.
            self._connecting = message.engine
            self.status.set_identity(f"{message.user} @ {where}")
            if self.status.connection == "starting":
                self.status.set_connection("connecting")
            elif self.status.connection == "connected" and self.became_online():
                # It connected before this message came (the engine's thread was quicker).
                from softphone.tui import presenter

                self.say(presenter.connected_as(self.user, self.server_url).text)
        self.refresh_bindings()

    def became_online(self) -> bool:
        """The newest engine connected: it is the one actions use now. True the first time."""
        engine, self._connecting = self._connecting, None
        if engine is None:
            return False
        self.engine = engine
        if self.embedded is not None:
            self.say("Dial echo to test your audio and video.")
        self._list_devices(pick=False)
        return True

    # -- logging in again ----------------------------------------------------------------------

    def login_refused(self, detail: str) -> None:
        from softphone.tui import presenter

        self.status.set_connection("offline", "the password was refused")
        self.banner.show_state("offline", "the password was refused: l logs in again")
        self.say(presenter.login_refused(self.user).text, error=True)
        self.log_pane.detail(detail)
        self.action_log_in("The server refused the password.")

    def action_log_in(self, why: str = "Log in again.") -> None:
        if self.options.anonymous or self.embedded is not None or not self.server_url:
            self.say("Nothing to log in to here.")
            return
        from softphone.tui.screens import LoginScreen  # not needed before the first paint

        if isinstance(self.screen, LoginScreen):
            return

        def entered(password: str | None) -> None:
            if password:
                self.logging_in = True
                self.status.set_connection("connecting")
                self.say(f"Logging in as {self.user}…")
                self._log_in(password)

        self.push_screen(LoginScreen(self.user, self.server_url, why), entered)

    @work(thread=True, group="startup", exit_on_error=False, description="log in")
    def _log_in(self, password: str) -> None:
        old = self.engine or self._connecting
        self.engine = None
        lifecycle.log_in_again(
            old,
            self.options,
            self.server_url,
            self.user,
            password,
            self.post_message,
            self._subscriber,
            self.embedded,
        )

    def action_quit(self) -> None:  # type: ignore[override]
        live = [v for v in self.views.values() if v.live]
        if not live:
            self._quit()
            return

        def answered(yes: bool | None) -> None:
            if yes:
                self._quit()

        from softphone.tui.screens import QuitScreen  # not needed before the first paint

        self.push_screen(QuitScreen(len(live)), answered)

    def _quit(self) -> None:
        if self.quitting:
            return
        self.quitting = True
        live = [v.call.id for v in self.views.values() if v.live]
        if live:
            self.say(f"Ending {'the call' if len(live) == 1 else f'{len(live)} calls'}; quitting…")
        self._stop(self.engine or self._connecting, self.embedded, live, then_exit=True)

    @work(thread=True, group="shutdown", exit_on_error=False, description="quitting")
    def _stop(
        self,
        engine: EngineThread | None,
        embedded: Embedded | None,
        live: Iterable[str] = (),
        then_exit: bool = False,
    ) -> None:
        try:
            lifecycle.stop(engine, embedded, live)
        finally:
            if then_exit:
                self.call_from_thread(self.exit)

    def on_unmount(self) -> None:
        # Exited another way (e.g. an error): do not leave the engine's thread running.
        engine = self.engine or self._connecting
        if engine is not None and not self.quitting:
            self.quitting = True
            lifecycle.stop(engine, self.embedded)

    # -- what the engine says ------------------------------------------------------------------

    @property
    def engine_events(self) -> EngineEvents:
        # Imported with the first engine message: it needs the engine's types, and the engine
        # is loaded by then (never before the first paint).
        if self._engine_events is None:
            from softphone.tui.engine_events import EngineEvents

            self._engine_events = EngineEvents(self)
        return self._engine_events

    # While the app is torn down, late engine messages have no pane to go to (NoMatches).

    @on(EngineEventMessage)
    def _engine_event(self, message: EngineEventMessage) -> None:
        with contextlib.suppress(NoMatches):
            self.engine_events.event(message.event, message.call)

    def show_call(self, call: Call) -> None:
        """Show a call as it is now (after an operation no engine event reports)."""
        with contextlib.suppress(NoMatches):
            self.engine_events.show(call)

    @on(DevicesListed)
    def _devices_listed(self, message: DevicesListed) -> None:
        with contextlib.suppress(NoMatches):
            self.engine_events.devices(message.devices, message.pick)

    @on(StatsUpdated)
    def _stats(self, message: StatsUpdated) -> None:
        with contextlib.suppress(NoMatches):
            self.engine_events.stats(message.call_id, message.stats)

    @on(Note)
    def _note(self, message: Note) -> None:
        self.say(message.text, message.error)

    # -- once a second: durations and the selected call's statistics ----------------------------

    def _tick(self) -> None:
        with contextlib.suppress(NoMatches):
            self.status.tick()
            self._refresh_live()

    def _refresh_live(self) -> None:
        for view in self.views.values():
            if view.live and view.connected_at is not None:
                self.calls_pane.show(view)
        selected = self.selected_view
        if selected is None or not selected.established:
            self.status.set_call_info("")
            self.status.set_meters("", "")
            return
        self._poll_stats(selected.call.id)

    @work(thread=True, group="stats", exclusive=True, exit_on_error=False, description="stats")
    def _poll_stats(self, call_id: str) -> None:
        engine = self.engine
        if engine is not None:
            self.post_message(StatsUpdated(call_id, engine.get_stats(call_id)))

    @work(
        thread=True,
        group="devices",
        exclusive=True,
        exit_on_error=False,
        description="list devices",
    )
    def _list_devices(self, pick: bool, rescan: bool = False) -> None:
        engine = self.engine
        if engine is not None:
            self.post_message(DevicesListed(engine.list_devices(rescan=rescan), pick))

    @on(CallsPane.RowHighlighted)
    def _highlighted(self) -> None:
        self.status.set_call_info("")
        self.status.set_meters("", "")
        self.show_selected()
        self.refresh_bindings()

    def show_selected(self) -> None:
        """The selected call and what is on for it, on the status line (at once)."""
        view = self.selected_view
        if view is None or not view.live:
            self.status.set_call("", [])
        else:
            self.status.set_call(view.party, view.flag_words())

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
            view = self.views.get(worker.name)
            if view is not None and view.pending:  # asked, not done: take the mark back
                view.pending = ""
                self.calls_pane.show(view)
                self.show_selected()
            if worker.group == "startup":
                self.logging_in = False
                self.status.set_connection("offline", text)
                self.banner.show_state("offline", text)

    # -- actions: keys, buttons and the palette all come here ----------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in ("quit", "command_palette", "focus_dial", "focus_calls"):
            return True
        if action == "log_in":
            return self.status.connection == "offline" and not self.anonymous
        if self.engine is None or self.quitting:
            return False
        view = self.selected_view
        if view is not None and not view.live:
            view = None
        if action in ("answer", "reject"):
            if self.anonymous:
                return False
            first = self.incoming_pane.first
            if first is None:
                return False
            return action != "answer" or parameters != ("video",) or first.video
        if action == "end":
            return view is not None
        if action in ("hold", "mute"):
            return view is not None and view.established
        if action in ("video", "dtmf"):
            return view is not None and view.connected
        if action == "show_video":
            return view is not None and view.connected and view.receiving_video
        if action == "switch_call":
            return sum(1 for v in self.views.values() if v.live) > 1
        return True

    @on(DialPane.DialRequested)
    def _dial(self, message: DialPane.DialRequested) -> None:
        self.query_one(DialPane).clear()
        self.actions.dial(message.target, message.video)
        # The call keys work from here at once (e ends it while it rings).
        self.calls_pane.focus()

    def dial_again(self, failed: str) -> None:
        """Call `failed` could not be placed: back to the dial box, unless another call is
        going on."""
        others = (v for i, v in self.views.items() if i != failed)
        if not any(v.live for v in others) and self.focused is self.calls_pane:
            self.action_focus_dial()

    # -- ringing -------------------------------------------------------------------------------

    def ring(self, incoming: IncomingCall) -> None:
        """A call comes in: show it, take the focus out of any text box (so a typed `a`
        answers rather than types), ring the bell now and every few seconds, and notify the
        desktop where there is one."""
        pane = self.incoming_pane
        if self.options.do_not_disturb:
            self.say(f"{incoming.caller} called; not ringing (do not disturb is on).")
            self.actions.ignore(incoming.call_id, incoming.caller)
            return
        pane.add(incoming)
        if self.options.auto_answer and not any(v.established for v in self.views.values()):
            self.say(f"Answering {incoming.caller} automatically (auto-answer is on).")
            self.actions.answer(video=False)
            return
        self.bell()
        self.ring_tone.call_rings()
        if isinstance(self.focused, Input) or self.focused is None:
            with contextlib.suppress(NoMatches):
                self.set_focus(self.query_one("#answer_audio"))
        if self._ring_timer is None:
            self._ring_timer = self.set_interval(RING_EVERY, self._ring_again)
        self._notify_desktop(incoming.caller, incoming.media)

    def bell(self) -> None:
        self.bells += 1
        super().bell()

    def _ring_again(self) -> None:
        if self.incoming_pane.first is None:
            self.ringing_changed()
        else:
            self.bell()

    def ringing_changed(self) -> None:
        """An incoming call left the pane: stop ringing when none is left."""
        if self.incoming_pane.first is None:
            self.ring_tone.no_call_rings()
        if self.incoming_pane.first is None and self._ring_timer is not None:
            self._ring_timer.stop()
            self._ring_timer = None

    @work(thread=True, group="notify", exit_on_error=False, description="notify the desktop")
    def _notify_desktop(self, caller: str, media: str) -> None:
        from softphone.tui.notify import notify

        notify("softphone: incoming call", f"{caller} is calling ({media})")

    @on(IncomingPane.Action)
    def _incoming_action(self, message: IncomingPane.Action) -> None:
        if message.action == "reject":
            self.action_reject()
        else:
            self.action_answer("video" if message.action == "answer_video" else "audio")

    @on(DevicePicked)
    def _device_picked(self, message: DevicePicked) -> None:
        self.actions.use_device(message.kind, message.spec)

    @on(MicTest)
    def _mic_test(self) -> None:
        self.say(f"Mic test: calling {MIC_TEST}; speak, watch the in meter, hear yourself back.")
        self.actions.dial(MIC_TEST, video=False)
        self.calls_pane.focus()

    def action_answer(self, media: str = "audio") -> None:
        self.actions.answer(video=media == "video")

    def action_reject(self) -> None:
        self.actions.reject()

    def action_end(self) -> None:
        self.actions.end()

    def action_hold(self, hold: bool | None = None) -> None:
        """`h` toggles; the palette's Hold and Unhold say which."""
        self.actions.hold(hold)

    def action_mute(self, mute: bool | None = None) -> None:
        self.actions.mute(mute)

    def action_video(self, send: bool | None = None) -> None:
        self.actions.video(send)

    def action_show_video(self) -> None:
        self.actions.show_video()

    def action_dtmf(self, digit: str) -> None:
        self.actions.dtmf(digit)

    def action_switch_call(self) -> None:
        self.actions.switch_call()

    def action_devices(self) -> None:
        self._list_devices(pick=True)

    def action_rescan_devices(self) -> None:
        """A headset plugged in, a sound server started: look again (not during a call)."""
        self._list_devices(pick=True, rescan=True)

    def action_focus_dial(self) -> None:
        self.query_one("#target", Input).focus()

    def action_toggle_dnd(self) -> None:
        self.options.do_not_disturb = not self.options.do_not_disturb
        self.say(f"Do not disturb is {'on' if self.options.do_not_disturb else 'off'}.")
        self._show_settings()

    def action_toggle_auto_answer(self) -> None:
        self.options.auto_answer = not self.options.auto_answer
        self.say(f"Auto-answer is {'on' if self.options.auto_answer else 'off'}.")
        self._show_settings()

    def _show_settings(self) -> None:
        on = [
            word
            for word, flag in (
                ("do not disturb", self.options.do_not_disturb),
                ("auto-answer", self.options.auto_answer),
            )
            if flag
        ]
        self.status.set_settings(" · ".join(on))

    def action_screenshot(self, filename: str | None = None, path: str | None = None) -> None:
        """Save the screen as SVG in the current directory and say where."""
        saved = self.save_screenshot(filename, path or str(Path.cwd()))
        self.say(f"Screenshot saved to {saved}")

    def action_focus_calls(self) -> None:
        self.calls_pane.focus()

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
            ("Hold", "Put the selected call on hold", partial(self.action_hold, True)),
            (
                "Unhold",
                "Resume the selected call (the others go on hold)",
                partial(self.action_hold, False),
            ),
            ("Mute", "Stop sending your audio", partial(self.action_mute, True)),
            ("Unmute", "Send your audio again", partial(self.action_mute, False)),
            ("DTMF", "Focus the calls pane; type 0-9 * # to send tones", self.action_focus_calls),
            (
                "Video on",
                "Start sending video on the selected call",
                partial(self.action_video, True),
            ),
            (
                "Video off",
                "Stop sending video on the selected call",
                partial(self.action_video, False),
            ),
            (
                "Show video",
                "Open the selected call's video window again (after you closed it)",
                self.action_show_video,
            ),
            ("Switch call", "Select the next live call", self.action_switch_call),
            (
                "Devices",
                "Pick the microphone, speaker and camera (live calls move)",
                self.action_devices,
            ),
            (
                "Devices: look again",
                "List sound cards anew (PulseAudio/PipeWire devices update by themselves); "
                "not while a call has sound",
                self.action_rescan_devices,
            ),
            (
                "Do not disturb: " + ("off" if self.options.do_not_disturb else "on"),
                "Incoming calls do not ring here (they go on at your other devices)",
                self.action_toggle_dnd,
            ),
            (
                "Auto-answer: " + ("off" if self.options.auto_answer else "on"),
                "Answer incoming calls at once with audio when no other call is on",
                self.action_toggle_auto_answer,
            ),
            *(
                (
                    f"Echo cancellation: {mode}",
                    what,
                    partial(self.actions.echo_cancellation, mode),
                )
                for mode, what in (
                    ("on", "Cancel the echo of your speakers in what you send, on every input"),
                    ("off", "Send your microphone as it is (a headset needs no echo cancelling)"),
                    ("auto", "Cancel echo on sound-card microphones only (not tones or files)"),
                )
                if mode != self.options.echo_cancellation
            ),
            (
                "Log in",
                "Log in again (after a refused password or a session that ended)",
                self.action_log_in,
            ),
            (
                "Screenshot",
                "Save an SVG picture of the screen in the current directory",
                self.action_screenshot,
            ),
        ]
        for title, help_text, callback in commands:
            yield SystemCommand(title, help_text, callback)
        # Textual's own Screenshot saves to a Downloads folder that may not exist ("Failed to
        # save screenshot"): ours above says where the file went.
        for command in super().get_system_commands(screen):
            if command.title != "Screenshot":
                yield command


__all__ = ["SoftphoneApp"]
