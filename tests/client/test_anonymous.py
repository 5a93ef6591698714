"""AnonymousSignaling: an anonymous call with its call-scoped token and channel, end to end."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from softphone.client import (
    AnonymousSignaling,
    ChannelEnd,
    EventStream,
    NotificationChannel,
    RestClient,
    errors,
    events,
)
from softphone.config import parse_config
from softphone.protocol.frames import CallAnswered, CallDtmf, CallEnded, CallIncoming
from softphone.protocol.models import ServerCallState, TokenCredentials
from softphone.server.runner import RunningServer
from softphone.server.tokens import generate_key, issue_token_set, parse_key
from tests.client.conftest import FAST, Clients, Servers
from tests.server.harness import SDP


def is_frame(kind: type) -> Callable[[events.Notification], bool]:
    return lambda e: isinstance(e.frame, kind)


async def test_anonymous_call_round_trip(server: RunningServer, clients: Clients) -> None:
    desk, desk_events = await clients.online(server.url, "desk")
    stream = EventStream()
    anon = AnonymousSignaling(server.url, on_event=stream, backoff=FAST)
    call = await anon.call(to="desk", from_="visitor", sdp=SDP, display_name="A Visitor")
    assert call.anonymous and call.caller == "visitor" and anon.call_id == call.id
    assert anon.rest.token is not None and anon.ice_servers == []
    await anon.wait_connected(5)
    incoming = (await desk_events.wait_for(events.Notification)).frame
    assert isinstance(incoming, CallIncoming) and incoming.call.id == call.id
    assert incoming.call.display_name == "A Visitor"

    await desk.rest.answer(call.id, SDP)
    answered = (await stream.wait_for(events.Notification)).frame
    assert isinstance(answered, CallAnswered) and answered.sdp == SDP
    await desk.rest.dtmf(call.id, "12#")
    dtmf = (await stream.wait_for(events.Notification)).frame
    assert isinstance(dtmf, CallDtmf) and dtmf.digits == "12#"
    await anon.rest.dtmf(call.id, "9")
    back = (await desk_events.wait_for(events.Notification)).frame
    assert isinstance(back, CallDtmf) and back.digits == "9"
    assert (await anon.rest.get_call(call.id)).state is ServerCallState.CONNECTED

    await anon.end()
    ended = (await desk_events.wait_for(events.Notification)).frame
    assert isinstance(ended, CallEnded) and ended.reason == "hangup"
    assert anon.closed and anon.rest.token is None
    assert await anon.wait_closed() is ChannelEnd.GONE
    change = await stream.wait_for(events.SubscriptionChange)
    assert (change.reason, change.detail) == ("gone", "call ended")


async def test_anonymous_channel_closes_itself_when_the_callee_hangs_up(
    server: RunningServer, clients: Clients
) -> None:
    desk, _ = await clients.online(server.url, "desk")
    stream = EventStream()
    async with AnonymousSignaling(server.url, on_event=stream, backoff=FAST) as anon:
        call = await anon.call(to="desk", from_="visitor", sdp=SDP)
        await anon.wait_connected(5)
        await desk.rest.answer(call.id, SDP)
        await desk.rest.end(call.id)
        ended = await stream.wait_for(events.Notification, is_frame(CallEnded))
        assert isinstance(ended.frame, CallEnded) and ended.frame.reason == "hangup"
        assert await anon.wait_closed() is ChannelEnd.GONE
        assert anon.closed and not anon.connected
        states = [e.state for e in stream.history if isinstance(e, events.WsChange)]
        assert states == ["connecting", "connected", "disconnected"]


async def test_refused_anonymous_call_raises_the_servers_error(server: RunningServer) -> None:
    anon = AnonymousSignaling(server.url)
    with pytest.raises(errors.ServerError) as refused:
        await anon.call(to="bob", from_="visitor", sdp=SDP)  # bob takes no anonymous calls
    assert (refused.value.code, refused.value.status) == ("anonymous_not_allowed", 403)
    assert anon.call_id is None and not anon.connected
    with pytest.raises(errors.Disconnected):
        await anon.wait_connected(1)


async def test_ice_servers_before_the_call(
    servers: Servers, clients: Clients, tmp_path: Path
) -> None:
    (tmp_path / "turn.secret").write_text("s3cret\n")
    config = parse_config(f"""
[server]
data_dir = "{tmp_path}"
[turn]
urls = ["turn:127.0.0.1:3478?transport=udp"]
secret_file = "{tmp_path}/turn.secret"
ttl = 900
""")
    server = await servers.start(config=config)
    await clients.online(server.url, "desk")
    async with AnonymousSignaling(server.url, backoff=FAST) as anon:
        found = await anon.lookup_ice_servers(to="desk", from_="visitor")
        assert found.ice_ttl == 900
        [turn] = found.ice_servers
        assert turn.urls == ["turn:127.0.0.1:3478?transport=udp"]
        assert turn.username and turn.credential
        assert anon.ice_servers == []  # the call's own list comes with the call
        call = await anon.call(to="desk", from_="visitor", sdp=SDP)
        [again] = anon.ice_servers
        assert again.urls == turn.urls and again.username and anon.call_id == call.id

    refused = AnonymousSignaling(server.url)
    with pytest.raises(errors.ServerError) as error:
        await refused.lookup_ice_servers(to="bob", from_="visitor")
    assert (error.value.code, error.value.status) == ("anonymous_not_allowed", 403)
    await refused.close()
    async with RestClient(server.url) as rest:
        with pytest.raises(errors.ServerError) as error:
            await rest.anonymous_ice_servers(from_="visitor")  # no callee
        assert (error.value.code, error.value.status) == ("validation_error", 400)
        assert rest.token is None  # the lookup gives no token


async def test_token_mode_anonymous_call(
    servers: Servers, clients: Clients, tmp_path: Path
) -> None:
    material = generate_key("v2")
    (tmp_path / "v2.key").write_text(material + "\n")
    config = parse_config(f"""
[server]
data_dir = "{tmp_path}"
[[realms]]
name = "web"
format = "v2"
key_file = "{tmp_path}/v2.key"
""")
    server = await servers.start(config=config)
    _, desk_events = await clients.online(server.url, "desk")
    tokens = issue_token_set(
        "v2",
        parse_key("v2", material),
        "web",
        account="desk",
        caller="sip:guest@localhost",
        callee="sip:desk@localhost",
    )
    creds = TokenCredentials(
        realm="web",
        account_token=tokens["accountToken"],
        from_token=tokens["fromToken"],
        to_token=tokens["toToken"],
    )
    async with AnonymousSignaling(server.url, backoff=FAST) as anon:
        found = await anon.lookup_ice_servers(credentials=creds)  # does not use the set up
        assert found.ice_servers == [] and found.ice_ttl > 0
        call = await anon.call(sdp=SDP, credentials=creds)
        assert call.callee == "desk" and call.caller == "guest@localhost"
        await anon.wait_connected(5)
        incoming = (await desk_events.wait_for(events.Notification)).frame
        assert isinstance(incoming, CallIncoming) and incoming.call.id == call.id


async def test_answer_before_the_channel_connects_is_replayed(
    server: RunningServer, clients: Clients
) -> None:
    """What is published between the POST and the first hello (here the answer SDP, from an
    auto-answering contact, say) is replayed: the first hello says last_seq 0."""
    desk, _ = await clients.online(server.url, "desk")
    async with RestClient(server.url) as rest:
        made = await rest.make_anonymous_call(to="desk", from_="visitor", sdp=SDP)
        await desk.rest.answer(made.call.id, SDP)  # e.g. an auto-answering echo contact
        stream = EventStream()
        channel = NotificationChannel(rest, made.subscription_id, on_event=stream, backoff=FAST)
        channel.start()
        try:
            event = await stream.wait_for(events.Notification, timeout=5)
            assert isinstance(event.frame, CallAnswered) and event.frame.seq == 1
            assert not any(isinstance(e, events.Resynced) for e in stream.history)
        finally:
            await channel.stop()
            await desk.rest.end(made.call.id)
