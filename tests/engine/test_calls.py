"""Call flows between two engines through the real server, with real audio on loopback."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from softphone.engine import CallState, EngineError
from softphone.engine.events import (
    CallDtmfReceived,
    CallError,
    CallReceive,
    CallStart,
    CallStateChange,
    CallTrackEnded,
    MediaError,
)
from softphone.server.runner import RunningServer
from tests.engine.conftest import Parties, Party, ServerFactory

S = CallState


async def connect(alice: Party, bob: Party, **make: object) -> tuple[str, str]:
    """alice calls bob, bob answers; returns (alice's call id, bob's call id)."""
    a_id = await alice.engine.make("bob", **make)  # type: ignore[arg-type]
    received = await bob.events.wait(CallReceive)
    b_id = received.call_id
    await bob.events.state(b_id, S.RINGING)
    await alice.events.state(a_id, S.RINGING)
    await bob.engine.answer(b_id)
    await alice.events.state(a_id, S.CONNECTED)
    return a_id, b_id


async def test_answered_call_carries_audio_both_ways(
    server: RunningServer, parties: Parties
) -> None:
    alice = await parties.online(server, "alice", audio_in="tone:1000")
    bob = await parties.online(server, "bob", audio_in="tone:600")

    a_id, b_id = await connect(alice, bob)

    assert isinstance(alice.events.of(a_id)[0], CallStart)
    assert alice.events.states(a_id) == ["Initiated", "Ringing", "Connected"]
    assert bob.events.states(b_id) == ["Ringing", "Connected"]
    assert bob.events.names(b_id)[0] == "call:receive"
    a_call, b_call = alice.engine.get(a_id), bob.engine.get(b_id)
    assert (a_call.direction, a_call.to, a_call.remote_participant) == ("outgoing", "bob", "bob")
    assert (b_call.direction, b_call.from_, b_call.remote_participant) == (
        "incoming",
        "alice",
        "alice",
    )
    assert a_call.state == b_call.state == S.CONNECTED
    assert a_call.local_tracks == ("local:audio:0",)
    assert a_call.remote_tracks == ("remote:audio:0",)
    assert b_call.local_tracks == ("local:audio:0",)

    assert await bob.ears.frequency() == pytest.approx(1000, abs=20)
    assert await alice.ears.frequency() == pytest.approx(600, abs=20)

    assert alice.engine.get(a_id).media_state == "completed"
    assert bob.engine.get(b_id).media_state == "completed"
    stats = await alice.engine.get_stats(a_id)
    assert stats["audio"]["packets_sent"] > 0
    assert stats["audio"]["codec"]

    await alice.engine.end(a_id)
    await bob.events.state(b_id, S.ENDED)
    assert alice.events.states(a_id)[-1] == "Ended"
    assert alice.engine.get(a_id).end_reason == "hangup"
    assert bob.engine.get(b_id).end_reason == "hangup"
    assert bob.events.states(b_id) == ["Ringing", "Connected", "Ended"]
    assert alice.engine.get(a_id).local_tracks == ()


async def test_rejected_call_ends_on_both_sides(server: RunningServer, parties: Parties) -> None:
    alice = await parties.online(server, "alice")
    bob = await parties.online(server, "bob")
    a_id = await alice.engine.make("bob")
    b_id = (await bob.events.wait(CallReceive)).call_id
    await alice.events.state(a_id, S.RINGING)

    await bob.engine.reject(b_id)
    await alice.events.state(a_id, S.ENDED)

    assert alice.events.states(a_id) == ["Initiated", "Ringing", "Ended"]
    assert bob.events.states(b_id) == ["Ringing", "Ended"]
    assert alice.engine.get(a_id).end_reason == "rejected"
    assert bob.engine.get(b_id).end_reason == "rejected"
    assert alice.engine.get(a_id).end_time is not None


async def test_caller_cancels_while_ringing(server: RunningServer, parties: Parties) -> None:
    alice = await parties.online(server, "alice")
    bob = await parties.online(server, "bob")
    a_id = await alice.engine.make("bob")
    b_id = (await bob.events.wait(CallReceive)).call_id
    await alice.events.state(a_id, S.RINGING)

    await alice.engine.end(a_id)
    await bob.events.state(b_id, S.CANCELLED)

    assert alice.events.states(a_id) == ["Initiated", "Ringing", "Ended"]
    assert alice.engine.get(a_id).end_reason == "cancelled"
    assert bob.events.states(b_id) == ["Ringing", "Cancelled"]
    assert bob.engine.get(b_id).state == S.CANCELLED
    assert bob.engine.get(b_id).end_reason == "cancelled"


async def test_no_answer(start_server: ServerFactory, parties: Parties) -> None:
    server = await start_server(ring_timeout=1)
    alice = await parties.online(server, "alice")
    bob = await parties.online(server, "bob")
    a_id = await alice.engine.make("bob")
    b_id = (await bob.events.wait(CallReceive)).call_id

    await alice.events.state(a_id, S.ENDED, timeout=5)
    await bob.events.state(b_id, S.CANCELLED, timeout=5)

    assert alice.events.states(a_id) == ["Initiated", "Ringing", "Ended"]
    assert alice.engine.get(a_id).end_reason == "no_answer"
    assert bob.events.states(b_id) == ["Ringing", "Cancelled"]
    assert bob.engine.get(b_id).end_reason == "no_answer"


async def test_remote_hangs_up(server: RunningServer, parties: Parties) -> None:
    alice = await parties.online(server, "alice")
    bob = await parties.online(server, "bob")
    a_id, b_id = await connect(alice, bob)

    await bob.engine.end(b_id)
    ended = await alice.events.state(a_id, S.ENDED)

    assert ended.previous.state == S.CONNECTED
    assert alice.events.states(a_id) == ["Initiated", "Ringing", "Connected", "Ended"]
    assert bob.events.states(b_id) == ["Ringing", "Connected", "Ended"]
    assert alice.engine.get(a_id).end_reason == "hangup"
    ended_tracks = [e for e in alice.events.of(a_id) if isinstance(e, CallTrackEnded)]
    assert {(e.track_id, e.local) for e in ended_tracks} == {
        ("local:audio:0", True),
        ("remote:audio:0", False),
    }
    assert alice.engine.get(a_id).media_state == "closed"


async def test_operation_in_wrong_state_changes_nothing(
    server: RunningServer, parties: Parties
) -> None:
    alice = await parties.online(server, "alice")
    bob = await parties.online(server, "bob")
    a_id = await alice.engine.make("bob")
    b_id = (await bob.events.wait(CallReceive)).call_id
    await alice.events.state(a_id, S.RINGING)
    await bob.events.state(b_id, S.RINGING)
    before_a, before_b = alice.engine.get(a_id), bob.engine.get(b_id)
    events_a = len(alice.events.events)

    attempts = [
        alice.engine.answer(a_id),  # the caller cannot answer
        alice.engine.reject(a_id),
        alice.engine.hold(a_id),  # not connected yet
        bob.engine.unhold(b_id),
        bob.engine.send_dtmf(b_id, "1"),
        alice.engine.get_stats(a_id),
    ]
    for attempt in attempts:
        with pytest.raises(EngineError) as caught:
            await attempt
        assert caught.value.code == "call:6"

    assert alice.engine.get(a_id) == before_a
    assert bob.engine.get(b_id) == before_b
    assert len(alice.events.events) == events_a

    await bob.engine.answer(b_id)
    await alice.events.state(a_id, S.CONNECTED)
    with pytest.raises(EngineError) as caught:
        await bob.engine.answer(b_id)  # twice
    assert caught.value.code == "call:6"
    with pytest.raises(EngineError) as caught:
        await alice.engine.unhold(a_id)  # not held
    assert caught.value.code == "call:6"
    await alice.engine.end(a_id)
    with pytest.raises(EngineError) as caught:
        await alice.engine.end(a_id)
    assert caught.value.code == "call:6"
    with pytest.raises(EngineError) as caught:
        await alice.engine.answer("no-such-call")
    assert caught.value.code == "call:7"


async def test_mute_sends_silence_until_unmuted(server: RunningServer, parties: Parties) -> None:
    alice = await parties.online(server, "alice", audio_in="tone:1000")
    bob = await parties.online(server, "bob")
    a_id, _b_id = await connect(alice, bob)
    assert await bob.ears.level() > 0.05

    await alice.engine.mute(a_id)
    assert alice.engine.get(a_id).muted
    assert await bob.ears.level() < 0.005

    await alice.engine.unmute(a_id)
    assert not alice.engine.get(a_id).muted
    assert await bob.ears.frequency() == pytest.approx(1000, abs=20)
    assert alice.events.states(a_id) == ["Initiated", "Ringing", "Connected"]  # no signaling


async def test_dtmf_signaled_and_inband(server: RunningServer, parties: Parties) -> None:
    alice = await parties.online(server, "alice", audio_in="silence")
    bob = await parties.online(server, "bob")
    a_id, b_id = await connect(alice, bob)
    await bob.ears.listen(0.2)

    await alice.engine.send_dtmf(a_id, "123#")

    await bob.events.wait(CallDtmfReceived, lambda e: e.source == "signaled")
    await bob.events.wait(
        CallDtmfReceived, lambda e: e.source == "inband" and e.digits == "#", timeout=5
    )
    dtmf = [e for e in bob.events.of(b_id) if isinstance(e, CallDtmfReceived)]
    assert [e.digits for e in dtmf if e.source == "signaled"] == ["123#"]
    assert "".join(e.digits for e in dtmf if e.source == "inband") == "123#"
    with pytest.raises(EngineError) as caught:
        await alice.engine.send_dtmf(a_id, "12x")
    assert caught.value.code == "call:7"


async def test_call_to_unknown_user_ends_with_error(
    server: RunningServer, parties: Parties
) -> None:
    alice = await parties.online(server, "alice")
    a_id = await alice.engine.make("nobody")
    await alice.events.state(a_id, S.ENDED)
    starts = [e for e in alice.events.of(a_id) if isinstance(e, CallStart)]
    assert starts[0].error is None and starts[1].error is not None
    assert "call:error" in alice.events.names(a_id)
    assert alice.events.names(a_id)[-1] == "call:stateChange"
    assert alice.events.states(a_id) == ["Ended"]
    assert alice.engine.get(a_id).end_reason == "error"


async def test_ignore_is_local_only(server: RunningServer, parties: Parties) -> None:
    alice = await parties.online(server, "alice")
    bob = await parties.online(server, "bob")
    a_id = await alice.engine.make("bob")
    b_id = (await bob.events.wait(CallReceive)).call_id
    await bob.events.state(b_id, S.RINGING)

    await bob.engine.ignore(b_id)

    assert bob.engine.get(b_id).state == S.ENDED
    assert bob.engine.get(b_id).end_reason == "ignored"
    await asyncio.sleep(0.3)
    assert alice.engine.get(a_id).state == S.RINGING  # still ringing for the caller
    await alice.engine.end(a_id)


async def test_unavailable_audio_source_falls_back_to_silence(
    server: RunningServer, parties: Parties, tmp_path: Path
) -> None:
    alice = await parties.online(server, "alice", audio_in=str(tmp_path / "missing.wav"))
    bob = await parties.online(server, "bob", audio_out="no-such-device-xyz")
    a_id, b_id = await connect(alice, bob)

    errors_a = [e for e in alice.events.events if isinstance(e, MediaError)]
    errors_b = [e for e in bob.events.events if isinstance(e, MediaError)]
    assert [e.call_id for e in errors_a] == [a_id]
    assert [e.call_id for e in errors_b] == [b_id]
    assert await bob.ears.level() < 0.005  # silence instead, and the call goes on
    assert alice.engine.get(a_id).state == S.CONNECTED


async def test_simultaneous_holds_resolve_glare(server: RunningServer, parties: Parties) -> None:
    alice = await parties.online(server, "alice")
    bob = await parties.online(server, "bob")
    a_id, b_id = await connect(alice, bob)

    await asyncio.gather(alice.engine.hold(a_id), bob.engine.hold(b_id))

    for party, call_id in ((alice, a_id), (bob, b_id)):
        call = party.engine.get(call_id)
        assert (call.state, call.local_hold, call.remote_hold) == (S.ON_HOLD, True, True)
    await asyncio.gather(alice.engine.unhold(a_id), bob.engine.unhold(b_id))
    for party, call_id in ((alice, a_id), (bob, b_id)):
        call = party.engine.get(call_id)
        assert (call.state, call.local_hold, call.remote_hold) == (S.CONNECTED, False, False)


async def test_restart_media_keeps_the_call(server: RunningServer, parties: Parties) -> None:
    alice = await parties.online(server, "alice", audio_in="tone:1000")
    bob = await parties.online(server, "bob", audio_in="tone:600")
    a_id, b_id = await connect(alice, bob)

    await alice.engine.restart_media(a_id)
    await asyncio.sleep(0.5)  # a new DTLS handshake and jitter buffer

    assert alice.engine.get(a_id).state == S.CONNECTED
    assert bob.engine.get(b_id).state == S.CONNECTED
    assert await bob.ears.frequency() == pytest.approx(1000, abs=20)
    assert await alice.ears.frequency() == pytest.approx(600, abs=20)
    assert alice.events.states(a_id) == ["Initiated", "Ringing", "Connected"]


async def test_remote_device_vanishes(server: RunningServer, parties: Parties) -> None:
    alice = await parties.online(server, "alice")
    bob = await parties.online(server, "bob")
    a_id, _b_id = await connect(alice, bob)

    # bob's device drops off the network: its channel goes away without a goodbye.
    client = bob.engine.client
    assert client is not None and client._task is not None
    client._task.cancel()

    ended = await alice.events.state(a_id, S.ENDED, timeout=8)  # after the resume window
    assert ended.previous.state == S.CONNECTED
    assert alice.engine.get(a_id).end_reason == "connection_lost"
    assert alice.engine.get(a_id).media_state == "closed"


async def test_answered_on_another_device_cancels_this_one(
    server: RunningServer, parties: Parties
) -> None:
    alice = await parties.online(server, "alice")
    desk_phone = await parties.online(server, "bob")
    mobile = await parties.online(server, "bob")
    a_id = await alice.engine.make("bob")
    d_id = (await desk_phone.events.wait(CallReceive)).call_id
    m_id = (await mobile.events.wait(CallReceive)).call_id
    await mobile.events.state(m_id, S.RINGING)
    await desk_phone.events.state(d_id, S.RINGING)

    await desk_phone.engine.answer(d_id)
    await mobile.events.state(m_id, S.CANCELLED)
    await alice.events.state(a_id, S.CONNECTED)

    assert mobile.events.states(m_id) == ["Ringing", "Cancelled"]
    assert mobile.engine.get(m_id).end_reason == "answered_elsewhere"
    with pytest.raises(EngineError) as caught:
        await mobile.engine.answer(m_id)
    assert caught.value.code == "call:6"


async def test_mute_survives_hold_and_unhold(server: RunningServer, parties: Parties) -> None:
    alice = await parties.online(server, "alice", audio_in="tone:1000")
    bob = await parties.online(server, "bob")
    a_id, b_id = await connect(alice, bob)
    await alice.engine.mute(a_id)
    await alice.engine.hold(a_id)
    await alice.engine.unhold(a_id)
    await bob.events.wait(
        CallStateChange, lambda e: e.call_id == b_id and e.previous.state == S.ON_HOLD
    )
    assert bob.engine.get(b_id).state == S.CONNECTED

    assert alice.engine.get(a_id).muted
    assert await bob.ears.level() < 0.005
    await alice.engine.unmute(a_id)
    assert await bob.ears.level() > 0.05


async def test_end_right_after_make_cancels_cleanly(
    server: RunningServer, parties: Parties
) -> None:
    alice = await parties.online(server, "alice")
    bob = await parties.online(server, "bob")
    a_id = await alice.engine.make("bob")
    assert alice.engine.get(a_id).state == S.INITIATING

    await alice.engine.end(a_id)  # before the offer went out: the setup is abandoned

    assert alice.engine.get(a_id).state == S.ENDED
    assert alice.engine.get(a_id).end_reason == "cancelled"
    assert alice.events.states(a_id) == ["Ended"]
    await asyncio.sleep(0.3)
    assert not [e for e in bob.events.events if isinstance(e, CallReceive)]
    assert [c.state for c in alice.engine.get_all()] == [S.ENDED]

    # Once the server has the call, ending it cancels it at the callee.
    a2 = await alice.engine.make("bob")
    await alice.events.state(a2, S.INITIATED)
    await alice.engine.end(a2)
    b_id = (await bob.events.wait(CallReceive)).call_id
    await bob.events.state(b_id, S.CANCELLED)
    assert alice.events.states(a2)[-1] == "Ended"
    assert alice.engine.get(a2).end_reason == "cancelled"


async def test_media_failure_ends_the_call_with_an_error(
    server: RunningServer, parties: Parties
) -> None:
    alice = await parties.online(server, "alice")
    bob = await parties.online(server, "bob")
    a_id, b_id = await connect(alice, bob)
    peer = alice.engine.session(a_id).peer
    assert peer is not None and peer._on_state is not None

    peer._on_state("completed", "failed")  # what ICE reports when the path dies

    await alice.events.state(a_id, S.ENDED)
    await bob.events.state(b_id, S.ENDED)
    errors = [e for e in alice.events.of(a_id) if isinstance(e, CallError)]
    assert len(errors) == 1 and "media connection failed" in errors[0].error.message
    assert alice.engine.get(a_id).end_reason == "error"
    assert bob.engine.get(b_id).end_reason == "hangup"
    assert peer.closed


async def test_answer_right_on_call_receive(server: RunningServer, parties: Parties) -> None:
    """A callee that answers inside its call:receive handler (still Initiating) gets the call
    answered once the ringing step is done, not an error."""
    alice = await parties.online(server, "alice")
    bob = await parties.online(server, "bob")
    answering: list[asyncio.Task[None]] = []

    def on_event(event: object) -> None:
        if isinstance(event, CallReceive):
            assert bob.engine.get(event.call_id).state == S.INITIATING
            answering.append(asyncio.ensure_future(bob.engine.answer(event.call_id)))

    bob.engine.subscribe(on_event)
    a_id = await alice.engine.make("bob")
    await alice.events.state(a_id, S.CONNECTED)
    await answering[0]
    b_id = (await bob.events.wait(CallReceive)).call_id
    assert bob.engine.get(b_id).state == S.CONNECTED
    assert bob.events.states(b_id) == ["Ringing", "Connected"]
