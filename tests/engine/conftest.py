"""Engines against a real in-process server on 127.0.0.1, with real aiortc media on loopback."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pytest

from softphone.client import Backoff
from softphone.config import Config, parse_config
from softphone.engine import Engine
from softphone.engine.events import CallStateChange, EngineEvent
from softphone.engine.states import CallState
from softphone.media.analysis import dominant_frequency, rms
from softphone.server.runner import RunningServer
from softphone.server.services import SERVICES
from tests.client.conftest import Servers
from tests.conftest import _HASH
from tests.server.harness import PASSWORD

FAST = Backoff(base=0.05, cap=0.2, jitter=0.0)
E = TypeVar("E")


@pytest.fixture(autouse=True)
def loopback_ice(monkeypatch: pytest.MonkeyPatch) -> None:
    """aioice never offers 127.0.0.1 by itself; these tests stay on loopback."""
    import aioice.ice

    monkeypatch.setattr(aioice.ice, "get_host_addresses", lambda use_ipv4, use_ipv6: ["127.0.0.1"])


def engine_config(tmp_path: Path, ring_timeout: float = 30, extra: str = "") -> Config:
    """The test server's config; `extra` is appended (e.g. `[[realms]]` tables)."""
    return parse_config(f"""
[server]
data_dir = "{tmp_path}"
ring_timeout = {ring_timeout}
resume_window = 2
[rate_limits]
login_per_minute = 1000
anonymous_per_minute = 1000
{extra}
""")


class Recorder:
    """Collects an engine's events and lets a test wait for one."""

    def __init__(self) -> None:
        self.events: list[EngineEvent] = []
        self._changed = asyncio.Event()

    def __call__(self, event: EngineEvent) -> None:
        self.events.append(event)
        self._changed.set()

    async def wait(
        self, kind: type[E], predicate: Callable[[E], bool] = lambda e: True, timeout: float = 10
    ) -> E:
        deadline = time.monotonic() + timeout
        seen = 0
        while True:
            for event in self.events[seen:]:
                if isinstance(event, kind) and predicate(event):
                    return event
            seen = len(self.events)
            self._changed.clear()
            left = deadline - time.monotonic()
            if left <= 0:
                names = [e.name for e in self.events]
                raise TimeoutError(f"no {kind.__name__} in time; saw {names}")
            try:
                async with asyncio.timeout(left):
                    await self._changed.wait()
            except TimeoutError:
                pass

    async def state(self, call_id: str, state: CallState, timeout: float = 10) -> CallStateChange:
        return await self.wait(
            CallStateChange, lambda e: e.call_id == call_id and e.state == state, timeout
        )

    def of(self, call_id: str) -> list[EngineEvent]:
        return [e for e in self.events if getattr(e, "call_id", None) == call_id]

    def names(self, call_id: str) -> list[str]:
        return [e.name for e in self.of(call_id)]

    def states(self, call_id: str) -> list[str]:
        return [e.state.value for e in self.of(call_id) if isinstance(e, CallStateChange)]

    def changes(self, call_id: str) -> list[CallStateChange]:
        return [e for e in self.of(call_id) if isinstance(e, CallStateChange)]


class Ears:
    """Remote audio an engine receives, per call, with time stamps."""

    def __init__(self, engine: Engine) -> None:
        self.blocks: list[tuple[float, str, np.ndarray[Any, Any]]] = []
        engine.add_pcm_listener(self._heard)

    def _heard(self, call_id: str, pcm: np.ndarray[Any, Any]) -> None:
        self.blocks.append((time.monotonic(), call_id, pcm.copy()))

    async def listen(self, seconds: float, settle: float = 0.3) -> np.ndarray[Any, Any]:
        """What arrives during `seconds`, after letting `settle` seconds pass first."""
        await asyncio.sleep(settle)
        start = time.monotonic()
        await asyncio.sleep(seconds)
        got = [pcm for t, _, pcm in self.blocks if t >= start]
        return np.concatenate(got) if got else np.zeros(0, dtype=np.int16)

    async def frequency(self, seconds: float = 0.6) -> float:
        pcm = await self.listen(seconds)
        assert pcm.size > 0, "no audio received"
        return dominant_frequency(pcm)

    async def level(self, seconds: float = 0.6) -> float:
        pcm = await self.listen(seconds)
        return rms(pcm) if pcm.size else 0.0


class Party:
    def __init__(self, engine: Engine, recorder: Recorder, ears: Ears) -> None:
        self.engine = engine
        self.events = recorder
        self.ears = ears


class Parties:
    """Starts engines for users on a server; stops them all at the end."""

    def __init__(self) -> None:
        self.engines: list[Engine] = []

    def make(self, **options: Any) -> Party:
        engine = Engine(**options)
        recorder = Recorder()
        engine.subscribe(recorder)
        self.engines.append(engine)
        return Party(engine, recorder, Ears(engine))

    async def online(self, server: RunningServer, user: str, **options: Any) -> Party:
        party = self.make(**options)
        await party.engine.start(server.url, user, lambda: PASSWORD, backoff=FAST, stop_timeout=1.0)
        return party

    async def close(self) -> None:
        for engine in self.engines:
            await engine.stop()


ServerFactory = Callable[..., Awaitable[RunningServer]]


@pytest.fixture
async def start_server(tmp_path: Path) -> AsyncIterator[ServerFactory]:
    """Start a server (options: `ring_timeout`, `extra` config) with the test users and `echo`."""
    made: list[Servers] = []

    async def start(ring_timeout: float = 30, extra: str = "") -> RunningServer:
        data = tmp_path / f"server{len(made)}"
        data.mkdir()
        running = Servers(engine_config(data, ring_timeout, extra))
        made.append(running)
        srv = await running.start()
        srv.app[SERVICES].store.add_user("echo", _HASH, False)
        return srv

    yield start
    for running in made:
        await running.close()


@pytest.fixture
async def server(start_server: ServerFactory) -> RunningServer:
    return await start_server()


@pytest.fixture
async def parties() -> AsyncIterator[Parties]:
    made = Parties()
    yield made
    await made.close()
