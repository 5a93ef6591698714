"""What the screen does with what the engine says: events (one `match` on the event classes),
device listings and call statistics. The words come from `presenter`; this module decides
which pane changes, what gets focus, what rings.

It imports the engine's types, so the app loads it only with the first engine message (the
engine is loaded by then)."""

from __future__ import annotations

import logging
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
    CallMuteChange,
    CallNewTrack,
    CallReceive,
    CallStart,
    CallStateChange,
    CallTrackEnded,
    DevicesChanged,
    EngineEvent,
    MediaDeviceChange,
    MediaError,
    MediaLevels,
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

ENDED_ROW_SECONDS = 4.0  # an ended call's row stays this long, then moves to Recent calls
_log = logging.getLogger("softphone.tui.messages")


class EngineEvents:
    def __init__(self, app: SoftphoneApp) -> None:
        self._app = app
        self._start_failed: set[str] = set()  # calls whose call:start said why they failed
        self._bitrate = presenter.Bitrate()
        self.camera_label = ""  # the camera in use, as the engine names it
        self._camera_failed: set[str] = set()  # calls sending the pattern in its stead
        self._outage = False  # a "lost the connection" line was said for this outage
        self._devices: DeviceList | None = None

    def _say(self, line: Line | None) -> None:
        if line is None:
            return
        if line.detail:
            _log.info("detail: %s", line.detail)
        self._app.say(line.text, line.error)

    # -- events --------------------------------------------------------------------------------

    def event(self, event: EngineEvent, call: Call | None) -> None:
        view = self._update_view(call) if call is not None else None
        party = view.party if view is not None else "?"
        match event:
            case CallStart(call_id=call_id, error=ErrorInfo() as error):
                # The SDK reports a failed start as call:start with an error; its call:error
                # and the ending would say it again.
                self._say(presenter.could_not_call(party, error))
                self._start_failed.add(call_id)
                if view is not None:
                    view.ended = presenter.failed_words(error.message)
                    self._app.calls_pane.show(view)
                self._app.dial_again(call_id)
            case CallStart():
                self._say(presenter.calling(party))
                if call is not None:
                    self._app.calls_pane.select(call.id)
            case CallReceive(media_offered=offered) if call is not None:
                self._ringing(IncomingCall(call.id, party, offered.audio, offered.video))
            case CallStateChange():
                self._state_changed(event, view, party)
            case CallMuteChange(muted=muted) if view is not None:
                view.pending = ""
                self._app.calls_pane.show(view)
                self._say(presenter.muted(party, muted))
            case CallNewTrack(kind=kind, local=local):
                self._track_changed(view, party, kind, local, started=True)
            case CallTrackEnded(kind=kind, local=local):
                self._track_changed(view, party, kind, local, started=False)
            case CallDtmfReceived(digits=digits):
                self._say(presenter.dtmf_received(party, digits))
            case MediaLevels():
                self._levels(event)
            case CallError(call_id=call_id) if call_id in self._start_failed:
                pass
            case MediaError(call_id=str(call_id), error=error, device="camera"):
                self._camera_failed.add(call_id)
                self._say(presenter.call_error(party, error))
            case CallError(error=error) | MediaError(error=error):
                if view is not None and view.pending:
                    view.pending = ""
                    self._app.calls_pane.show(view)
                self._say(presenter.call_error(party if call is not None else None, error))
            case CallMediaConnectionChange(state="failed"):
                self._say(presenter.media_connection_failed(party))
            case MediaSourceMuted(local=False):
                self._say(presenter.remote_audio(party, arriving=False))
            case MediaSourceUnmuted(local=False):
                self._say(presenter.remote_audio(party, arriving=True))
            case MediaDeviceChange():
                self._device_changed(event)
            case DevicesChanged():
                self._devices_changed(event)
            case client_events.WsChange(state=state, reason=reason, retry_in=retry_in):
                self._connection_changed(state, reason or "", retry_in)
            case client_events.AuthError(error=error):
                self._app.login_refused(str(error))
            case client_events.SubscriptionError(error=error):
                self._say(presenter.server_error(error))
            case client_events.SubscriptionChange(state="unsubscribed", reason=reason) if (
                reason is not None and reason != "lost_connection"
            ):
                self._signed_out(str(reason))
            case _:
                pass  # the rest (ICE progress, stats, re-subscriptions) is not news to a person
        self._app.show_selected()
        self._app.refresh_bindings()

    def show(self, call: Call) -> None:
        self._update_view(call)
        self._app.show_selected()
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
        self._say(presenter.incoming(incoming.caller, incoming.media))
        app.ring(incoming)

    def _state_changed(self, event: CallStateChange, view: CallView | None, party: str) -> None:
        app = self._app
        state = event.state
        if view is not None:
            if presenter.finished(state):
                if not view.ended:
                    view.ended = presenter.end_words(view.call, event.transition.reason_text, party)
            elif event.previous.local_hold != view.call.local_hold:
                view.pending = ""
            app.calls_pane.show(view)
            if not (presenter.finished(state) and event.call_id in self._start_failed):
                self._say(presenter.state_changed(party, event, view.call))
        if presenter.stops_ringing(state):
            app.incoming_pane.drop(event.call_id)
            app.ringing_changed()
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
            if kind == "video" and view is not None:
                view.receiving_video = started
            self._say(presenter.remote_track(party, kind, started))
        elif kind == "video" and view is not None:
            view.sending_video = started
            view.pending = ""
            self._app.calls_pane.show(view)
            if started:
                failed = view.call.id in self._camera_failed
                self._say(presenter.sending_video(party, self.camera_label, failed))

    def _levels(self, event: MediaLevels) -> None:
        selected = self._app.selected_view
        if selected is None or selected.call.id != event.call_id:
            return
        self._app.status.set_meters(
            presenter.meter(event.input_peak), presenter.meter(event.output_peak)
        )

    def _device_changed(self, event: MediaDeviceChange) -> None:
        if not event.unplugged:  # else the media:error that follows says it, and why
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

    def _connection_changed(self, state: str, reason: str, retry_in: float | None) -> None:
        app = self._app
        if state == "connecting":
            app.status.set_connection("connecting")
        elif state == "connected":
            app.status.set_connection("connected")
            app.banner.show_state("connected")
            if app.became_online():
                self._say(presenter.connected_as(app.user, app.server_url))
            elif self._outage:
                self._say(presenter.connection_back())
            self._outage = False
        elif state == "reconnecting":
            why = "server not reachable" if app.engine is None else ""
            app.status.set_connection("reconnecting", why, retry_in)
            live = sum(1 for v in app.views.values() if v.live)
            app.banner.show_state("reconnecting", presenter.keeps_media(live).lstrip(" ·"))
            if not self._outage:
                self._outage = True
                if app.engine is None:
                    self._say(presenter.unreachable(app.server_url, reason))
                else:
                    self._say(presenter.connection_lost(reason))
            else:
                _log.info("detail: still not connected: %s", reason)
        elif state == "disconnected" and not app.quitting and not app.logging_in:
            why = presenter.plain_error(reason) or "the server closed the connection"
            app.status.set_connection("offline", why)
            app.banner.show_state("offline", why)
            self._say(presenter.offline(reason))

    def _signed_out(self, reason: str) -> None:
        line = presenter.signed_out(reason)
        self._app.status.set_connection("offline", line.text.removeprefix("Signed out: "))
        self._app.banner.show_state("offline", line.text)
        self._say(line)
        if reason == "expired":  # nothing else to do about it: ask for the password now
            self._app.action_log_in("Your session expired.")

    def _forget(self, call_id: str) -> None:
        app = self._app
        view = app.views.get(call_id)
        if view is not None and not view.live:
            del app.views[call_id]
            self._bitrate.forget(call_id)
            self._camera_failed.discard(call_id)
            app.calls_pane.forget(call_id)
            app.recent.add(presenter.recent_line(view, time.localtime(view.call.start_time)))
            app.show_selected()
            app.refresh_bindings()

    def _devices_changed(self, event: DevicesChanged) -> None:
        """Plugged in or out: one line each, the status line and an open Devices screen
        follow. A device in use that went (`lost`) has its own media:error line."""
        for device in event.added:
            self._say(presenter.device_plugged(device.name, device.max_output_channels > 0, True))
        for device in event.removed:
            if device not in event.lost:
                output = device.max_output_channels > 0
                self._say(presenter.device_plugged(device.name, output, False))
        self._show_devices(event.devices)
        screen = self._app.screen
        if isinstance(screen, DevicesScreen):
            screen.show_devices(event.devices)

    # -- device listings -----------------------------------------------------------------------

    def _show_devices(self, devices: DeviceList) -> None:
        self._devices = devices
        self.camera_label = devices.camera_label or devices.camera
        mic = devices.audio_in_label or devices.audio_in
        spk = devices.audio_out_label or devices.audio_out
        self._app.status.set_devices(
            mic,
            spk,
            presenter.honest_devices(
                mic, spk, devices.problem, devices.audio_in, devices.audio_out
            ),
        )

    def devices(self, devices: DeviceList, pick: bool) -> None:
        app = self._app
        self._show_devices(devices)
        if pick:
            app.push_screen(DevicesScreen(devices))
        elif devices.problem and not presenter.synthetic(devices.audio_in, devices.audio_out):
            self._say(presenter.device_problem(devices.problem))

    # -- statistics ----------------------------------------------------------------------------

    def stats(self, call_id: str, stats: dict[str, Any]) -> None:
        kbps = self._bitrate.update(call_id, stats, time.monotonic())
        selected = self._app.selected_view
        if selected is not None and selected.call.id == call_id:
            self._app.status.set_call_info(presenter.describe_stats(stats, kbps))


__all__ = ["ENDED_ROW_SECONDS", "EngineEvents"]
