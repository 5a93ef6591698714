"""The engine against Firefox ESR (headless, fake media) on our demo page, both directions."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from softphone.engine.events import CallMediaConnectionChange, CallStateChange
from softphone.engine.states import CallState
from softphone.server.runner import RunningServer
from tests.engine.conftest import Parties, Party
from tests.interop.phone_page import PagePhone

# Firefox's fake microphone (media.navigator.streams.fake) is a 1 kHz sine.
FIREFOX_TONE = 1000.0
ENGINE_TONE = 440.0


async def until(predicate: Callable[[], bool], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.05)


async def hears_firefox(party: Party) -> None:
    frequency = await party.ears.frequency(0.6)
    assert abs(frequency - FIREFOX_TONE) < 30, frequency


async def engine_calls_firefox(
    firefox: PagePhone, server: RunningServer, parties: Parties
) -> tuple[Party, str, str]:
    alice = await parties.online(server, "alice", audio_in=f"tone:{ENGINE_TONE:g}")
    await firefox.login(server.url, "bob")
    out = await alice.engine.make("bob")
    page_id = await firefox.incoming()
    await firefox.answer(page_id)
    await alice.events.state(out, CallState.CONNECTED)
    await firefox.wait_state(page_id, "Connected")
    return alice, out, page_id


async def test_engine_calls_firefox_and_audio_flows_both_ways(
    firefox: PagePhone, server: RunningServer, parties: Parties
) -> None:
    alice, out, page_id = await engine_calls_firefox(firefox, server, parties)
    await hears_firefox(alice)
    await firefox.audio_flows(page_id)
    await alice.engine.end(out)
    await firefox.wait_state(page_id, "Ended")


async def test_firefox_calls_engine_and_audio_flows_both_ways(
    firefox: PagePhone, server: RunningServer, parties: Parties
) -> None:
    alice = await parties.online(server, "alice", audio_in=f"tone:{ENGINE_TONE:g}")
    await firefox.login(server.url, "bob")
    page_id = await firefox.make("alice")
    await until(lambda: any(c.direction == "incoming" for c in alice.engine.get_all()))
    incoming = next(c for c in alice.engine.get_all() if c.direction == "incoming")
    await alice.engine.answer(incoming.id)
    await firefox.wait_state(page_id, "Connected")
    await hears_firefox(alice)
    await firefox.audio_flows(page_id)
    await firefox.end(page_id)
    await alice.events.state(incoming.id, CallState.ENDED)


async def test_engine_holds_and_unholds_firefox_and_hears_it_again(
    firefox: PagePhone, server: RunningServer, parties: Parties
) -> None:
    """Firefox sends an RTCP BYE when our hold makes it stop sending, and resumes on the same
    SSRC after the unhold: the engine must decode it again (issue 11, item 2)."""
    alice, out, page_id = await engine_calls_firefox(firefox, server, parties)
    await hears_firefox(alice)
    await alice.engine.hold(out)
    await alice.events.state(out, CallState.ON_HOLD)
    await firefox.wait_state(page_id, "On Hold")
    await asyncio.sleep(1.0)  # Firefox stops sending and says BYE
    await alice.engine.unhold(out)
    await alice.events.state(out, CallState.CONNECTED)
    await firefox.wait_state(page_id, "Connected")
    await hears_firefox(alice)
    await firefox.audio_flows(page_id)
    await alice.engine.end(out)


async def test_engine_restarts_media_toward_firefox(
    firefox: PagePhone, server: RunningServer, parties: Parties
) -> None:
    alice, out, page_id = await engine_calls_firefox(firefox, server, parties)
    await hears_firefox(alice)
    await alice.engine.restart_media(out)
    await hears_firefox(alice)
    await firefox.audio_flows(page_id)
    assert alice.engine.get(out).state == CallState.CONNECTED


async def test_firefox_killed_is_told_at_once_and_ends_the_call(
    firefox: PagePhone, server: RunningServer, parties: Parties
) -> None:
    """Firefox vanishes mid-call (SIGKILL: no BYE, no hang-up): the engine says the media
    stalled within stall_after + 1 s, and the call ends with that reason (the server may
    end it first when it notices the page's websocket is gone: told either way)."""
    alice, out, _page_id = await engine_calls_firefox(firefox, server, parties)
    await hears_firefox(alice)
    await firefox.browser.kill()
    died = time.monotonic()

    def told(event: object) -> bool:
        if getattr(event, "call_id", None) != out:
            return False
        if isinstance(event, CallMediaConnectionChange):
            return event.state == "stalled"
        return isinstance(event, CallStateChange) and event.state == CallState.ENDED

    event = await alice.events.wait(object, told, timeout=6)
    assert time.monotonic() - died < 2.0 + 1.5
    if isinstance(event, CallMediaConnectionChange):
        assert event.reason and "no audio has arrived" in event.reason
    await alice.events.state(out, CallState.ENDED, timeout=15)
    assert time.monotonic() - died < 10.0 + 2.0
