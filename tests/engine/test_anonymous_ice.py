"""An anonymous call's offer gathers with the server's TURN server (the ICE lookup before the
call), its media restart with the call's own list, and an old server (no lookup) leaves the
offer to `anonymous_ice_servers`.

Real server, real engines, real sockets. The TURN server (`tests.server.fake_turn`) checks the
credentials as coturn would, records who allocated, and refuses the allocation, so gathering
goes on at once with host candidates only (loopback).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from aiohttp import web
from aiortc import RTCConfiguration, RTCPeerConnection

from softphone.config import parse_config
from softphone.engine import CallState, EngineError
from softphone.engine.events import CallReceive
from softphone.protocol.models import IceServer
from softphone.server.app import build_app
from softphone.server.runner import RunningServer
from softphone.server.services import SERVICES
from tests.conftest import seed_users
from tests.engine.conftest import Parties, ServerFactory
from tests.server.fake_turn import SECRET, Allocation, FakeTurn, fake_turn, password_for

S = CallState


@pytest.fixture
async def turn() -> AsyncIterator[FakeTurn]:
    server = await fake_turn()
    yield server
    assert server.transport is not None
    server.transport.close()


def configured(pc: RTCPeerConnection) -> list[tuple[list[str], str | None, str | None]]:
    """The ICE servers an RTCPeerConnection was constructed with (aiortc keeps its
    configuration private: it has no getConfiguration())."""
    config: RTCConfiguration = pc._RTCPeerConnection__configuration  # type: ignore[attr-defined]
    return [
        ([s.urls] if isinstance(s.urls, str) else list(s.urls), s.username, s.credential)
        for s in config.iceServers or []
    ]


async def test_anonymous_offer_gathers_with_the_servers_turn(
    start_server: ServerFactory, parties: Parties, turn: FakeTurn, tmp_path: Path
) -> None:
    (tmp_path / "turn.secret").write_text(SECRET.decode() + "\n")
    url = f"turn:127.0.0.1:{turn.port}?transport=udp"
    server = await start_server(
        extra=f'[turn]\nurls = ["{url}"]\nsecret_file = "{tmp_path}/turn.secret"\nttl = 600\n'
    )
    visitor = parties.make(audio_in="tone:1000")  # never logs in, no ICE servers of its own
    desk = await parties.online(server, "desk", audio_in="tone:600")

    v_id = await visitor.engine.make_anonymous("desk", from_="visitor", server_url=server.url)
    d_id = (await desk.events.wait(CallReceive)).call_id
    res = visitor.engine.session(v_id)
    assert res.peer is not None
    [(urls, username, credential)] = configured(res.peer.pc)
    assert urls == [url] and username is not None
    assert credential == password_for(username)  # minted by the server, with its secret
    # The offer's gathering asked that TURN server for a relay (once per ICE transport aiortc
    # gathers on), with those credentials. (desk, a subscribed user, uses it too, with its own.)
    visitor_opaque = username.partition(":")[2]
    assert turn.of(visitor_opaque) == {Allocation(username, True)}
    before_restart = len(turn.allocations)

    await desk.events.state(d_id, S.RINGING)
    await desk.engine.answer(d_id)
    await visitor.events.state(v_id, S.CONNECTED)
    assert await desk.ears.frequency() == pytest.approx(1000, abs=20)

    # A media restart makes its new peer connection with the call response's own list.
    assert res.signaling.anonymous is not None
    from_call = res.signaling.anonymous.ice_servers
    assert [s.urls for s in from_call] == [[url]] and res.signaling.ice == from_call
    await visitor.engine.restart_media(v_id)
    assert res.peer is not None
    assert configured(res.peer.pc) == [(s.urls, s.username, s.credential) for s in from_call]
    assert turn.of(visitor_opaque, since=before_restart) == {
        Allocation(str(from_call[0].username), True)
    }
    await asyncio.sleep(0.5)  # a new DTLS handshake and jitter buffer
    assert visitor.engine.get(v_id).state == S.CONNECTED
    assert await desk.ears.frequency() == pytest.approx(1000, abs=20)
    await visitor.engine.end(v_id)
    await desk.events.state(d_id, S.ENDED)


async def test_token_mode_offer_gathers_with_the_servers_turn(
    start_server: ServerFactory, parties: Parties, turn: FakeTurn, tmp_path: Path
) -> None:
    """The lookup checks the token set without using it up: the set still makes its call."""
    from softphone.protocol.models import TokenCredentials
    from softphone.server.tokens import generate_key, issue_token_set, parse_key

    (tmp_path / "turn.secret").write_text(SECRET.decode() + "\n")
    material = generate_key("v2")
    (tmp_path / "v2.key").write_text(material + "\n")
    url = f"turn:127.0.0.1:{turn.port}?transport=udp"
    server = await start_server(
        extra=f'[turn]\nurls = ["{url}"]\nsecret_file = "{tmp_path}/turn.secret"\n'
        f'[[realms]]\nname = "web"\nformat = "v2"\nkey_file = "{tmp_path}/v2.key"\n'
    )
    tokens = issue_token_set(
        "v2", parse_key("v2", material), "web", account="desk", caller="guest", callee="desk"
    )
    creds = TokenCredentials(
        realm="web",
        account_token=tokens["accountToken"],
        from_token=tokens["fromToken"],
        to_token=tokens["toToken"],
    )
    visitor = parties.make()
    desk = await parties.online(server, "desk")
    v_id = await visitor.engine.make_anonymous("desk", creds, server_url=server.url)
    await desk.events.wait(CallReceive)
    await visitor.events.state(v_id, S.RINGING)
    assert visitor.engine.get(v_id).from_ == "guest"
    peer = visitor.engine.session(v_id).peer
    assert peer is not None
    username = configured(peer.pc)[0][1]
    assert username is not None
    assert turn.of(username.partition(":")[2]) == {Allocation(username, True)}


async def test_old_server_leaves_the_offer_to_the_local_ice_servers(
    parties: Parties, turn: FakeTurn, tmp_path: Path
) -> None:
    """A server from before the lookup answers it 404: the offer uses `anonymous_ice_servers`,
    and later offers the call's own list (empty here: that server has no TURN)."""
    config = parse_config(f"""
[server]
data_dir = "{tmp_path}"
[rate_limits]
anonymous_per_minute = 1000
""")
    app = build_app(config)
    seed_users(app[SERVICES].store)

    @web.middleware
    async def before_the_lookup(
        request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        if request.path == "/v1/anonymous/ice-servers":
            raise web.HTTPNotFound()  # the error middleware answers as for any unknown path
        return await handler(request)

    app.middlewares.append(before_the_lookup)
    runner = web.AppRunner(app, handle_signals=False, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    server = RunningServer(runner, site, "127.0.0.1", int(runner.addresses[0][1]))
    try:
        local = IceServer(
            urls=[f"turn:127.0.0.1:{turn.port}?transport=udp"],
            username="local-user",
            credential=password_for("local-user"),
        )
        visitor = parties.make(anonymous_ice_servers=[local])
        desk = await parties.online(server, "desk")
        v_id = await visitor.engine.make_anonymous("desk", from_="visitor", server_url=server.url)
        await desk.events.wait(CallReceive)
        await visitor.events.state(v_id, S.RINGING)
        res = visitor.engine.session(v_id)
        assert res.peer is not None
        assert configured(res.peer.pc) == [(local.urls, "local-user", local.credential)]
        assert turn.allocations and set(turn.allocations) == {Allocation("local-user", True)}
        anon = res.signaling.anonymous
        assert res.signaling.ice == [] and anon is not None and anon.ice_servers == []
    finally:
        await parties.close()
        await server.stop()


async def test_client_options_an_anonymous_call_cannot_use_are_refused(parties: Parties) -> None:
    """start()'s options go to make_anonymous as they are (the TUI keeps one set): those for a
    subscription are left aside, a misspelt one is refused before anything is sent."""
    visitor = parties.make(audio_in="tone:1000")
    with pytest.raises(EngineError, match=r"unknown client options: \['ca_fiel'\]"):
        await visitor.engine.make_anonymous(
            "desk", server_url="http://127.0.0.1:9", expires=600, ca_fiel="/tmp/ca.pem"
        )
    assert visitor.engine.get_all() == []
