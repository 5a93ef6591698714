"""Relay-only calls through coturn (TURN REST API secret), and a wrong secret.

Relay-only: the engines gather no host address at all (aioice's host addresses patched to
none, as a machine behind a strict NAT would see it), so the only candidates are coturn's
relayed ones and every packet goes through it."""

from __future__ import annotations

import time
from pathlib import Path

import aioice.ice
import pytest
from aiortc import RTCConfiguration, RTCPeerConnection

from softphone.engine.errors import EngineError
from softphone.engine.events import CallError, MediaError
from softphone.engine.peer import TurnFailure
from softphone.engine.states import CallState
from softphone.server.runner import RunningServer
from tests.engine.conftest import Parties, Party, ServerFactory
from tests.interop.conftest import SignalingFactory, TurnFactory
from tests.interop.coturn import Coturn

SECRET = b"interop-turn-secret"
ALICE_TONE, BOB_TONE = 440.0, 660.0


@pytest.fixture
def relay_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(aioice.ice, "get_host_addresses", lambda use_ipv4, use_ipv6: [])


async def server_with_turn(
    start_server: ServerFactory, tmp_path: Path, turn: Coturn, secret: bytes
) -> RunningServer:
    """A server that hands out TURN REST credentials for `turn`, minted with `secret`."""
    secret_file = tmp_path / "turn.secret"
    secret_file.write_bytes(secret + b"\n")
    return await start_server(
        extra=f'[turn]\nurls = ["{turn.url}"]\nsecret_file = "{secret_file}"\n'
    )


async def hears(party: Party, frequency: float) -> None:
    heard = await party.ears.frequency(0.6)
    assert abs(heard - frequency) < 20, heard


async def call(server: RunningServer, parties: Parties, **options: object) -> tuple[
    Party, Party, str, str
]:
    alice = await parties.online(server, "alice", audio_in=f"tone:{ALICE_TONE:g}", **options)
    bob = await parties.online(server, "bob", audio_in=f"tone:{BOB_TONE:g}", **options)
    out = await alice.engine.make("bob")
    incoming = await bob.events.wait(
        object, lambda e: getattr(e, "name", "") == "call:receive", timeout=15
    )
    in_id = str(incoming.call_id)  # type: ignore[attr-defined]
    await bob.engine.answer(in_id)
    return alice, bob, out, in_id


@pytest.mark.usefixtures("relay_only")
async def test_relay_only_call_through_coturn(
    start_server: ServerFactory, tmp_path: Path, parties: Parties, coturn: TurnFactory
) -> None:
    turn = await coturn(SECRET)
    server = await server_with_turn(start_server, tmp_path, turn, SECRET)
    alice, bob, out, in_id = await call(server, parties)
    await alice.events.state(out, CallState.CONNECTED)
    await hears(alice, BOB_TONE)
    await hears(bob, ALICE_TONE)
    for party, call_id in ((alice, out), (bob, in_id)):
        peer = party.engine.session(call_id).peer
        assert peer is not None
        pair = peer.selected_pair()
        assert pair is not None and pair.relayed, pair
        assert pair.local_type == "relay"
        assert peer.turn_failures == []
    assert "ALLOCATE processed, success" in turn.log_text()
    await alice.engine.end(out)


def assert_refused(failures: list[TurnFailure], turn: Coturn) -> None:
    [failure] = failures
    assert failure.server == f"127.0.0.1:{turn.port}"
    assert failure.code == 401
    assert "refused our credentials" in failure.describe()
    assert failure.server in failure.describe()


async def offer_without_candidates() -> str:
    """An offer with no candidate at all and end-of-candidates (what a caller whose own TURN
    failed sends): made by a plain aiortc peer connection under `relay_only`."""
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    try:
        pc.addTransceiver("audio")
        await pc.setLocalDescription(await pc.createOffer())
        sdp = pc.localDescription.sdp
    finally:
        await pc.close()
    assert "a=candidate:" not in sdp and "a=end-of-candidates" in sdp
    return sdp


@pytest.mark.usefixtures("relay_only")
async def test_wrong_turn_secret_is_known_with_the_server(
    start_server: ServerFactory,
    tmp_path: Path,
    parties: Parties,
    coturn: TurnFactory,
    signaling: SignalingFactory,
) -> None:
    """coturn refuses credentials minted with another secret (401): each side's peer
    connection knows it, naming the server, as soon as its offer or answer is made, and the
    call fails at once with that reason (no candidate at all: nobody can reach us). The
    callee's offer had no candidates: it still asked TURN (aioice had pruned everything)."""
    turn = await coturn(SECRET)
    server = await server_with_turn(start_server, tmp_path, turn, b"not-the-turn-secret")
    where = f"127.0.0.1:{turn.port}"
    # The caller: make fails at once.
    alice = await parties.online(server, "alice", media_timeout=60)
    started = time.monotonic()
    out = await alice.engine.make("bob")
    error = await alice.events.wait(CallError, lambda e: e.call_id == out, timeout=10)
    assert time.monotonic() - started < 5
    assert where in error.error.message and "401" in error.error.message
    peer = alice.engine.session(out).peer
    assert peer is not None
    assert_refused(peer.turn_failures, turn)
    await alice.events.state(out, CallState.ENDED)
    # The callee of an offer with no candidates: its answer fails at once, saying why.
    carol, _stream = await signaling(server, "carol")
    bob = await parties.online(server, "bob", media_timeout=60)
    made = await carol.rest.make_call("bob", await offer_without_candidates())
    incoming = await bob.events.wait(
        object, lambda e: getattr(e, "name", "") == "call:receive", timeout=15
    )
    in_id = str(incoming.call_id)  # type: ignore[attr-defined]
    with pytest.raises(EngineError) as refused:
        await bob.engine.answer(in_id)
    assert where in str(refused.value)
    peer = bob.engine.session(in_id).peer
    assert peer is not None
    assert_refused(peer.turn_failures, turn)
    await bob.events.state(in_id, CallState.ENDED)
    del made


@pytest.mark.usefixtures("relay_only")
async def test_wrong_turn_secret_is_reported_to_the_user(
    start_server: ServerFactory, tmp_path: Path, parties: Parties, coturn: TurnFactory
) -> None:
    turn = await coturn(SECRET)
    server = await server_with_turn(start_server, tmp_path, turn, b"not-the-turn-secret")
    alice = await parties.online(server, "alice", media_timeout=60)
    await parties.online(server, "bob", media_timeout=60)
    out = await alice.engine.make("bob")
    where = f"127.0.0.1:{turn.port}"

    def names_the_relay(event: object) -> bool:
        if not isinstance(event, CallError | MediaError) or event.call_id != out:
            return False
        return "TURN" in event.error.message and where in event.error.message

    await alice.events.wait(object, names_the_relay, timeout=10)
