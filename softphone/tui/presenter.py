"""What a person reads: the Messages line for each engine event, a call's row in the Calls pane
and the selected call's numbers on the status line. Pure: no Textual, no engine calls, no
clock of its own; the app decides where each line goes.

Plain words, one line per happening: no state names from the SDK ("Initiated"), no server
error codes, no retry chatter. The technical detail goes to the log file (`detail`), never to
the screen. An ended call's reason reads the same in its row and in Messages (`end_words`).

It imports the engine's types, so the app loads it only once the engine is loaded (after the
first paint)."""

from __future__ import annotations

import math
import re
import time
from dataclasses import dataclass, field
from typing import Any

from softphone.engine import Call, CallState, ErrorInfo
from softphone.engine.events import CallStateChange, MediaDeviceChange

PATTERN_LABEL = "test pattern"  # what the engine calls the pattern camera (DeviceList, events)
DEVICE_NAMES = {"audio_in": "Microphone", "audio_out": "Speaker", "camera": "Camera"}
STATE_WIDTH = 22  # the Calls pane's State column: longer states are cut here, with an ellipsis
_FINISHED = (CallState.ENDED, CallState.CANCELLED)
_ESTABLISHED = (CallState.CONNECTED, CallState.ON_HOLD)
_RINGING = (CallState.INITIATING, CallState.INITIATED, CallState.RINGING)
# How the engine's transition says that we ended the call (see engine/session.py `_finish`).
_ENDED_HERE = ("ended locally", "rejected", "engine stopped")
# "server: unknown_user: no user named 'y'" -> "no user named 'y'": codes are for the log.
_CODE_PREFIX = re.compile(r"^(?:(?:server|client|call|media)(?::\d+)?: )?(?:[a-z_]+: )?")


@dataclass(frozen=True, slots=True)
class Line:
    """One line for the message log; `error` lines are red. `detail` goes to the log file
    only (the technical reason behind the plain words)."""

    text: str
    error: bool = False
    detail: str = ""


def plain_error(message: str) -> str:
    """An error message without the codes in front of it."""
    return _CODE_PREFIX.sub("", message, count=1) or message


def short_party(party: str, width: int = 16) -> str:
    """A name (or a state) cut deliberately, with an ellipsis, rather than by the column:
    `sip:bob@localho…`."""
    return party if len(party) <= width else party[: width - 1] + "…"


# -- a call's row --------------------------------------------------------------------------------


@dataclass
class CallView:
    """What the Calls pane shows of a call: the engine's snapshot plus what the UI tracks."""

    call: Call
    sending_video: bool = False
    receiving_video: bool = False  # their video arrives (the video window can show it)
    connected_at: float | None = None
    # What the user just asked for and the engine has not confirmed yet ("muting…").
    pending: str = ""
    # How the call ended, in the words Messages used (set with the ending state change).
    ended: str = ""
    extra: dict[str, str] = field(default_factory=dict)

    def update(self, call: Call, now: float) -> None:
        self.call = call
        if call.state == CallState.CONNECTED and self.connected_at is None:
            self.connected_at = now

    @property
    def party(self) -> str:
        """Who the call is with; an anonymous caller is marked unverified."""
        return caller_name(self.call)

    @property
    def live(self) -> bool:
        return self.call.state not in _FINISHED

    @property
    def established(self) -> bool:
        """Connected or on hold: hold, resume and mute apply."""
        return self.call.state in _ESTABLISHED

    @property
    def connected(self) -> bool:
        """Connected: video and DTMF apply."""
        return self.call.state == CallState.CONNECTED

    @property
    def talking(self) -> bool:
        """Connected and not held by us: a second call holds this one first."""
        return self.connected and not self.call.local_hold

    def short_party(self) -> str:
        """For the row's 16 columns: an anonymous caller keeps its mark, the label is cut."""
        c = self.call
        if c.anonymous and c.direction == "incoming":
            return f"{short_party(c.remote_participant, 8)} (guest)"
        return short_party(self.party)

    def flag_words(self) -> list[str]:
        c = self.call
        words = [
            word
            for word, flag in (
                ("on hold", c.local_hold),
                ("held by them", c.remote_hold),
                ("muted", c.muted),
                ("video", self.sending_video),
            )
            if flag and self.live
        ]
        if self.pending and self.live:
            words.append(self.pending)
        return words

    def flags(self) -> str:
        return ", ".join(self.flag_words())

    def duration(self, now: float | None = None) -> str:
        if self.connected_at is None:
            return ""
        end = self.call.end_time if self.call.end_time is not None else now or time.time()
        seconds = max(0, int(end - self.connected_at))
        return f"{seconds // 60}:{seconds % 60:02d}"

    def state_text(self) -> str:
        if not self.live:
            return self.ended or "ended"
        return state_words(self.call)

    def row(self, now: float | None = None) -> dict[str, str]:
        """The Calls pane's cells, by column key."""
        return {
            "party": self.short_party(),
            "dir": "out" if self.call.direction == "outgoing" else "in",
            "state": short_party(self.state_text(), STATE_WIDTH),
            "time": self.duration(now),
            "flags": self.flags(),
        }


def caller_name(call: Call) -> str:
    """An anonymous caller names itself: say so, so it is never taken for the real user."""
    if call.anonymous and call.direction == "incoming":
        return f"guest '{call.remote_participant}' (anonymous)"
    return call.remote_participant


def state_words(call: Call) -> str:
    """A live call's state as the row says it."""
    match call.state:
        case CallState.INITIATING | CallState.INITIATED:
            return "calling…" if call.direction == "outgoing" else "incoming"
        case CallState.RINGING:
            return "ringing" if call.direction == "outgoing" else "ringing here"
        case CallState.CONNECTED:
            return "in call"
        case CallState.ON_HOLD:
            return "on hold"
        case _:
            return call.state.value.lower()


def end_words(call: Call, reason_text: str, party: str) -> str:
    """How a call ended, as a person says it; the same in the row and in Messages."""
    here = reason_text in _ENDED_HERE
    outgoing = call.direction == "outgoing"
    match call.end_reason:
        case "hangup":
            return "you hung up" if here else f"{party} hung up"
        case "cancelled":
            if outgoing:
                return "you cancelled" if here else "cancelled"
            return "missed: they hung up first"
        case "rejected":
            return "you declined" if here else f"{party} declined"
        case "no_answer":
            return "no answer" if outgoing else "missed: not answered"
        case "connection_lost":
            return "the connection was lost"
        case "answered_elsewhere":
            return "answered on another device"
        case "rejected_elsewhere":
            return "declined on another device"
        case "forwarded":
            return "forwarded"
        case "ignored":
            return "not answered here"
        case "stopped":
            return "the phone was closed"
        case "error":
            return failed_words(reason_text)
        case None | "":
            return "ended"
        case other:
            return str(other).replace("_", " ")


def recent_line(view: CallView, when: time.struct_time) -> str:
    """An ended call in Recent calls: when it started, with whom, which way, how long, how
    it ended."""
    way = "out" if view.call.direction == "outgoing" else "in"
    length = view.duration()
    return " · ".join(
        x for x in (time.strftime("%H:%M", when), view.party, way, length, view.state_text()) if x
    )


def _short_reason(reason: str) -> str:
    """The commonest failures in the fewest words (the row has 22 columns; Messages has the
    whole reason)."""
    if reason.startswith("no user named"):
        return "no such user"
    return reason


def failed_words(message: str) -> str:
    """A call that could not be placed, as its row says it."""
    return f"failed: {_short_reason(plain_error(message))}"


def stops_ringing(state: CallState) -> bool:
    """Whether a call in `state` leaves the Incoming pane (answered, ended, elsewhere...)."""
    return state not in _RINGING


def finished(state: CallState) -> bool:
    return state in _FINISHED


# -- Messages, per engine event ------------------------------------------------------------------


def calling(party: str) -> Line:
    return Line(f"Calling {party}…")


def could_not_call(party: str, error: ErrorInfo) -> Line:
    return Line(
        f"Could not call {party}: {plain_error(error.message)}",
        error=True,
        detail=f"{error.code.value}: {error.message}",
    )


def incoming(party: str, media: str) -> Line:
    return Line(f"{party} is calling ({media}): a answers, r declines.")


def state_changed(party: str, event: CallStateChange, call: Call) -> Line | None:
    """What a state change means to a person, or None when it is not news (the call moving
    through the steps of being placed)."""
    previous, state = event.previous, event.state
    if state in _FINISHED:
        words = end_words(call, event.transition.reason_text, party)
        if call.direction == "incoming" and words.startswith("missed"):
            return Line(f"Missed call from {party}.")
        return Line(f"Call with {party} ended: {words}.", detail=event.transition.reason_text)
    if previous.local_hold != call.local_hold:
        return Line(
            f"{party} is on hold." if call.local_hold else f"Resumed the call with {party}."
        )
    if previous.remote_hold != call.remote_hold:
        return Line(f"{party} put you on hold." if call.remote_hold else f"{party} is back.")
    if previous.state == state:
        return None
    if state == CallState.RINGING and call.direction == "outgoing":
        return Line(f"{party}'s phone is ringing.")
    if state == CallState.CONNECTED and previous.state in _RINGING:
        return Line(f"Connected to {party}.")
    return None


def muted(party: str, is_muted: bool) -> Line:
    if is_muted:
        return Line(f"Muted: {party} hears nothing from you (m unmutes).")
    return Line(f"Unmuted: {party} hears you again.")


def remote_track(party: str, kind: str, started: bool) -> Line | None:
    """Their video starting or stopping is news; their audio comes with Connected."""
    if kind != "video":
        return None
    return Line(f"{party} {'started' if started else 'stopped'} sending video.")


def sending_video(party: str, camera_label: str, camera_failed: bool = False) -> Line:
    """Our video started: from which camera, and plainly when it is only the test pattern."""
    if camera_failed:
        return Line(
            f"Call with {party}: sending the test pattern as video (the camera could not be opened)"
        )
    if camera_label == PATTERN_LABEL:
        return Line(
            f"Call with {party}: sending the test pattern as video (no camera chosen: "
            "--camera, [client] camera or Devices)"
        )
    return Line(f"Call with {party}: sending video from {camera_label or 'the camera'}")


def dtmf_received(party: str, digits: str) -> Line:
    return Line(f"{party} pressed {digits}.")


def call_error(party: str | None, error: ErrorInfo) -> Line:
    where = f"Call with {party}: " if party is not None else ""
    text = plain_error(error.message)
    return Line(f"{where}{text}", error=True, detail=f"{error.code.value}: {error.message}")


def media_connection_failed(party: str) -> Line:
    return Line(f"Call with {party}: the media connection failed", error=True)


def remote_audio(party: str, arriving: bool) -> Line:
    if arriving:
        return Line(f"Call with {party}: their audio is back")
    return Line(f"Call with {party}: their audio stopped arriving", error=True)


def device_changed(event: MediaDeviceChange) -> Line:
    moved = len(event.call_ids)
    calls = f" ({moved} live call{'s' if moved != 1 else ''} moved)" if moved else ""
    return Line(f"{DEVICE_NAMES.get(event.kind, event.kind)}: now {event.label}{calls}")


def device_plugged(name: str, output: bool, plugged: bool) -> Line:
    """A device came or went (the sound server said so): "Speaker 'USB headset' plugged in"."""
    what = DEVICE_NAMES["audio_out" if output else "audio_in"]
    return Line(f"{what} {name!r} {'plugged in' if plugged else 'unplugged'}")


# -- the server connection -----------------------------------------------------------------------


def retry_text(retry_in: float | None) -> str:
    return f"retry in {retry_in:.0f} s" if retry_in else "retrying"


def keeps_media(live: int) -> str:
    """The banner's note on what an outage does not touch."""
    if not live:
        return ""
    return " · the call keeps its media" if live == 1 else f" · {live} calls keep media"


def connected_as(user: str, url: str) -> Line:
    return Line(f"Logged in as {user} on {url}.")


def connection_back() -> Line:
    return Line("Connected to the server again.")


def connection_lost(reason: str) -> Line:
    """Said once per outage; the status line counts down the retries."""
    return Line("Lost the connection to the server; reconnecting.", detail=reason)


def unreachable(url: str, reason: str) -> Line:
    """Said once when the server does not answer at start; retries go on until it does."""
    return Line(f"Cannot reach the server at {url}; trying again until it answers.", detail=reason)


def offline(reason: str) -> Line:
    return Line(f"Offline: {plain_error(reason) or 'disconnected'}", error=True, detail=reason)


def login_refused(user: str) -> Line:
    return Line(
        f"The server refused the password for {user}: log in again (l, or Log in in the palette).",
        error=True,
    )


def server_error(error: object) -> Line:
    return Line(f"Server: {plain_error(str(error))}", error=True, detail=str(error))


def signed_out(reason: str) -> Line:
    words = {
        "expired": "your session expired",
        "replaced": "you logged in somewhere else",
        "gone": "the server ended your session",
        "logged_out": "you were logged out",
    }.get(reason, reason.replace("_", " "))
    return Line(f"Signed out: {words}. Log in again with l.", error=True, detail=reason)


# -- start-up ------------------------------------------------------------------------------------


def device_problem(problem: str) -> Line:
    return Line(f"{problem} Calls go on without sound; see `softphone devices`.")


def synthetic(*specs: str) -> bool:
    """True when no spec needs a sound card (tones, silence, WAV files, the null sink)."""
    return all(
        s.split(":")[0] in ("tone", "silence", "null") or s.lower().endswith(".wav") for s in specs
    )


def honest_devices(microphone: str, speaker: str, problem: str, in_spec: str, out_spec: str) -> str:
    """The status line's devices: what is really used, and plainly when there is no sound
    card ("no microphone: sending silence")."""
    if problem:
        mic = f"mic {microphone}" if synthetic(in_spec) else "no microphone: sending silence"
        spk = f"spk {speaker}" if synthetic(out_spec) else "no speaker: not playing"
        return f"{mic} · {spk}"
    return f"mic {microphone or '?'} · spk {speaker or '?'}"


# -- the selected call's numbers -----------------------------------------------------------------


def describe_stats(stats: dict[str, Any], kbps: tuple[float | None, float | None]) -> str:
    """`opus ↑32 ↓31 kb/s lost ↑0 ↓0 jitter 2 ms RTT 1 ms`: both directions where known."""
    audio = stats.get("audio") or {}
    parts: list[str] = []
    codec = audio.get("codec")
    if codec:
        parts.append(str(codec).split("/")[-1])
    up, down = kbps
    if up is not None or down is not None:
        parts.append(f"↑{_num(up)} ↓{_num(down)} kb/s")
    lost_in = audio.get("packets_lost")
    lost_out = audio.get("remote_packets_lost")
    if lost_in is not None or lost_out is not None:
        parts.append(f"lost ↑{_num(lost_out)} ↓{_num(lost_in)}")
    jitter = audio.get("jitter")
    if jitter is not None:
        parts.append(f"jitter {float(jitter) * 1000:.0f} ms")
    rtt = audio.get("round_trip_time")
    if rtt is not None:
        parts.append(f"RTT {float(rtt) * 1000:.0f} ms")
    return " ".join(parts)


def _num(value: float | None) -> str:
    return "?" if value is None else f"{value:.0f}"


def meter(level: float, width: int = 8) -> str:
    """A level (0..1 of full scale, as `media:levels` gives it) as a bar: dB scaled, so
    speech shows (-48 dB is empty, 0 dB full)."""

    if level <= 0:
        filled = 0
    else:
        db = 20 * math.log10(min(1.0, level))
        filled = max(0, min(width, round((db + 48) / 48 * width)))
    return "▮" * filled + "▯" * (width - filled)


class Bitrate:
    """Audio bitrate per call and direction, from successive byte counts.

    A count may come from the far end's reports, which arrive about once a second: each rate
    is measured between changes and shown until the next one."""

    _KEYS = {"down": ("bytes_received", "remote_bytes_sent"), "up": ("bytes_sent",)}

    def __init__(self) -> None:
        self._last: dict[tuple[str, str], tuple[float, int, float | None]] = {}

    def update(
        self, call_id: str, stats: dict[str, Any], now: float
    ) -> tuple[float | None, float | None]:
        """(sent, received) kb/s."""
        audio = stats.get("audio") or {}
        return self._rate(call_id, "up", audio, now), self._rate(call_id, "down", audio, now)

    def _rate(self, call_id: str, way: str, audio: dict[str, Any], now: float) -> float | None:
        count = next((audio[k] for k in self._KEYS[way] if isinstance(audio.get(k), int)), None)
        if count is None:
            return None
        last = self._last.get((call_id, way))
        if last is not None and count == last[1]:
            return last[2]
        kbps = None
        if last is not None and now > last[0]:
            kbps = (count - last[1]) * 8 / 1000 / (now - last[0])
        self._last[(call_id, way)] = (now, count, kbps)
        return kbps

    def forget(self, call_id: str) -> None:
        for way in self._KEYS:
            self._last.pop((call_id, way), None)


__all__ = [
    "Bitrate",
    "CallView",
    "Line",
    "caller_name",
    "describe_stats",
    "end_words",
    "finished",
    "meter",
    "plain_error",
    "recent_line",
    "state_changed",
    "stops_ringing",
]
