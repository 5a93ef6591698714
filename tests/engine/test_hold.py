"""Hold and unhold from both sides: flags derived from the negotiated SDP, media stops and
resumes (measured as received level)."""

from __future__ import annotations

import pytest

from softphone.engine import Call, CallState
from softphone.engine.events import CallStateChange, PreviousState
from softphone.server.runner import RunningServer
from tests.engine.conftest import Parties
from tests.engine.test_calls import connect

S = CallState
LOUD, QUIET = 0.05, 0.005


def flags(call: Call) -> tuple[str, bool, bool]:
    return (call.state.value, call.local_hold, call.remote_hold)


async def test_hold_and_unhold_from_both_sides(server: RunningServer, parties: Parties) -> None:
    alice = await parties.online(server, "alice", audio_in="tone:1000")
    bob = await parties.online(server, "bob", audio_in="tone:600")
    a_id, b_id = await connect(alice, bob)
    assert await alice.ears.level() > LOUD

    # alice holds: both go On Hold, alice's hold is local, bob's remote; no media either way.
    await alice.engine.hold(a_id)
    await bob.events.state(b_id, S.ON_HOLD)
    assert flags(alice.engine.get(a_id)) == ("On Hold", True, False)
    assert flags(bob.engine.get(b_id)) == ("On Hold", False, True)
    assert await bob.ears.level() < QUIET
    assert await alice.ears.level() < QUIET

    # bob holds too (dual hold): On Hold → On Hold with the previous flags.
    await bob.engine.hold(b_id)
    await alice.events.wait(
        CallStateChange,
        lambda e: e.call_id == a_id and e.previous == PreviousState(S.ON_HOLD, True, False),
    )
    assert flags(alice.engine.get(a_id)) == ("On Hold", True, True)
    assert flags(bob.engine.get(b_id)) == ("On Hold", True, True)

    # alice releases her hold: still On Hold (bob holds).
    await alice.engine.unhold(a_id)
    assert flags(alice.engine.get(a_id)) == ("On Hold", False, True)
    await bob.events.wait(
        CallStateChange,
        lambda e: e.call_id == b_id and e.previous == PreviousState(S.ON_HOLD, True, True),
    )
    assert flags(bob.engine.get(b_id)) == ("On Hold", True, False)
    assert await alice.ears.level() < QUIET

    # bob releases his: Connected, media flows both ways again.
    await bob.engine.unhold(b_id)
    await alice.events.wait(  # (not the first Connected, from the answer)
        CallStateChange,
        lambda e: e.call_id == a_id and e.previous == PreviousState(S.ON_HOLD, False, True),
    )
    assert flags(alice.engine.get(a_id)) == ("Connected", False, False)
    assert flags(bob.engine.get(b_id)) == ("Connected", False, False)
    assert await alice.ears.frequency() == pytest.approx(600, abs=20)
    assert await bob.ears.frequency() == pytest.approx(1000, abs=20)

    assert [
        (c.previous.state.value, c.previous.local_hold, c.previous.remote_hold, c.state.value)
        for c in alice.events.changes(a_id)
    ] == [
        ("Initiating", False, False, "Initiated"),
        ("Initiated", False, False, "Ringing"),
        ("Ringing", False, False, "Connected"),
        ("Connected", False, False, "On Hold"),
        ("On Hold", True, False, "On Hold"),
        ("On Hold", True, True, "On Hold"),
        ("On Hold", False, True, "Connected"),
    ]
    assert [(c.previous.state.value, c.state.value) for c in bob.events.changes(b_id)] == [
        ("Initiating", "Ringing"),
        ("Ringing", "Connected"),
        ("Connected", "On Hold"),
        ("On Hold", "On Hold"),
        ("On Hold", "On Hold"),
        ("On Hold", "Connected"),
    ]
