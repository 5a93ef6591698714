"""The page against our engine (aiortc): calls both ways, hold and unhold by re-offer both ways."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from softphone.engine import Engine
from softphone.engine.states import CallState
from softphone.server.runner import RunningServer
from tests.server.harness import PASSWORD
from tests.web.test_pages import assert_no_secrets, login, media_flows, row, wait_state


@pytest.fixture(autouse=True)
def loopback_ice(monkeypatch: pytest.MonkeyPatch) -> None:
    """aioice never offers 127.0.0.1 by itself; these tests stay on loopback."""
    import aioice.ice

    monkeypatch.setattr(aioice.ice, "get_host_addresses", lambda use_ipv4, use_ipv6: ["127.0.0.1"])


@pytest.fixture
async def alice_engine(web_server: RunningServer) -> AsyncIterator[Engine]:
    engine = Engine()
    await engine.start(web_server.url, "alice", lambda: PASSWORD)
    yield engine
    await engine.stop()


async def until(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.05)


async def test_engine_and_page_call_and_hold_both_ways(
    browser: Any, web_server: RunningServer, alice_engine: Engine
) -> None:
    engine = alice_engine
    bob, _ = await login(browser, web_server, "bob")

    # The engine calls the page; the engine holds and unholds, then the page does.
    out = await engine.make("bob")
    await row(bob).locator("button.answer").click()
    await until(lambda: engine.get(out).state == CallState.CONNECTED)
    await wait_state(bob, "Connected")
    await engine.hold(out)
    await wait_state(bob, "On Hold")
    await engine.unhold(out)
    await wait_state(bob, "Connected")
    await row(bob).locator("button.hold").click()
    await until(lambda: engine.get(out).state == CallState.ON_HOLD)
    await row(bob).locator("button.unhold").click()
    await until(lambda: engine.get(out).state == CallState.CONNECTED)
    await media_flows(bob, str(await row(bob).get_attribute("data-call-id")), video=False)
    await engine.end(out)
    await wait_state(bob, "Ended")

    # The page calls the engine: the engine's re-offers (it answered first) reach the page too.
    await bob.fill("#callee", "alice")
    await bob.click("#make-call")
    await until(lambda: any(c.direction == "incoming" for c in engine.get_all()))
    incoming = next(c for c in engine.get_all() if c.direction == "incoming")
    await engine.answer(incoming.id)
    await wait_state(bob, "Connected", 2)
    await engine.hold(incoming.id)
    await wait_state(bob, "On Hold", 2)
    await engine.unhold(incoming.id)
    await wait_state(bob, "Connected", 2)
    await media_flows(bob, str(await row(bob, 2).get_attribute("data-call-id")), video=False)
    await row(bob, 2).locator("button.end").click()
    await until(lambda: engine.get(incoming.id).state == CallState.ENDED)
    await assert_no_secrets(bob)
