"""Anonymous calls, the echo bot, and engines behind the thread facade."""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading

import pytest

from softphone.bots.echo import EchoBot, run_echo
from softphone.engine import CallState, EngineThread
from softphone.engine.events import CallReceive, CallStateChange, EngineEvent
from softphone.server.runner import RunningServer
from tests.engine.conftest import Parties
from tests.server.harness import PASSWORD

S = CallState


async def test_anonymous_call_to_an_account_that_allows_it(
    server: RunningServer, parties: Parties
) -> None:
    visitor = parties.make(audio_in="tone:1000")  # never logs in
    desk = await parties.online(server, "desk", audio_in="tone:600")

    v_id = await visitor.engine.make_anonymous("desk", from_="visitor", server_url=server.url)
    received = await desk.events.wait(CallReceive)
    d_id = received.call_id
    assert desk.engine.get(d_id).anonymous
    assert desk.engine.get(d_id).from_ == "visitor"
    await desk.events.state(d_id, S.RINGING)
    await desk.engine.answer(d_id)
    await visitor.events.state(v_id, S.CONNECTED)

    assert visitor.events.states(v_id) == ["Initiated", "Ringing", "Connected"]
    assert await desk.ears.frequency() == pytest.approx(1000, abs=20)
    assert await visitor.ears.frequency() == pytest.approx(600, abs=20)

    await visitor.engine.end(v_id)
    await desk.events.state(d_id, S.ENDED)
    assert desk.engine.get(d_id).end_reason == "hangup"


async def test_anonymous_call_to_an_account_that_refuses_ends_with_error(
    server: RunningServer, parties: Parties
) -> None:
    visitor = parties.make()
    v_id = await visitor.engine.make_anonymous("bob", from_="visitor", server_url=server.url)
    await visitor.events.state(v_id, S.ENDED)
    names = visitor.events.names(v_id)
    assert names[0] == "call:start"
    assert "call:error" in names
    assert visitor.engine.get(v_id).end_reason == "error"
    assert visitor.engine.get(v_id).media_state == "closed"


async def test_echo_bot_returns_the_tone(server: RunningServer, parties: Parties) -> None:
    bot = EchoBot(server.url, lambda: PASSWORD)
    await bot.start()
    try:
        alice = await parties.online(server, "alice", audio_in="tone:1000")
        call_id = await alice.engine.make("echo")
        await alice.events.state(call_id, S.CONNECTED)
        assert bot.answered == 1
        assert await alice.ears.frequency() == pytest.approx(1000, abs=20)
        await alice.engine.end(call_id)
        assert alice.events.states(call_id) == ["Initiated", "Ringing", "Connected", "Ended"]
    finally:
        await bot.stop()


async def test_run_echo_stops_cleanly_when_cancelled(server: RunningServer) -> None:
    task = asyncio.create_task(run_echo(server.url, lambda: PASSWORD))
    await asyncio.sleep(0.3)
    assert not task.done()
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def test_engines_behind_thread_facades(server: RunningServer) -> None:
    url = server.url
    caller = EngineThread(audio_in="tone:1000")
    callee = EngineThread(audio_in="tone:600")
    got: queue.Queue[EngineEvent] = queue.Queue()
    try:
        threads: set[str] = set()
        callee.subscribe(lambda event: threads.add(threading.current_thread().name))
        callee.subscribe(got.put)
        caller_events: queue.Queue[EngineEvent] = queue.Queue()
        caller.subscribe(caller_events.put)
        await asyncio.to_thread(caller.start, url, "alice", lambda: PASSWORD)
        await asyncio.to_thread(callee.start, url, "bob", lambda: PASSWORD)

        call_id = await asyncio.to_thread(caller.make, "bob")
        received = await asyncio.to_thread(_next, got, CallReceive)
        b_id = received.call_id
        await asyncio.to_thread(_state, got, b_id, S.RINGING)
        await asyncio.to_thread(callee.answer, b_id)
        await asyncio.to_thread(_state, caller_events, call_id, S.CONNECTED)
        assert (await asyncio.to_thread(caller.get, call_id)).state == S.CONNECTED
        assert [c.id for c in await asyncio.to_thread(callee.get_all)] == [b_id]

        await asyncio.to_thread(caller.end, call_id)
        await asyncio.to_thread(_state, got, b_id, S.ENDED)
        assert (await asyncio.to_thread(callee.get, b_id)).end_reason == "hangup"
    finally:
        await asyncio.to_thread(caller.close)
        await asyncio.to_thread(callee.close)
    assert not caller.loop.is_running()
    assert threads == {"softphone-engine"}  # events arrive on the engine's thread


def _next(events: queue.Queue[EngineEvent], kind: type[CallReceive]) -> CallReceive:
    while True:
        event = events.get(timeout=10)
        if isinstance(event, kind):
            return event


def _state(events: queue.Queue[EngineEvent], call_id: str, state: CallState) -> None:
    while True:
        event = events.get(timeout=10)
        if isinstance(event, CallStateChange) and event.call_id == call_id and event.state == state:
            return
