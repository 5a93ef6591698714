"""What the screen does with what the engine says: events (one `match` on the event classes),
device listings and call statistics. The words come from `presenter`; this module decides
which pane changes, what gets focus, what rings.

It imports the engine's types, so the app loads it only with the first engine message (the
engine is loaded by then)."""

from __future__ import annotations

import time
from functools import partial
from typing import TYPE_CHECKING, Any

from textual.widgets import Input

from softphone.engine import Call, CallState, DeviceList, ErrorInfo
from softphone.engine import events as engine_events
from softphone.engine.events import (
    CallDtmfReceived,
    CallError,
    CallMediaConnectionChange,
    CallNewTrack,
    CallReceive,
    CallStart,
    CallStateChange,
    CallTrackEnded,
    EngineEvent,
    MediaDeviceChange,
    MediaError,
    MediaSourceMuted,
    MediaSourceUnmuted,
)
from softphone.tui import presenter
from softphone.tui.devices_screen import DevicesScreen
from softphone.tui.presenter import CallView, Line
from softphone.tui.widgets.incoming import IncomingCall

if TYPE_CHECKING:
    from softphone.tui.app import SoftphoneApp

# The client's connection events, by name, as the engine passes them on (the TUI may not
# import softphone.client).
client_events = engine_events

ENDED_ROW_SECONDS = 4.0  # an ended call's row stays this long, so you see how it ended


class EngineEvents:
    def __init__(self, app: SoftphoneApp) -> None:
        self._app = app
        self._start_failed: set[str] = set()  # calls whose call:start said why they failed
        self._bitrate = presenter.Bitrate()
        self.camera_label = ""  # the camera in use, as the engine names it
        self._camera_failed: set[str] = set()  # calls sending the pattern in its stead

    def _say(self, line: Line) -> None:
        self._app.say(line.text, line.error)

    # -- events --------------------------------------------------------------------------------

    def event(self, event: EngineEvent, call: Call | None) -> None:
        view = self._update_view(call) if call is not None else None
        party = call.remote_participant if call is not None else "?"
        match event:
            case CallStart(call_id=call_id, error=ErrorInfo() as error):
                # The SDK reports a failed start as call:start with an error; its call:error
                # would say it again.
                self._say(presenter.could_not_call(party, error))
                self._start_failed.add(call_id)
            case CallStart():
                self._say(presenter.calling(party))
                if call is not None:
                    self._app.calls_pane.select(call.id)
            case CallReceive(media_offered=offered) if call is not None:
                self._ringing(IncomingCall(call.id, party, offered.audio, offered.video))
            case CallStateChange():
                self._state_changed(event, view, party)
            case CallNewTrack(kind=kind, local=local):
                self._track_changed(view, party, kind, local, started=True)
            case CallTrackEnded(kind=kind, local=local):
                self._track_changed(view, party, kind, local, started=False)
            case CallDtmfReceived(digits=digits):
                self._say(presenter.dtmf_received(party, digits))
            case CallError(call_id=call_id) if call_id in self._start_failed:
                pass
            case MediaError(call_id=str(call_id), error=error, device="camera"):
                self._camera_failed.add(call_id)
                self._say(presenter.call_error(party, error))
            case CallError(error=error) | MediaError(error=error):
                self._say(presenter.call_error(party if call is not None else None, error))
            case CallMediaConnectionChange(state="failed"):
                self._say(presenter.media_connection_failed(party))
            case MediaSourceMuted(local=False):
                self._say(presenter.remote_audio(party, arriving=False))
            case MediaSourceUnmuted(local=False):
                self._say(presenter.remote_audio(party, arriving=True))
            case MediaDeviceChange():
                self._device_changed(event)
            case client_events.WsChange(
                state=state, attempt=attempt, reason=reason, retry_in=retry_in
            ):
                self._connection_changed(state, attempt, reason or "", retry_in)
            case (
                client_events.AuthError(error=error) | client_events.SubscriptionError(error=error)
            ):
                self._say(presenter.server_error(error))
            case client_events.SubscriptionChange(state="unsubscribed", reason=reason) if (
                reason is not None
            ):
                self._signed_out(str(reason))
            case _:
                pass  # the rest (ICE progress, stats, re-subscriptions) is not news to a person
        self._app.refresh_bindings()

    def show(self, call: Call) -> None:
        self._update_view(call)
        self._app.refresh_bindings()

    def _update_view(self, call: Call) -> CallView:
        views = self._app.views
        view = views.get(call.id)
        if view is None:
            view = views[call.id] = CallView(call)
        view.update(call, time.time())
        self._app.calls_pane.show(view)
        return view

    def _ringing(self, incoming: IncomingCall) -> None:
        app = self._app
        app.incoming_pane.add(incoming)
        self._say(presenter.incoming(incoming.caller, incoming.media))
        app.bell()
        focused = app.focused
        if focused is None or (isinstance(focused, Input) and not focused.value):
            app.set_focus(app.query_one("#answer_audio"))

    def _state_changed(self, event: CallStateChange, view: CallView | None, party: str) -> None:
        app = self._app
        if event.previous.state != event.state or view is not None:
            self._say(presenter.state_changed(party, event, view.flags() if view else ""))
        state = event.state
        if presenter.stops_ringing(state):
            app.incoming_pane.drop(event.call_id)
        if (
            state == CallState.CONNECTED
            and event.previous.state != CallState.ON_HOLD
            and view is not None
        ):
            app.calls_pane.select(view.call.id)
            focused = app.focused
            if (
                focused is None
                or isinstance(focused, Input)
                or not focused.id
                or focused.id.startswith(("answer", "reject"))
            ):
                app.calls_pane.focus()
        if presenter.finished(state):
            app.set_timer(ENDED_ROW_SECONDS, partial(self._forget, event.call_id))
            if not app.incoming_pane.calls and app.focused is None:
                app.calls_pane.focus()

    def _track_changed(
        self, view: CallView | None, party: str, kind: str, local: bool, started: bool
    ) -> None:
        if not local:
            self._say(presenter.remote_track(party, kind, started))
        elif kind == "video" and view is not None:
            view.sending_video = started
            self._app.calls_pane.show(view)
            if started:
                failed = view.call.id in self._camera_failed
                self._say(presenter.sending_video(party, self.camera_label, failed))

    def _device_changed(self, event: MediaDeviceChange) -> None:
        self._say(presenter.device_changed(event))
        status = self._app.status
        mic, spk = status.devices_in_use
        if event.kind == "audio_in":
            mic = event.label
        elif event.kind == "audio_out":
            spk = event.label
        else:
            self.camera_label = event.label
            self._camera_failed.difference_update(event.call_ids)
        status.set_devices(mic, spk)

    def _connection_changed(
        self, state: str, attempt: int, reason: str, retry_in: float | None
    ) -> None:
        app = self._app
        if state == "connected":
            app.status.set_connection("connected")
            app.banner.show_state("connected")
            if attempt:
                self._say(presenter.connection_back())
        elif state == "reconnecting":
            retry = presenter.retry_text(retry_in)
            app.status.set_connection("reconnecting", ", ".join(x for x in (reason, retry) if x))
            live = sum(1 for v in app.views.values() if v.live)
            app.banner.show_state("reconnecting", f"{retry}{presenter.keeps_media(live)}")
            self._say(presenter.connection_lost(reason, retry_in))
        elif state == "disconnected" and not app.quitting:
            app.status.set_connection("offline", reason)
            app.banner.show_state("offline", reason)
            self._say(presenter.offline(reason))

    def _signed_out(self, reason: str) -> None:
        self._app.status.set_connection("offline", reason)
        self._app.banner.show_state("offline", f"signed out by the server ({reason})")
        self._say(presenter.signed_out(reason))

    def _forget(self, call_id: str) -> None:
        app = self._app
        view = app.views.get(call_id)
        if view is not None and not view.live:
            del app.views[call_id]
            self._bitrate.forget(call_id)
            self._camera_failed.discard(call_id)
            app.calls_pane.forget(call_id)
            app.refresh_bindings()

    # -- device listings -----------------------------------------------------------------------

    def devices(self, devices: DeviceList, pick: bool) -> None:
        app = self._app
        self.camera_label = devices.camera_label or devices.camera
        app.status.set_devices(
            devices.audio_in_label or devices.audio_in, devices.audio_out_label or devices.audio_out
        )
        if pick:
            app.push_screen(DevicesScreen(devices))
        elif devices.problem and not presenter.synthetic(devices.audio_in, devices.audio_out):
            self._say(presenter.device_problem(devices.problem))

    # -- statistics ----------------------------------------------------------------------------

    def stats(self, call_id: str, stats: dict[str, Any]) -> None:
        kbps = self._bitrate.update(call_id, stats, time.monotonic())
        selected = self._app.selected_view
        if selected is not None and selected.call.id == call_id:
            self._app.status.set_call_info(presenter.call_numbers(selected.party, stats, kbps))


__all__ = ["ENDED_ROW_SECONDS", "EngineEvents"]
