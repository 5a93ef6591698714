"""Fast checks without a server: state machine data, hold derivation from SDP, import rules."""

from __future__ import annotations

import subprocess
import sys

import pytest

from softphone.engine.sdp import holds, sdp_directions
from softphone.engine.states import (
    TERMINAL,
    TRANSITIONS,
    CallState,
    can_transition,
    check_transition,
)

S = CallState


def test_state_names_and_values_are_the_sdks() -> None:
    assert [(s.name, s.value) for s in CallState] == [
        ("INITIATING", "Initiating"),
        ("INITIATED", "Initiated"),
        ("RINGING", "Ringing"),
        ("EARLY_MEDIA", "Early Media"),
        ("CANCELLED", "Cancelled"),
        ("CONNECTED", "Connected"),
        ("ON_HOLD", "On Hold"),
        ("ENDED", "Ended"),
    ]


def test_transitions() -> None:
    assert set(TRANSITIONS) == set(CallState)
    for terminal in TERMINAL:
        assert not TRANSITIONS[terminal]
    assert can_transition(S.RINGING, S.CANCELLED)
    assert can_transition(S.ON_HOLD, S.ON_HOLD)
    assert not can_transition(S.CONNECTED, S.CANCELLED)  # the callee never cancels after answer
    assert not can_transition(S.CONNECTED, S.RINGING)
    assert not can_transition(S.ENDED, S.CONNECTED)
    assert all(can_transition(s, S.ENDED) for s in CallState if s not in TERMINAL)
    with pytest.raises(ValueError):
        check_transition(S.CANCELLED, S.ENDED)


def sdp(*directions: str) -> str:
    lines = ["v=0", "o=- 1 1 IN IP4 127.0.0.1", "s=-", "t=0 0"]
    for kind, direction in zip(("audio", "video"), directions, strict=False):
        lines += [f"m={kind} 9 UDP/TLS/RTP/SAVPF 96", "c=IN IP4 0.0.0.0", f"a={direction}"]
        lines += ["a=rtpmap:96 opus/48000/2" if kind == "audio" else "a=rtpmap:96 VP8/90000"]
    return "\r\n".join(lines) + "\r\n"


@pytest.mark.parametrize(
    ("direction", "held"),
    [("sendrecv", False), ("recvonly", False), ("sendonly", True), ("inactive", True)],
)
def test_a_side_holds_when_its_description_does_not_receive(direction: str, held: bool) -> None:
    assert holds(sdp(direction)) is held
    assert holds(sdp(direction, "sendrecv")) is held  # audio decides
    assert sdp_directions(sdp(direction, "inactive")) == [
        ("audio", direction),
        ("video", "inactive"),
    ]


def test_no_description_is_no_hold() -> None:
    assert holds(None) is False


def test_engine_imports_no_ui_server_or_config() -> None:
    code = (
        "import sys, softphone.engine, softphone.bots.echo\n"
        "banned = ('textual', 'softphone.server', 'softphone.config', 'softphone.tui',"
        " 'softphone.cli')\n"
        "print([m for m in sys.modules if any(m == b or m.startswith(b + '.') for b in banned)])\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
