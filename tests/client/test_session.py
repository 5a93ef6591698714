"""SignalingClient against the real server: notifications, reconnect and resume, restart and
resync, a server down at start, replaced and gone channels, bad passwords, refresh, stop."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import aiohttp
import pytest

from softphone.client import Backoff, SignalingClient, errors, events
from softphone.client.events import EventStream
from softphone.config import parse_config
from softphone.protocol.frames import (
    CallAnswered,
    CallCancelled,
    CallEnded,
    CallIncoming,
    GoneReason,
)
from softphone.protocol.models import ServerCallState
from softphone.server.passwords import token_hash
from softphone.server.runner import RunningServer
from softphone.server.services import SERVICES
from tests.client.conftest import FAST, Clients, Servers, free_port, hub_of, server_subscription
from tests.server.harness import PASSWORD, SDP
from tests.server.store_backend import bus_kind


def is_ws(state: events.WsState) -> Callable[[events.WsChange], bool]:
    return lambda e: e.state == state


def unsubscribed(event: events.SubscriptionChange) -> bool:
    return event.state == "unsubscribed"


def notifications(history: list[events.Event]) -> list[events.Notification]:
    return [e for e in history if isinstance(e, events.Notification)]


async def until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.01)


async def test_login_subscribe_and_receive_an_incoming_call(
    server: RunningServer, clients: Clients
) -> None:
    bob, bob_events = await clients.online(server.url, "bob")
    alice, alice_events = await clients.online(server.url, "alice")
    kinds = [
        (e.name, getattr(e, "state", None))
        for e in bob_events.history
        if not isinstance(e, events.Resynced)
    ]
    assert kinds == [
        ("auth:change", "authenticated"),
        ("subscription:change", "subscribed"),
        ("ws:change", "connecting"),
        ("ws:change", "connected"),
    ]
    assert bob.connected and bob.ice_servers == []  # none configured: none invented
    call = await alice.rest.make_call("bob", SDP, video=True, display_name="Alice")
    incoming = await bob_events.wait_for(
        events.Notification, lambda e: isinstance(e.frame, CallIncoming)
    )
    assert isinstance(incoming.frame, CallIncoming)
    assert incoming.frame.call.id == call.id and incoming.frame.sdp == SDP
    assert incoming.frame.call.media.video and incoming.frame.call.display_name == "Alice"
    await bob.rest.ringing(call.id)
    answered = await bob.rest.answer(call.id, SDP)
    assert answered.state is ServerCallState.CONNECTED
    frame = (
        await alice_events.wait_for(
            events.Notification, lambda e: isinstance(e.frame, CallAnswered)
        )
    ).frame
    assert isinstance(frame, CallAnswered) and frame.call_id == call.id
    assert [c.id for c in await bob.rest.list_calls()] == [call.id]


async def test_server_side_drop_resumes_with_every_notification_once_in_order(
    server: RunningServer, clients: Clients
) -> None:
    # A slower first retry leaves room to publish while bob is away.
    bob, bob_events = await clients.online(
        server.url, "bob", backoff=Backoff(base=0.5, cap=1, jitter=0)
    )
    alice, _ = await clients.online(server.url, "alice")
    first = await alice.rest.make_call("bob", SDP)
    await bob_events.wait_for(events.Notification)
    seen = bob_events.history[:]
    sub = server_subscription(server, bob)
    assert sub.connection is not None
    sub.connection.close_after_flush(1001)
    dropped = await bob_events.wait_for(events.WsChange, is_ws("reconnecting"))
    assert dropped.attempt == 1 and dropped.reason == "closed with code 1001"
    await until(lambda: sub.connection is None)

    await alice.rest.end(first.id)
    missed = []
    for _ in range(2):
        call = await alice.rest.make_call("bob", SDP)
        await alice.rest.end(call.id)
        missed.append(call.id)
    assert sub.connection is None  # all five were published while bob was away

    await bob_events.wait_for(events.WsChange, is_ws("connected"), timeout=5)
    await until(lambda: len(notifications(bob_events.history)) == 6)
    await asyncio.sleep(0.2)  # nothing more (no duplicates) arrives
    got = notifications(bob_events.history)
    assert len(got) == 6
    assert [e.frame.seq for e in got] == list(range(1, 7))
    summary = [(type(e.frame).__name__, getattr(e.frame, "call_id", None)) for e in got[1:]]
    assert summary == [
        ("CallCancelled", first.id),
        ("CallIncoming", None),
        ("CallCancelled", missed[0]),
        ("CallIncoming", None),
        ("CallCancelled", missed[1]),
    ]
    assert [e.frame.call.id for e in got if isinstance(e.frame, CallIncoming)] == [
        first.id,
        *missed,
    ]
    # Resumed, so no resync after the reconnect.
    after = bob_events.history[len(seen) :]
    assert not any(isinstance(e, events.Resynced) for e in after)
    # Live frames continue the same sequence.
    bob_events.pending()
    live = await alice.rest.make_call("bob", SDP)
    frame = (await bob_events.wait_for(events.Notification)).frame
    assert isinstance(frame, CallIncoming) and frame.call.id == live.id and frame.seq == 7
    assert bob.connected


async def test_restart_on_the_same_port_resyncs_the_live_calls(
    servers: Servers, clients: Clients, request: pytest.FixtureRequest
) -> None:
    first = await servers.start()
    alice, alice_events = await clients.online(first.url, "alice")
    bob, bob_events = await clients.online(first.url, "bob")
    call = await alice.rest.make_call("bob", SDP)
    await bob_events.wait_for(events.Notification)
    await bob.rest.answer(call.id, SDP)
    await alice_events.wait_for(events.Notification)

    await servers.stop(first)
    await bob_events.wait_for(events.WsChange, is_ws("reconnecting"))
    await servers.start(port=first.port)

    if bus_kind(request.config) == "redis":
        # The subscriptions' notifications live in Redis, not in the process: the restarted
        # server resumes both channels (nothing was missed), so there is nothing to resync.
        await until(lambda: alice.connected and bob.connected)
        for party in (alice, bob):
            assert (await party.rest.get_call(call.id)).state == ServerCallState.CONNECTED
    else:
        resynced = await bob_events.wait_for(events.Resynced, lambda e: bool(e.calls))
        assert [(c.id, c.state) for c in resynced.calls] == [(call.id, ServerCallState.CONNECTED)]
        other = await alice_events.wait_for(events.Resynced, lambda e: bool(e.calls))
        assert [c.id for c in other.calls] == [call.id]
        await until(lambda: alice.connected and bob.connected)
    # The restarted server numbers from its own welcome; the next notification gets through.
    await alice.rest.end(call.id)
    ended = (await bob_events.wait_for(events.Notification)).frame
    assert isinstance(ended, CallEnded) and ended.reason == "hangup"
    assert bob.subscription is not None


async def test_a_server_down_at_start_is_retried_until_it_comes_up(
    servers: Servers, clients: Clients
) -> None:
    port = free_port()
    bob, bob_events = clients.user(f"http://127.0.0.1:{port}", "bob")
    await bob.start()
    retry = await bob_events.wait_for(events.WsChange, lambda e: e.attempt >= 3)
    assert retry.state == "reconnecting" and retry.retry_in is not None
    assert bob.running and not bob.connected
    await servers.start(port=port)
    await bob.wait_connected(5)
    assert bob.subscription is not None


async def test_gives_up_explicitly_after_max_attempts(clients: Clients) -> None:
    bob, bob_events = clients.user(
        f"http://127.0.0.1:{free_port()}",
        "bob",
        backoff=Backoff(base=0.02, cap=0.05, max_attempts=2),
    )
    await bob.start()
    with pytest.raises(errors.Disconnected, match="gave up after 2 attempts"):
        await bob.wait_connected(5)
    states = [e.state for e in bob_events.history if isinstance(e, events.WsChange)]
    assert states == ["reconnecting", "reconnecting", "disconnected"]
    lost = bob_events.history[-1]
    assert isinstance(lost, events.SubscriptionChange) and lost.reason == "lost_connection"
    assert not bob.running


async def test_replaced_by_another_connection_does_not_reconnect(
    server: RunningServer, clients: Clients
) -> None:
    bob, bob_events = await clients.online(server.url, "bob")
    assert bob.subscription is not None and bob.rest.token is not None
    async with aiohttp.ClientSession() as http:
        other = await http.ws_connect(
            f"{server.url}/v1/notifications", headers={"Authorization": f"Bearer {bob.rest.token}"}
        )
        await other.send_json(
            {"type": "hello", "subscription_id": bob.subscription.subscription_id}
        )
        assert (await other.receive_json(timeout=5))["type"] == "welcome"
        change = await bob_events.wait_for(events.SubscriptionChange, unsubscribed)
        assert (change.state, change.reason) == ("unsubscribed", "replaced")
        await asyncio.sleep(0.3)  # several back-off periods: no reconnect loop
        later = [e for e in bob_events.pending() if isinstance(e, events.WsChange)]
        assert [e.state for e in later] == []
        disconnected = [e for e in bob_events.history if isinstance(e, events.WsChange)][-1]
        assert disconnected.state == "disconnected"
        assert not bob.running and not bob.connected
        with pytest.raises(errors.Disconnected, match="replaced"):
            await bob.wait_connected(1)
        assert not other.closed  # the newer connection keeps the channel
        await other.close()


@pytest.mark.parametrize(
    ("method", "path", "detail"),
    [
        ("DELETE", "/v1/sessions", "logged out"),
        ("DELETE", "/v1/subscriptions/{sub}", "unsubscribed"),
    ],
)
async def test_logout_or_unsubscribe_elsewhere_is_gone(
    server: RunningServer, clients: Clients, method: str, path: str, detail: str
) -> None:
    bob, bob_events = await clients.online(server.url, "bob")
    assert bob.subscription is not None and bob.rest.token is not None
    async with aiohttp.ClientSession() as http:
        url = server.url + path.format(sub=bob.subscription.subscription_id)
        async with http.request(
            method, url, headers={"Authorization": f"Bearer {bob.rest.token}"}
        ) as r:
            assert r.status == 204
    change = await bob_events.wait_for(events.SubscriptionChange, unsubscribed)
    assert (change.state, change.reason, change.detail) == ("unsubscribed", "gone", detail)
    await asyncio.sleep(0.3)
    assert not [e for e in bob_events.pending() if isinstance(e, events.WsChange)]
    assert not bob.running and bob.subscription is None


async def test_wrong_password_is_reported_once_and_not_retried(
    server: RunningServer, clients: Clients
) -> None:
    asked = 0

    def provider() -> str:
        nonlocal asked
        asked += 1
        return "not the password"

    stream = EventStream()
    bob = SignalingClient(
        server.url, "bob", provider, on_event=stream, backoff=Backoff(base=0.01, cap=0.02)
    )
    clients.made.append(bob)
    await bob.start()
    with pytest.raises(errors.AuthError) as raised:
        await bob.wait_connected(5)
    assert raised.value.code == "bad_credentials" and raised.value.status == 401
    await asyncio.sleep(0.2)
    assert asked == 1 and not bob.running
    assert [e.name for e in stream.history] == ["auth:error", "auth:change"]
    change = stream.history[1]
    assert isinstance(change, events.AuthChange) and change.state == "unauthenticated"


async def test_async_password_provider(server: RunningServer, clients: Clients) -> None:
    async def provider() -> str:
        return "correct horse battery"

    bob = SignalingClient(server.url, "bob", provider)
    clients.made.append(bob)
    await bob.start()
    await bob.wait_connected(5)


async def test_subscription_is_refreshed_before_it_expires(
    server: RunningServer, clients: Clients
) -> None:
    # expires=60 with refresh_at 2 % of the lifetime: a refresh about every 1.2 s.
    bob, bob_events = await clients.online(server.url, "bob", expires=60, refresh_at=0.02)
    assert bob.subscription is not None
    before = bob.subscription.expires_at
    resub = await bob_events.wait_for(events.SubscriptionResub, timeout=5)
    assert not resub.is_failure and resub.expires_at is not None
    assert resub.expires_at > before
    assert server_subscription(server, bob).row.expires_at == pytest.approx(resub.expires_at)
    assert bob.connected


async def test_refresh_of_a_forgotten_subscription_subscribes_again(
    server: RunningServer, clients: Clients
) -> None:
    bob, bob_events = await clients.online(server.url, "bob", expires=60, refresh_at=0.02)
    alice, _ = await clients.online(server.url, "alice")
    sub = server_subscription(server, bob)
    old_id = sub.id
    sub.connection = None  # the server forgets the subscription without telling the socket
    hub_of(server).remove(sub, GoneReason.UNSUBSCRIBED, "lost by the server")
    gone = await bob_events.wait_for(events.SubscriptionChange, unsubscribed, timeout=5)
    assert (gone.state, gone.reason, gone.subscription_id) == ("unsubscribed", "gone", old_id)
    new = await bob_events.wait_for(events.SubscriptionChange)
    assert new.state == "subscribed" and new.subscription_id != old_id
    await bob_events.wait_for(events.WsChange, is_ws("connected"))
    call = await alice.rest.make_call("bob", SDP)
    frame = (await bob_events.wait_for(events.Notification)).frame
    assert isinstance(frame, CallIncoming) and frame.call.id == call.id


async def test_stop_unsubscribes_and_logs_out(server: RunningServer, clients: Clients) -> None:
    bob, bob_events = await clients.online(server.url, "bob")
    assert bob.rest.token is not None
    token = bob.rest.token
    hub = hub_of(server)
    assert hub.for_session(token_hash(token)) is not None
    await bob.stop()
    assert hub.for_session(token_hash(token)) is None
    assert server.app[SERVICES].sessions.lookup(token) is None
    tail = [
        (e.name, getattr(e, "state", None), getattr(e, "reason", None))
        for e in bob_events.history[-3:]
    ]
    assert tail == [
        ("ws:change", "disconnected", "stopped"),
        ("subscription:change", "unsubscribed", None),
        ("auth:change", "unauthenticated", "logged out"),
    ]
    assert not any(
        isinstance(e, events.SubscriptionChange) and e.reason == "gone" for e in bob_events.history
    )  # our own unsubscribe is not "gone"


async def test_stop_is_bounded_when_the_server_does_not_answer(clients: Clients) -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(1 << 16)  # never answers
        await asyncio.sleep(10)

    blackhole = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = blackhole.sockets[0].getsockname()[1]
    try:
        bob, _ = clients.user(f"http://127.0.0.1:{port}", "bob", stop_timeout=0.3, timeout=0.2)
        await bob.start()
        await asyncio.sleep(0.1)
        bob.rest.token = "pretend-we-were-logged-in"
        async with asyncio.timeout(3):
            await bob.stop()
        assert bob.rest.token is None and not bob.running
    finally:
        blackhole.close()


async def test_away_past_the_resume_window_resyncs(
    servers: Servers, clients: Clients, tmp_path: Path
) -> None:
    """Away longer than the resume window: the server ended the call as connection_lost and
    the client learns the new state from the resync after reconnecting."""
    config = parse_config(f'[server]\ndata_dir = "{tmp_path}"\nresume_window = 0.5\n')
    server = await servers.start(config=config)
    # The server notices within resume_window + its 1 s sweep; come back after that.
    bob, bob_events = await clients.online(
        server.url, "bob", backoff=Backoff(base=1.8, cap=2, jitter=0)
    )
    alice, alice_events = await clients.online(server.url, "alice")
    call = await alice.rest.make_call("bob", SDP)
    await bob_events.wait_for(events.Notification)
    await bob.rest.answer(call.id, SDP)
    sub = server_subscription(server, bob)
    assert sub.connection is not None
    sub.connection.close_after_flush(1001)
    await bob_events.wait_for(events.WsChange, is_ws("reconnecting"))
    ended = await alice_events.wait_for(
        events.Notification, lambda e: isinstance(e.frame, CallEnded), timeout=5
    )
    assert isinstance(ended.frame, CallEnded) and ended.frame.reason == "connection_lost"
    resynced = await bob_events.wait_for(events.Resynced, timeout=6)
    assert resynced.calls == []
    assert not [
        e
        for e in notifications(bob_events.history)
        if isinstance(e.frame, CallCancelled | CallEnded)
    ]


async def test_start_again_after_gone_logs_in_again_when_the_token_died(
    server: RunningServer, clients: Clients
) -> None:
    asked = 0

    def provider() -> str:
        nonlocal asked
        asked += 1
        return PASSWORD

    stream = EventStream()
    bob = SignalingClient(server.url, "bob", provider, on_event=stream, backoff=FAST)
    clients.made.append(bob)
    await bob.start()
    await bob.wait_connected(5)
    token = bob.rest.token
    async with aiohttp.ClientSession() as http:
        headers = {"Authorization": f"Bearer {token}"}
        async with http.delete(f"{server.url}/v1/sessions", headers=headers) as response:
            assert response.status == 204
    await stream.wait_for(events.SubscriptionChange, unsubscribed)
    await until(lambda: not bob.running)
    assert bob.rest.token == token  # kept locally: a gone subscription need not mean a dead token
    await bob.start()
    await bob.wait_connected(5)
    assert asked == 2 and bob.rest.token != token
