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
        "state": "on hold",
        "time": "1:15",
        "flags": "on hold, muted, video",
    }
    assert view.live and view.established and not view.connected and not view.talking


def test_what_was_asked_shows_until_the_engine_confirms_it() -> None:
    view = CallView(call())
    view.pending = "muting…"
    assert view.row()["flags"] == "muting…"
    assert view.flag_words() == ["muting…"]


def test_long_names_are_cut_with_an_ellipsis_not_by_the_column() -> None:
    view = CallView(call(remote_participant="sip:bob@localhost.example"))
    assert view.row()["party"] == "sip:bob@localho…"
    assert len(view.row()["party"]) == 16
    guest = CallView(call(direction="incoming", anonymous=True, remote_participant="walk-in-42"))
    assert guest.row()["party"] == "walk-in… (guest)"  # the mark is never the part cut


def test_an_ended_row_says_why_in_the_words_of_the_log_and_stops_the_clock() -> None:
    view = CallView(call())
    view.update(call(), now=1000.0)
    ended = call(CallState.ENDED, end_time=1030.0, end_reason="hangup")
    view.update(ended, now=1031.0)
    event = change(CallState.CONNECTED, CallState.ENDED, "ended: hangup")
    view.ended = presenter.end_words(ended, event.transition.reason_text, "bob")
    assert view.row(now=2000.0)["state"] == "bob hung up"
    assert view.row(now=2000.0)["time"] == "0:30"
    line = presenter.state_changed("bob", event, ended)
    assert line is not None and line.text == "Call with bob ended: bob hung up."
    assert not view.live and presenter.finished(view.call.state)


def test_end_reasons_read_as_a_person_says_them() -> None:
    def words(reason: str, text: str, direction: str = "outgoing") -> str:
        ended = call(CallState.ENDED, end_reason=reason, direction=direction)
        return presenter.end_words(ended, text, "bob")

    assert words("hangup", "ended locally") == "you hung up"
    assert words("cancelled", "ended locally") == "you cancelled"
    assert words("rejected", "rejected by the remote party") == "bob declined"
    assert words("rejected", "rejected", "incoming") == "you declined"
    assert words("no_answer", "cancelled: no_answer") == "no answer"
    assert words("answered_elsewhere", "cancelled: x", "incoming") == "answered on another device"
    assert words("error", "server: unknown_user: no user named 'y'") == "failed: no such user"
    assert words("error", "media: the secure media connection (DTLS) failed") == (
        "failed: the secure media connection (DTLS) failed"
    )
    long = CallView(call(CallState.ENDED, end_reason="error"))
    long.ended = words("error", "the secure media connection (DTLS) failed")
    assert long.row()["state"] == "failed: the secure me…"  # cut by us, to the column
    missed = call(CallState.CANCELLED, end_reason="cancelled", direction="incoming")
    line = presenter.state_changed(
        "bob", change(CallState.RINGING, CallState.CANCELLED, "c"), missed
    )
    assert line == Line("Missed call from bob.")


def test_state_lines_are_plain_and_only_for_news() -> None:
    placing = change(CallState.INITIATING, CallState.INITIATED)
    assert presenter.state_changed("bob", placing, call(CallState.INITIATED)) is None
    ringing = change(CallState.INITIATED, CallState.RINGING)
    line = presenter.state_changed("bob", ringing, call(CallState.RINGING))
    assert line == Line("bob's phone is ringing.")
    up = change(CallState.RINGING, CallState.CONNECTED)
    assert presenter.state_changed("bob", up, call()) == Line("Connected to bob.")
    held = change(CallState.CONNECTED, CallState.ON_HOLD)
    on_hold = call(CallState.ON_HOLD, local_hold=True)
    assert presenter.state_changed("bob", held, on_hold) == Line("bob is on hold.")
    theirs = call(CallState.ON_HOLD, remote_hold=True)
    assert presenter.state_changed("bob", held, theirs) == Line("bob put you on hold.")


def test_errors_are_red_plain_and_keep_the_codes_for_the_log() -> None:
    error = ErrorInfo(EngineErrorCode.GENERIC, "server: unknown_user: no user named 'y'")
    line = presenter.call_error("bob", error)
    assert line.text == "Call with bob: no user named 'y'" and line.error
    assert "unknown_user" in line.detail
    assert presenter.call_error(None, ErrorInfo(EngineErrorCode.GENERIC, "it broke")).text == (
        "it broke"
    )
    assert presenter.could_not_call("nobody", error).error
    assert presenter.remote_audio("bob", arriving=False).error
    assert not presenter.remote_audio("bob", arriving=True).error


def test_an_anonymous_caller_is_marked_unverified() -> None:
    guest = call(direction="incoming", anonymous=True, remote_participant="alice")
    assert presenter.caller_name(guest) == "guest 'alice' (anonymous)"
    assert presenter.caller_name(call()) == "bob"


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


def test_no_sound_card_is_said_honestly() -> None:
    text = presenter.honest_devices("default", "default", "no devices", "default", "default")
    assert text == "no microphone: sending silence · no speaker: not playing"
    assert presenter.honest_devices("tone 440 Hz", "null", "", "tone", "null") == (
        "mic tone 440 Hz · spk null"
    )
    # No sound card, but nothing here needs one: said as it is.
    assert presenter.honest_devices("tone 440 Hz", "default", "none", "tone", "default") == (
        "mic tone 440 Hz · no speaker: not playing"
    )


def test_connection_lines_and_the_banner_note() -> None:
    lost = presenter.connection_lost("ClientConnectorError: refused")
    assert lost.text == "Lost the connection to the server; reconnecting."
    assert "refused" in lost.detail and "refused" not in lost.text
    assert presenter.keeps_media(0) == ""
    assert presenter.keeps_media(2) == " · 2 calls keep media"
    assert presenter.offline("") == Line("Offline: disconnected", error=True)


def test_meters_are_decibel_bars() -> None:
    assert presenter.meter(0.0) == "▯" * 8
    assert presenter.meter(1.0) == "▮" * 8
    assert presenter.meter(0.0625) == "▮▮▮▮▯▯▯▯"  # -24 dB: half way


def test_stats_line_both_ways_and_the_bitrate_between_changes() -> None:
    stats = {
        "audio": {
            "codec": "audio/opus",
            "packets_lost": 2,
            "remote_packets_lost": 1,
            "jitter": 0.002,
        }
    }
    assert presenter.describe_stats(stats, (32.0, 48.0)) == (
        "opus ↑32 ↓48 kb/s lost ↑1 ↓2 jitter 2 ms"
    )
    meter = Bitrate()
    first = {"audio": {"bytes_received": 1000, "bytes_sent": 0}}
    assert meter.update("c1", first, now=10.0) == (None, None)  # one count is no rate yet
    later = {"audio": {"bytes_received": 7000, "bytes_sent": 4000}}
    assert meter.update("c1", later, now=11.0) == (32.0, 48.0)
    # The same counts again (no new report): the last rates stay.
    assert meter.update("c1", later, now=11.5) == (32.0, 48.0)
    meter.forget("c1")
    assert meter.update("c1", first, now=12.0) == (None, None)
