"""The presenter alone: the words for events, a call's row and the status line's numbers."""

from __future__ import annotations

from dataclasses import replace

from softphone.engine import Call, CallState, EngineErrorCode, ErrorInfo
from softphone.engine.events import (
    CallStateChange,
    MediaDeviceChange,
    MediaOffered,
    PreviousState,
    Transition,
)
from softphone.tui import presenter
from softphone.tui.presenter import Bitrate, CallView, Line


def call(state: CallState = CallState.CONNECTED, **changes: object) -> Call:
    base = Call(
        id="c1",
        from_="alice",
        to="bob",
        direction="outgoing",
        state=state,
        local_hold=False,
        remote_hold=False,
        local_tracks=(),
        remote_tracks=(),
        media_offered=MediaOffered(),
        remote_participant="bob",
        start_time=1000.0,
        end_time=None,
        end_reason=None,
        muted=False,
        anonymous=False,
        server_id="s1",
        media_state="connected",
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def change(old: CallState, new: CallState, reason: str = "") -> CallStateChange:
    return CallStateChange("c1", PreviousState(old, False, False), Transition(reason), new)


def test_a_row_shows_party_direction_state_time_and_flags() -> None:
    view = CallView(call(CallState.RINGING))
    view.update(call(), now=1000.0)  # connected: the clock starts
    view.update(call(local_hold=True, muted=True, state=CallState.ON_HOLD), now=1001.0)
    view.sending_video = True
    assert view.row(now=1075.0) == {
        "party": "bob",
        "dir": "out",
        "state": "On Hold",
        "time": "1:15",
        "flags": "hold muted video",
    }
    assert view.live and view.established and not view.connected and not view.talking


def test_an_ended_row_says_why_and_stops_the_clock() -> None:
    view = CallView(call())
    view.update(call(), now=1000.0)
    view.update(call(CallState.ENDED, end_time=1030.0, end_reason="remote_ended"), now=1031.0)
    assert view.row(now=2000.0)["state"] == "Ended (remote_ended)"
    assert view.row(now=2000.0)["time"] == "0:30"
    assert not view.live and presenter.finished(view.call.state)


def test_state_lines_name_both_states_and_the_end_reason() -> None:
    assert presenter.state_changed("bob", change(CallState.RINGING, CallState.CONNECTED), "") == (
        Line("Call with bob: state changed from Ringing to Connected")
    )
    ended = presenter.state_changed("bob", change(CallState.CONNECTED, CallState.ENDED, "bye"), "")
    assert ended.text.endswith("from Connected to Ended (bye)")
    # A hold flag changed while the state stayed: the flags, or "resumed" when none is left.
    same = change(CallState.ON_HOLD, CallState.ON_HOLD)
    assert presenter.state_changed("bob", same, "hold held").text == "Call with bob: hold held"
    assert presenter.state_changed("bob", same, "").text == "Call with bob: resumed"


def test_errors_are_red_and_say_which_call() -> None:
    error = ErrorInfo(EngineErrorCode.GENERIC, "it broke")
    assert presenter.call_error("bob", error) == Line("Call with bob: it broke", error=True)
    assert presenter.call_error(None, error) == Line("it broke", error=True)
    assert presenter.could_not_call("nobody", error).error
    assert presenter.remote_audio("bob", arriving=False).error
    assert not presenter.remote_audio("bob", arriving=True).error


def test_the_test_pattern_is_said_plainly() -> None:
    chosen = presenter.sending_video("bob", "/dev/video0")
    assert chosen.text == "Call with bob: sending video from /dev/video0"
    assert "test pattern" in presenter.sending_video("bob", presenter.PATTERN_LABEL).text
    fallback = presenter.sending_video("bob", "/dev/video0", camera_failed=True)
    assert "test pattern" in fallback.text and "could not be opened" in fallback.text


def test_device_changes_count_the_calls_moved() -> None:
    one = MediaDeviceChange("camera", "pattern", "test pattern", ("c1",))
    assert presenter.device_changed(one).text == "Camera: now test pattern (1 live call moved)"
    none = MediaDeviceChange("audio_in", "tone", "tone 440 Hz")
    assert presenter.device_changed(none).text == "Microphone: now tone 440 Hz"


def test_connection_lines_and_the_banner_note() -> None:
    assert presenter.connection_lost("", 2.4).text == (
        "Lost the server connection (no reason given); retry in 2 s."
    )
    assert presenter.retry_text(None) == "retrying"
    assert presenter.keeps_media(0) == ""
    assert presenter.keeps_media(2) == " · 2 calls keep media"
    assert presenter.offline("") == Line("Offline: disconnected", error=True)


def test_stats_line_and_the_bitrate_between_changes() -> None:
    stats = {"audio": {"codec": "audio/opus", "packets_lost": 0, "jitter": 0.002}}
    assert presenter.call_numbers("bob", stats, 48.0) == "bob: opus 48 kb/s loss 0 jitter 2 ms"
    meter = Bitrate()
    first = {"audio": {"bytes_received": 1000}}
    assert meter.update("c1", first, now=10.0) is None  # one count is no rate yet
    assert meter.update("c1", {"audio": {"bytes_received": 7000}}, now=11.0) == 48.0
    # The same count again (no new report): the last rate stays.
    assert meter.update("c1", {"audio": {"bytes_received": 7000}}, now=11.5) == 48.0
    meter.forget("c1")
    assert meter.update("c1", first, now=12.0) is None
