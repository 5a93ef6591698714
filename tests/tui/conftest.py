"""The TUI against a real in-process server and real engines (tone/null media, loopback)."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from softphone.client import Backoff
from softphone.config import parse_config
from softphone.engine import EngineThread
from softphone.engine.events import EngineEvent
from softphone.server.runner import RunningServer
from softphone.server.tokens import generate_key
from softphone.tui.app import SoftphoneApp
from softphone.tui.options import TuiOptions
from tests.client.conftest import Servers
from tests.server.harness import PASSWORD

FAST = Backoff(base=0.05, cap=0.2, jitter=0.0)
E = TypeVar("E")
MEDIA: dict[str, Any] = {"audio_in": "tone", "audio_out": "null"}


@pytest.fixture(autouse=True)
def loopback_ice(monkeypatch: pytest.MonkeyPatch) -> None:
    """aioice never offers 127.0.0.1 by itself; these tests stay on loopback."""
    import aioice.ice

    monkeypatch.setattr(aioice.ice, "get_host_addresses", lambda use_ipv4, use_ipv6: ["127.0.0.1"])


REALM = "tui"


@pytest.fixture
async def servers(tmp_path: Path) -> AsyncIterator[Servers]:
    """Starts (and restarts, on the same port) the server `server` describes."""
    (tmp_path / "server").mkdir()
    key_file = tmp_path / "server" / "realm.key"
    key_file.write_text(generate_key("v2") + "\n")
    config = parse_config(f"""
[server]
data_dir = "{tmp_path / "server"}"
ring_timeout = 30
resume_window = 5
[rate_limits]
login_per_minute = 1000
anonymous_per_minute = 1000
[[realms]]
name = "{REALM}"
format = "v2"
key_file = "{key_file}"
[demo]
enabled = true
realm = "{REALM}"
caller = "guest"
callee = "desk"
account = "desk"
""")
    made = Servers(config)
    yield made
    await made.close()


@pytest.fixture
async def server(servers: Servers) -> RunningServer:
    """A server with alice, bob, carol and desk (password PASSWORD; desk takes anonymous
    calls) on the test's loop, a v2 token realm and the demo token endpoint for desk."""
    return await servers.start()


class Far:
    """Another party: an `EngineThread` whose events a test can wait for without blocking
    the app's loop (blocking engine calls go through `asyncio.to_thread`)."""

    def __init__(self) -> None:
        self.thread = EngineThread(**MEDIA)
        self.events: list[EngineEvent] = []
        self._lock = threading.Lock()
        self.thread.subscribe(self._record)

    def _record(self, event: EngineEvent) -> None:
        with self._lock:
            self.events.append(event)

    async def start(self, server: RunningServer, user: str) -> None:
        await asyncio.to_thread(self.thread.start, server.url, user, lambda: PASSWORD, backoff=FAST)

    async def call(self, fn: Callable[..., Any], *args: Any, **kw: Any) -> Any:
        return await asyncio.to_thread(fn, *args, **kw)

    async def wait(
        self, kind: type[E], predicate: Callable[[E], bool] = lambda e: True, timeout: float = 15
    ) -> E:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                found = [e for e in self.events if isinstance(e, kind) and predicate(e)]
            if found:
                return found[0]
            await asyncio.sleep(0.05)
        raise TimeoutError(f"no {kind.__name__}; saw {[e.name for e in self.events]}")

    def of(self, kind: type[E]) -> list[E]:
        with self._lock:
            return [e for e in self.events if isinstance(e, kind)]


@pytest.fixture
def far() -> Iterator[Callable[[], Far]]:
    made: list[Far] = []

    def make() -> Far:
        party = Far()
        made.append(party)
        return party

    yield make
    for party in made:
        party.thread.close()


def app_for(server: RunningServer, user: str = "alice") -> SoftphoneApp:
    return SoftphoneApp(
        TuiOptions(
            server_url=server.url,
            user=user,
            password=PASSWORD,
            engine_options=dict(MEDIA),
            client_options={"backoff": FAST},
        )
    )


async def until(
    pilot: Any, condition: Callable[[], bool], timeout: float = 15, what: str = ""
) -> None:
    """Let the app run until `condition()` holds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or condition}")
        await pilot.pause(0.05)


def row_states(app: SoftphoneApp) -> dict[str, str]:
    """Party → state, as the Calls pane shows them."""
    table = app.calls_pane
    return {str(row[0]): str(row[2]) for row in (table.get_row(k) for k in table.rows)}


async def answered_by_key(
    pilot: Any, app: SoftphoneApp, server: RunningServer, bob: Far
) -> tuple[Far, str]:
    """Once the app is logged in: bob calls alice, the app answers with `a`, the Calls pane
    shows bob Connected. Returns bob and his call's id."""
    await until(pilot, lambda: app.engine is not None, what="login")
    await bob.start(server, "bob")
    call_id = await bob.call(bob.thread.make, "alice")
    await until(pilot, lambda: app.incoming_pane.first is not None, what="incoming")
    await pilot.press("a")
    await until(pilot, lambda: row_states(app).get("bob") == "in call", what="in call")
    return bob, call_id
