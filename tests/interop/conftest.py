"""Interop with stacks other than aiortc and Chromium: Firefox ESR, GStreamer webrtcbin, coturn.

- As root the tests run in a private network namespace (tests/netns.py): only `lo`, with a default
  route through it so Firefox gathers candidates; nothing leaves the machine.
- Everything comes from Debian packages and npm (scripts/install.sh --test): firefox-esr driven
  by puppeteer-core (tests/interop/node_modules) over WebDriver BiDi, webrtcbin through
  gst_peer.py under Debian's python3, coturn's turnserver. Missing: a failure under CI
  (CI=true), a skip otherwise.
- The server and the engines are the ones tests/engine uses (real server on 127.0.0.1, engines
  whose aioice offers 127.0.0.1).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from softphone.client import SignalingClient
from softphone.client.events import EventStream
from softphone.server.runner import RunningServer
from tests.client.conftest import Clients
from tests.engine.conftest import loopback_ice, parties, server, start_server  # noqa: F401
from tests.interop.coturn import Coturn
from tests.interop.firefox import Firefox
from tests.interop.phone_page import PagePhone
from tests.interop.tools import (
    firefox_missing,
    require,
    turnserver_missing,
    webrtcbin_missing,
)
from tests.interop.webrtcbin import Webrtcbin
from tests.netns import DEFAULT_ROUTE, LOOPBACK_UP, Namespace, proxy_items

collect_ignore = ["node_modules"]
NAMESPACE = Namespace(
    Path(__file__).resolve().parent, setup=(LOOPBACK_UP, DEFAULT_ROUTE), timeout=900.0
)


def pytest_collection_modifyitems(
    session: pytest.Session, config: pytest.Config, items: list[pytest.Item]
) -> None:
    proxy_items(items, NAMESPACE)


@pytest.fixture
async def firefox() -> AsyncIterator[PagePhone]:
    require(firefox_missing())
    browser = await Firefox.launch()
    try:
        yield PagePhone(browser)
    finally:
        await browser.close()


GstFactory = Callable[[float], Awaitable[Webrtcbin]]


@pytest.fixture
async def webrtcbin() -> AsyncIterator[GstFactory]:
    """Start webrtcbin peers sending a sine of the given frequency; all stopped at the end."""
    require(webrtcbin_missing())
    made: list[Webrtcbin] = []

    async def start(frequency: float) -> Webrtcbin:
        peer = await Webrtcbin.start(frequency)
        made.append(peer)
        return peer

    yield start
    for peer in made:
        await peer.close()


TurnFactory = Callable[[bytes], Awaitable[Coturn]]


@pytest.fixture
async def coturn(tmp_path: Path) -> AsyncIterator[TurnFactory]:
    """Start coturn with a TURN REST API secret; stopped at the end."""
    require(turnserver_missing())
    made: list[Coturn] = []

    async def start(secret: bytes) -> Coturn:
        directory = tmp_path / f"turn{len(made)}"
        directory.mkdir()
        turn = await Coturn.start(directory, secret)
        made.append(turn)
        return turn

    yield start
    for turn in made:
        await turn.stop()


SignalingFactory = Callable[[RunningServer, str], Awaitable[tuple[SignalingClient, EventStream]]]


@pytest.fixture
async def signaling() -> AsyncIterator[SignalingFactory]:
    """Protocol v1 clients that speak for a peer without one of its own (webrtcbin)."""
    made = Clients()

    async def online(at: RunningServer, user: str) -> tuple[SignalingClient, EventStream]:
        return await made.online(at.url, user)

    yield online
    await made.close()
