"""What a person reads: the Messages line for each engine event, a call's row in the Calls pane
and the selected call's numbers on the status line. Pure: no Textual, no engine calls, no
clock of its own; the app decides where each line goes.

It imports the engine's types, so the app loads it only once the engine is loaded (after the
first paint)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from softphone.engine import Call, CallState, ErrorInfo
from softphone.engine.events import (
    CallStateChange,
    MediaDeviceChange,
)

PATTERN_LABEL = "test pattern"  # what the engine calls the pattern camera (DeviceList, events)
DEVICE_NAMES = {"audio_in": "Microphone", "audio_out": "Speaker", "camera": "Camera"}
_FINISHED = (CallState.ENDED, CallState.CANCELLED)
_ESTABLISHED = (CallState.CONNECTED, CallState.ON_HOLD)
_RINGING = (CallState.INITIATING, CallState.INITIATED, CallState.RINGING)


@dataclass(frozen=True, slots=True)
class Line:
    """One line for the message log; `error` lines are red."""

    text: str
    error: bool = False


# -- a call's row --------------------------------------------------------------------------------


@dataclass
class CallView:
    """What the Calls pane shows of a call: the engine's snapshot plus what the UI tracks."""

    call: Call
    sending_video: bool = False
    connected_at: float | None = None
    extra: dict[str, str] = field(default_factory=dict)

    def update(self, call: Call, now: float) -> None:
        self.call = call
        if call.state == CallState.CONNECTED and self.connected_at is None:
            self.connected_at = now

    @property
    def party(self) -> str:
        return self.call.remote_participant

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

    def flags(self) -> str:
        c = self.call
        words = [
            word
            for word, flag in (
                ("hold", c.local_hold),
                ("held", c.remote_hold),
                ("muted", c.muted),
                ("video", self.sending_video),
            )
            if flag
        ]
        return " ".join(words)

    def duration(self, now: float | None = None) -> str:
        if self.connected_at is None:
            return ""
        end = self.call.end_time if self.call.end_time is not None else now or time.time()
        seconds = max(0, int(end - self.connected_at))
        return f"{seconds // 60}:{seconds % 60:02d}"

    def state_text(self) -> str:
        c = self.call
        if c.end_reason and not self.live:
            return f"{c.state.value} ({c.end_reason})"
        return c.state.value

    def row(self, now: float | None = None) -> dict[str, str]:
        """The Calls pane's cells, by column key."""
        return {
            "party": self.party,
            "dir": "out" if self.call.direction == "outgoing" else "in",
            "state": self.state_text(),
            "time": self.duration(now),
            "flags": self.flags(),
        }


def stops_ringing(state: CallState) -> bool:
    """Whether a call in `state` leaves the Incoming pane (answered, ended, elsewhere...)."""
    return state not in _RINGING


def finished(state: CallState) -> bool:
    return state in _FINISHED


# -- Messages, per engine event ------------------------------------------------------------------


def calling(party: str) -> Line:
    return Line(f"Calling {party}…")


def could_not_call(party: str, error: ErrorInfo) -> Line:
    return Line(f"Could not call {party}: {error.message}", error=True)


def incoming(party: str, media: str) -> Line:
    return Line(f"Incoming call from {party} ({media}): press a to answer.")


def state_changed(party: str, event: CallStateChange, flags: str) -> Line:
    """A new state, or (same state) a hold flag that changed: say what the call is now."""
    previous, state = event.previous.state, event.state
    if previous != state:
        reason = event.transition.reason_text
        because = f" ({reason})" if reason and state in _FINISHED else ""
        return Line(
            f"Call with {party}: state changed from {previous.value} to {state.value}{because}"
        )
    return Line(f"Call with {party}: {flags or 'resumed'}")


def remote_track(party: str, kind: str, started: bool) -> Line:
    verb = "receiving" if started else "no longer receiving"
    return Line(f"Call with {party}: {verb} {kind}")


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
    return Line(f"Call with {party}: received DTMF {digits}")


def call_error(party: str | None, error: ErrorInfo) -> Line:
    where = f"Call with {party}: " if party is not None else ""
    return Line(f"{where}{error.message}", error=True)


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


# -- the server connection -----------------------------------------------------------------------


def retry_text(retry_in: float | None) -> str:
    return f"retry in {retry_in:.0f} s" if retry_in else "retrying"


def keeps_media(live: int) -> str:
    """The banner's note on what an outage does not touch."""
    if not live:
        return ""
    return " · the call keeps its media" if live == 1 else f" · {live} calls keep media"


def connection_back() -> Line:
    return Line("Connection to the server is back.")


def connection_lost(reason: str, retry_in: float | None) -> Line:
    return Line(
        f"Lost the server connection ({reason or 'no reason given'}); {retry_text(retry_in)}."
    )


def offline(reason: str) -> Line:
    return Line(f"Offline: {reason or 'disconnected'}", error=True)


def server_error(error: object) -> Line:
    return Line(f"Server: {error}", error=True)


def signed_out(reason: str) -> Line:
    return Line(f"Signed out by the server ({reason})", error=True)


# -- start-up ------------------------------------------------------------------------------------


def device_problem(problem: str) -> Line:
    return Line(f"{problem} Calls go on without sound; see `softphone devices`.")


def synthetic(*specs: str) -> bool:
    """True when no spec needs a sound card (tones, silence, WAV files, the null sink)."""
    return all(
        s.split(":")[0] in ("tone", "silence", "null") or s.lower().endswith(".wav") for s in specs
    )


# -- the selected call's numbers -----------------------------------------------------------------


def describe_stats(stats: dict[str, Any], kbps: float | None) -> str:
    """`Opus 48 kb/s loss 0 jitter 2 ms RTT 1 ms` from the engine's stats summary."""
    audio = stats.get("audio") or {}
    parts: list[str] = []
    codec = audio.get("codec")
    if codec:
        parts.append(str(codec).split("/")[-1])
    if kbps is not None:
        parts.append(f"{kbps:.0f} kb/s")
    lost = audio.get("packets_lost")
    if lost is not None:
        parts.append(f"loss {lost}")
    jitter = audio.get("jitter")
    if jitter is not None:
        parts.append(f"jitter {float(jitter) * 1000:.0f} ms")
    rtt = audio.get("round_trip_time")
    if rtt is not None:
        parts.append(f"RTT {float(rtt) * 1000:.0f} ms")
    return " ".join(parts)


def call_numbers(party: str, stats: dict[str, Any], kbps: float | None) -> str:
    return f"{party}: {describe_stats(stats, kbps)}"


class Bitrate:
    """Received audio bitrate per call, from successive byte counts.

    The count may come from the far end's sender reports, which arrive about once a second:
    the rate is measured between changes and shown until the next one."""

    def __init__(self) -> None:
        self._last: dict[str, tuple[float, int, float | None]] = {}

    def update(self, call_id: str, stats: dict[str, Any], now: float) -> float | None:
        audio = stats.get("audio") or {}
        received = audio.get("bytes_received", audio.get("remote_bytes_sent"))
        if not isinstance(received, int):
            return None
        last = self._last.get(call_id)
        if last is not None and received == last[1]:
            return last[2]
        kbps = None
        if last is not None and now > last[0]:
            kbps = (received - last[1]) * 8 / 1000 / (now - last[0])
        self._last[call_id] = (now, received, kbps)
        return kbps

    def forget(self, call_id: str) -> None:
        self._last.pop(call_id, None)


__all__ = [
    "Bitrate",
    "CallView",
    "Line",
    "call_numbers",
    "describe_stats",
    "finished",
    "state_changed",
    "stops_ringing",
]
