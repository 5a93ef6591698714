"""NotificationChannel against scripted endpoints, for what a correct server never does: duplicate
or skipped `seq`, frames that do not parse, silence instead of pongs, odd close codes."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from aiohttp import WSMsgType, web

from softphone.client import (
    Backoff,
    ChannelEnd,
    EventStream,
    NotificationChannel,
    RestClient,
    errors,
    events,
)
from softphone.protocol.frames import CallRinging
from tests.client.conftest import FAST, free_port

Script = Callable[[web.WebSocketResponse, int], Awaitable[None]]


def welcome(seq: int = 0, resumed: bool = True, ping_interval: float = 20.0) -> dict[str, Any]:
    return {
        "type": "welcome",
        "subscription_id": "sub",
        "resumed": resumed,
        "ping_interval": ping_interval,
        "seq": seq,
    }


def ringing(seq: int) -> dict[str, Any]:
    return {"type": "call.ringing", "call_id": f"c{seq}", "seq": seq}


async def drain(ws: web.WebSocketResponse, into: list[Any] | None = None) -> None:
    """Read until the client goes away, keeping its text frames."""
    async for msg in ws:
        if msg.type is WSMsgType.TEXT and into is not None:
            into.append(json.loads(msg.data))


class FakeServer:
    """`/v1/notifications` runs `script(ws, n)` for the n-th connection after reading its hello;
    `/v1/calls` answers an empty list."""

    def __init__(self, script: Script) -> None:
        self.script = script
        self.hellos: list[dict[str, Any]] = []
        self.authorization: list[str | None] = []
        self.resyncs = 0
        self.url = ""
        app = web.Application()
        app.router.add_get("/v1/notifications", self._notifications)
        app.router.add_get("/v1/calls", self._calls)
        self.runner = web.AppRunner(app, shutdown_timeout=0.5)

    async def start(self) -> None:
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{self.runner.addresses[0][1]}"

    async def _notifications(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        self.authorization.append(request.headers.get("Authorization"))
        self.hellos.append(await ws.receive_json(timeout=5))
        await self.script(ws, len(self.hellos))
        return ws

    async def _calls(self, request: web.Request) -> web.Response:
        self.resyncs += 1
        return web.json_response({"calls": []})


@pytest.fixture
async def fake() -> AsyncIterator[Callable[[Script], Awaitable[FakeServer]]]:
    made: list[FakeServer] = []

    async def run(script: Script) -> FakeServer:
        server = FakeServer(script)
        await server.start()
        made.append(server)
        return server

    yield run
    for server in made:
        await server.runner.cleanup()


def seqs(stream: EventStream) -> list[int]:
    return [e.frame.seq for e in stream.history if isinstance(e, events.Notification)]


async def test_duplicates_dropped_gaps_resynced_junk_ignored(
    fake: Callable[[Script], Awaitable[FakeServer]],
) -> None:
    from_client: list[Any] = []

    async def script(ws: web.WebSocketResponse, n: int) -> None:
        await ws.send_json(welcome())
        await ws.send_json({"type": "ping", "id": "s1", "seq": 0})
        await ws.send_str("not json")
        await ws.send_json({"type": "bogus", "seq": 0})
        await ws.send_bytes(b"\x00")
        for seq in (1, 1, 2, 4, 3, 4):
            await ws.send_json(ringing(seq))
        await drain(ws, from_client)

    server = await fake(script)
    stream = EventStream()

    def careless_consumer(event: events.Event) -> None:
        stream(event)
        if isinstance(event, events.WsChange):
            raise RuntimeError("a consumer bug must not kill the reader")

    async with RestClient(server.url, token="secret-token") as rest:
        channel = NotificationChannel(rest, "sub", on_event=careless_consumer, backoff=FAST)
        channel.start()
        await stream.wait_for(events.Resynced)
        await asyncio.sleep(0.1)
        await channel.stop()
    assert seqs(stream) == [1, 2, 4]  # 1 and 4 again, and 3 (late), are dropped
    assert channel.last_seq == 4 and server.resyncs == 1
    frame = next(e for e in stream.history if isinstance(e, events.Notification)).frame
    assert isinstance(frame, CallRinging) and frame.call_id == "c1"
    assert server.hellos == [
        {"type": "hello", "subscription_id": "sub", "token": None, "last_seq": 0}
    ]
    assert server.authorization == ["Bearer secret-token"]  # header only, never in the URL
    assert {"type": "pong", "id": "s1"} in from_client
    assert await channel.wait_closed() is ChannelEnd.STOPPED
    states = [e.state for e in stream.history if isinstance(e, events.WsChange)]
    assert states == ["connecting", "connected", "disconnected"]


async def test_silence_instead_of_pongs_is_a_dead_connection(
    fake: Callable[[Script], Awaitable[FakeServer]],
) -> None:
    pings: list[Any] = []

    async def script(ws: web.WebSocketResponse, n: int) -> None:
        await ws.send_json(welcome(ping_interval=0.05))
        await drain(ws, pings if n == 1 else None)  # never answers

    server = await fake(script)
    stream = EventStream()
    async with RestClient(server.url, token="t") as rest:
        channel = NotificationChannel(rest, "sub", on_event=stream, missed_pongs=2, backoff=FAST)
        channel.start()
        lost = await stream.wait_for(events.WsChange, lambda e: e.state == "reconnecting")
        assert lost.reason == "no answer to 2 pings"
        await stream.wait_for(events.WsChange, lambda e: e.state == "connected")
        await channel.stop()
    assert pings == [{"type": "ping", "id": None}] * 2
    assert len(server.hellos) == 2


async def test_reconnect_resumes_from_the_cursor_and_resets_it_when_not_resumed(
    fake: Callable[[Script], Awaitable[FakeServer]],
) -> None:
    async def script(ws: web.WebSocketResponse, n: int) -> None:
        if n == 1:
            await ws.send_json(welcome())
            await ws.send_json(ringing(1))
            await ws.send_json(ringing(2))
            await ws.close(code=1011)
        elif n == 2:
            await ws.send_json(welcome(seq=3))
            await ws.send_json(ringing(3))
            await ws.close(code=1001)
        else:
            await ws.send_json(welcome(seq=10, resumed=False))
            await ws.send_json({"type": "resume_failed", "reason": "gone", "seq": 10})
            await ws.send_json(ringing(10))  # at or below the new cursor: not delivered
            await ws.send_json(ringing(11))
            await drain(ws)

    server = await fake(script)
    stream = EventStream()
    async with RestClient(server.url, token="t") as rest:
        channel = NotificationChannel(rest, "sub", on_event=stream, backoff=FAST)
        channel.start()
        await stream.wait_for(events.Notification, lambda e: e.frame.seq == 11)
        await channel.stop()
    assert [h["last_seq"] for h in server.hellos] == [0, 2, 3]
    assert seqs(stream) == [1, 2, 3, 11]
    assert server.resyncs == 1
    reasons = [
        e.reason
        for e in stream.history
        if isinstance(e, events.WsChange) and e.state == "reconnecting"
    ]
    assert reasons == ["closed with code 1011", "closed with code 1001"]


async def test_auth_refused_ends_without_reconnecting(
    fake: Callable[[Script], Awaitable[FakeServer]],
) -> None:
    async def script(ws: web.WebSocketResponse, n: int) -> None:
        await ws.send_json(
            {
                "type": "error",
                "code": "unauthorized",
                "message": "unknown, revoked or expired token",
                "seq": 0,
            }
        )
        await ws.close(code=4002)

    server = await fake(script)
    stream = EventStream()
    async with RestClient(server.url, token="t") as rest:
        channel = NotificationChannel(rest, "sub", on_event=stream, backoff=FAST)
        channel.start()
        assert await channel.wait_closed() is ChannelEnd.AUTH
    names = [e.name for e in stream.history]
    assert names == ["ws:change", "ws:change", "subscription:change", "auth:change", "auth:error"]
    error = stream.history[-1]
    assert isinstance(error, events.AuthError)
    assert isinstance(error.error, errors.AuthError) and error.error.code == "unauthorized"
    assert len(server.hellos) == 1


async def test_gives_up_after_max_attempts_and_says_so() -> None:
    stream = EventStream()
    async with RestClient(f"http://127.0.0.1:{free_port()}", token="t") as rest:
        channel = NotificationChannel(
            rest, "sub", on_event=stream, backoff=Backoff(base=0.01, cap=0.02, max_attempts=2)
        )
        channel.start()
        assert await channel.wait_closed() is ChannelEnd.GAVE_UP
    ws = [(e.state, e.attempt) for e in stream.history if isinstance(e, events.WsChange)]
    assert ws == [("connecting", 0), ("reconnecting", 1), ("reconnecting", 2), ("disconnected", 0)]
    last = stream.history[-1]
    assert isinstance(last, events.SubscriptionChange)
    assert (last.state, last.reason) == ("unsubscribed", "lost_connection")
    assert last.detail is not None and last.detail.startswith("gave up after 2 attempts")


async def test_stop_during_back_off() -> None:
    stream = EventStream()
    async with RestClient(f"http://127.0.0.1:{free_port()}", token="t") as rest:
        channel = NotificationChannel(rest, "sub", on_event=stream, backoff=Backoff(base=5, cap=5))
        channel.start()
        await stream.wait_for(events.WsChange, lambda e: e.state == "reconnecting")
        await channel.stop()
        assert await channel.wait_closed() is ChannelEnd.STOPPED
    last = stream.history[-1]
    assert isinstance(last, events.WsChange) and (last.state, last.reason) == (
        "disconnected",
        "stopped",
    )
