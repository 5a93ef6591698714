"""`SoftphoneApp`: the terminal softphone's layout, keys, command palette and message routing.

Textual owns the main thread; the engine runs on its own thread (`EngineThread`). The parts:
start-up and shut-down in `lifecycle` (thread workers), what the user asks for in `actions`
(keys and palette call the same methods), what the engine says in `engine_events` (with the
words from `presenter`). The engine, media and the embedded server are imported only after the
first paint.
"""

from __future__ import annotations

import contextlib
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

from softphone.tui import lifecycle
from softphone.tui.actions import CallActions
from softphone.tui.devices_screen import DevicePicked
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
from softphone.tui.widgets.calls import CallsPane
from softphone.tui.widgets.dial import DialPane
from softphone.tui.widgets.incoming import IncomingPane
from softphone.tui.widgets.log import MessageLog
from softphone.tui.widgets.status import StatusLine

if TYPE_CHECKING:
    from softphone.embedded import Embedded
    from softphone.engine import Call, EngineThread
    from softphone.engine.events import EngineCallback
    from softphone.tui.engine_events import EngineEvents
    from softphone.tui.presenter import CallView

DTMF_KEYS = {str(d): str(d) for d in range(10)} | {"asterisk": "*", "number_sign": "#"}

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
        self.server_url = ""
        self.quitting = False
        self.actions = CallActions(self)
        self._engine_events: EngineEvents | None = None

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
        # First paint now; the engine, media and server imports come after it.
        self.call_after_refresh(self._start)
        self.set_interval(1.0, self._tick)

    def say(self, text: str, error: bool = False) -> None:
        self.log_pane.say(text, error)

    # -- start-up and shut-down ----------------------------------------------------------------

    @work(thread=True, group="startup", exit_on_error=False, description="start")
    def _start(self) -> None:
        lifecycle.start(self.options, self.post_message, self._subscriber)

    def _subscriber(self, engine: EngineThread) -> EngineCallback:
        from softphone.tui.bridge import Bridge  # the engine is loaded: this runs after it

        return Bridge(self, engine.engine)

    @on(EngineReady)
    def _engine_ready(self, message: EngineReady) -> None:
        if self.quitting:  # quit while starting
            self._stop(message.engine, message.embedded)
            return
        self.engine, self.embedded = message.engine, message.embedded
        self.server_url = message.server_url
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
        if self.quitting:
            return
        self.quitting = True
        live = [v.call.id for v in self.views.values() if v.live]
        if live:
            self.say(f"Ending {'the call' if len(live) == 1 else f'{len(live)} calls'}; quitting…")
        self._stop(self.engine, self.embedded, live, then_exit=True)

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
        if self.engine is not None and not self.quitting:
            self.quitting = True
            lifecycle.stop(self.engine, self.embedded)

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
            self._refresh_live()

    def _refresh_live(self) -> None:
        for view in self.views.values():
            if view.live and view.connected_at is not None:
                self.calls_pane.show(view)
        selected = self.selected_view
        if selected is None or not selected.established:
            self.status.set_call_info("")
            return
        self._poll_stats(selected.call.id)

    @work(thread=True, group="stats", exclusive=True, exit_on_error=False, description="stats")
    def _poll_stats(self, call_id: str) -> None:
        engine = self.engine
        if engine is not None:
            self.post_message(StatsUpdated(call_id, engine.get_stats(call_id)))

    @work(thread=True, group="devices", exclusive=True, exit_on_error=False)
    def _list_devices(self, pick: bool) -> None:
        engine = self.engine
        if engine is not None:
            self.post_message(DevicesListed(engine.list_devices(), pick))

    @on(CallsPane.RowHighlighted)
    def _highlighted(self) -> None:
        self.status.set_call_info("")
        self.refresh_bindings()

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

    # -- actions: keys, buttons and the palette all come here ----------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in ("quit", "command_palette", "focus_dial", "focus_calls"):
            return True
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
        if action == "switch_call":
            return sum(1 for v in self.views.values() if v.live) > 1
        return True

    @on(DialPane.DialRequested)
    def _dial(self, message: DialPane.DialRequested) -> None:
        self.query_one(DialPane).clear()
        self.actions.dial(message.target, message.video)

    @on(IncomingPane.Action)
    def _incoming_action(self, message: IncomingPane.Action) -> None:
        if message.action == "reject":
            self.action_reject()
        else:
            self.action_answer("video" if message.action == "answer_video" else "audio")

    @on(DevicePicked)
    def _device_picked(self, message: DevicePicked) -> None:
        self.actions.use_device(message.kind, message.spec)

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

    def action_dtmf(self, digit: str) -> None:
        self.actions.dtmf(digit)

    def action_switch_call(self) -> None:
        self.actions.switch_call()

    def action_devices(self) -> None:
        self._list_devices(pick=True)

    def action_focus_dial(self) -> None:
        self.query_one("#target", Input).focus()

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
            ("Switch call", "Select the next live call", self.action_switch_call),
            (
                "Devices",
                "Pick the microphone, speaker and camera (live calls move)",
                self.action_devices,
            ),
        ]
        for title, help_text, callback in commands:
            yield SystemCommand(title, help_text, callback)
        yield from super().get_system_commands(screen)


__all__ = ["SoftphoneApp"]
