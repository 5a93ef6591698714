"""What the TUI needs to start (built by the CLI from arguments and config); no Textual here."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class TuiOptions:
    """`server_url` empty means the embedded default (a server and the echo bot in-process)."""

    server_url: str = ""
    user: str = ""
    password: str | None = None
    video: bool = False
    show_video: bool = True  # remote video in its own window (a viewer process)
    audio_in: str = "default"
    audio_out: str = "default"
    camera: str = "pattern"  # what video calls send: "pattern", "default", "/dev/videoN", "N"
    # Where incoming calls ring: an audio_out spec, "none" (no ring tone; the bell still
    # rings), or "" for the speaker's device.
    ring_device: str = ""
    ring_sound: str = "tone"  # or wav:PATH
    # Incoming calls: answered at once (audio) when no other call is live, or not rung here
    # at all (left to the caller's other devices, or to time out). Toggled in the palette.
    auto_answer: bool = False
    do_not_disturb: bool = False
    # The microphone's processing ([client] echo_cancellation & co.; toggled in the palette).
    echo_cancellation: str = "auto"
    noise_suppression: bool = True
    auto_gain: bool = True
    embedded_data_dir: Path | None = None
    # Anonymous mode: no login; one call to `anonymous_to` placed at start. Token mode when
    # `token_file` (the JSON `softphone token` prints) or `token_url` (fetched) is given.
    anonymous: bool = False
    anonymous_to: str = ""
    anonymous_from: str = ""
    token_file: Path | None = None
    token_url: str = ""
    # Passed through to the engine and to its signaling client (tests: fast back-off).
    engine_options: dict[str, Any] = field(default_factory=dict)
    client_options: dict[str, Any] = field(default_factory=dict)


__all__ = ["TuiOptions"]
