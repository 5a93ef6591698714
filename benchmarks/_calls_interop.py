"""Phase 6 of `benchmarks.calls`: interop and media robustness, per peer (issue 11).

    python -m benchmarks._calls_interop --calls N [--quick]

Prints one JSON object. `benchmarks.calls` runs it under `unshare -n` when root, with a default
route on `lo` (Firefox gathers nothing without one). Peers: our engine, Firefox ESR (our demo
page, puppeteer-core over WebDriver BiDi), Chromium (our demo page, Playwright), GStreamer
webrtcbin (tests/interop/gst_peer.py), and engine↔engine relay-only through coturn; whatever
is not installed is reported as skipped.

Figures (all from one clock per comparison: wall time for pages, CLOCK_MONOTONIC for the
engine and webrtcbin; "audio" means a decoded block louder than silence at the engine or at
webrtcbin, and inbound-rtp packets counted by the page's getStats, polled every 5 ms in-page):

- setup: make → audio both ways (the later of the two directions), per direction and peer;
  pages also make → Connected, with trickle ICE on (the default) and off;
- told: media death (peer killed with SIGKILL, DTLS failure, path dropped) → the first event
  that tells the user (`call:mediaConnectionChange` stalled/failed, `media:error`,
  `call:error` or the call ending), and → the call ended;
- restart: `restart_media` duration (re-offer → new path up) and the longest audio gap the
  engine heard around it (and the page's longest stretch without a new inbound packet).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks._calls_common import (
    PASSWORD,
    LoadWindow,
    force_loopback,
    inprocess_server,
    log,
    summary,
)
from softphone.client import Backoff, EventStream, SignalingClient
from softphone.client.events import Notification
from softphone.engine import Engine
from softphone.engine.events import (
    CallError,
    CallMediaConnectionChange,
    CallReceive,
    CallStateChange,
    EngineEvent,
    MediaError,
)
from softphone.engine.states import CallState
from softphone.protocol import frames

FAST = Backoff(base=0.05, cap=0.2, jitter=0.0)
LOUD = 2000  # peak of a decoded block that is the far end's tone, not silence or concealment
PAGE_FIRST_AUDIO = """
const calls = window.softphone.calls;
const started = Date.now();
while (Date.now() - started < %(timeout)d) {
  const call = calls.getById(%(id)s);
  if (call && call.pc) {
    const stats = await calls.stats(%(id)s);
    if (stats.audio.packetsReceived > 0) return Date.now();
  }
  await new Promise((r) => setTimeout(r, 5));
}
return null;
"""
PAGE_GAP = """
const calls = window.softphone.calls;
const until = Date.now() + %(ms)d;
let last = -1, lastAt = Date.now(), longest = 0;
while (Date.now() < until) {
  const n = (await calls.stats(%(id)s)).audio.packetsReceived;
  const now = Date.now();
  if (n !== last) { longest = Math.max(longest, now - lastAt); last = n; lastAt = now; }
  await new Promise((r) => setTimeout(r, 10));
}
return Math.max(longest, Date.now() - lastAt);
"""
PAGE_MAKE = """
const calls = window.softphone.calls;
calls.trickle = %(trickle)s;
const t0 = Date.now();
const id = calls.make(%(to)s);
return {id, t0};
"""
PAGE_AUTO_ANSWER = """
const c = window.softphone.calls;
if (!window.autoAnswer) {
  window.autoAnswer = true;
  c.on('call:receive', (p) => { c.answer(p.callId).catch(() => {}); });
}
"""
PAGE_CONNECTED_MS = """
const call = window.softphone.calls.getById(%(id)s);
return call && call.connectedAt !== null ? call.connectedAt - call.startedAt : null;
"""
PAGE_END_ALL = """
const c = window.softphone.calls;
for (const call of c.getAll()) {
  if (call.state !== 'Ended' && call.state !== 'Cancelled') await c.end(call.id).catch(() => {});
}
"""


def ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 1)


class EngineParty:
    """An engine logged in as `user`: loud blocks per call (monotonic and wall time), events
    with their monotonic time, auto-answer."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.loud: dict[str, list[float]] = {}  # call id -> monotonic times of loud blocks
        self.events: list[tuple[float, EngineEvent]] = []
        self.auto_answer = False
        self._tasks: set[asyncio.Task[Any]] = set()
        engine.add_pcm_listener(self._pcm)
        engine.subscribe(self._event)

    @classmethod
    async def online(cls, url: str, user: str, **options: Any) -> EngineParty:
        engine = Engine(audio_in="tone:440", audio_out="null", **options)
        await engine.start(url, user, lambda: PASSWORD, backoff=FAST, stop_timeout=1.0)
        return cls(engine)

    def _pcm(self, call_id: str, pcm: np.ndarray[Any, Any]) -> None:
        if pcm.size and int(np.abs(pcm).max()) > LOUD:
            self.loud.setdefault(call_id, []).append(time.monotonic())

    def _event(self, event: EngineEvent) -> None:
        self.events.append((time.monotonic(), event))
        if self.auto_answer and isinstance(event, CallReceive):
            task = asyncio.ensure_future(self.engine.answer(event.call_id))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def first_loud(self, call_id: Callable[[], str | None], timeout: float = 10) -> float:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            cid = call_id()
            if cid is not None and self.loud.get(cid):
                return self.loud[cid][0]
            await asyncio.sleep(0.002)
        raise TimeoutError("the engine heard nothing")

    def incoming(self) -> str | None:
        """The newest incoming call that is not over (None: none yet)."""
        found = [
            c.id
            for c in self.engine.get_all()
            if c.direction == "incoming" and c.state not in (CallState.ENDED, CallState.CANCELLED)
        ]
        return found[-1] if found else None

    async def wait_event(
        self, predicate: Callable[[EngineEvent], bool], since: float, timeout: float
    ) -> float | None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for at, event in self.events:
                if at >= since and predicate(event):
                    return at
            await asyncio.sleep(0.01)
        return None

    async def told_and_ended(self, call_id: str, since: float, timeout: float) -> dict[str, Any]:
        """Death at `since` → first event telling the user, → the call ended."""

        def told(event: EngineEvent) -> bool:
            if getattr(event, "call_id", None) != call_id:
                return False
            if isinstance(event, CallMediaConnectionChange):
                return event.state in ("stalled", "failed")
            if isinstance(event, CallStateChange):
                return event.state == CallState.ENDED
            return isinstance(event, CallError | MediaError)

        def ended(event: EngineEvent) -> bool:
            return (
                isinstance(event, CallStateChange)
                and event.call_id == call_id
                and event.state == CallState.ENDED
            )

        told_at = await self.wait_event(told, since, timeout)
        ended_at = await self.wait_event(ended, since, timeout)
        reason = next(
            (
                e.error.message
                for at, e in self.events
                if at >= since and isinstance(e, CallError) and e.call_id == call_id
            ),
            None,
        ) or next(
            (
                e.reason
                for at, e in self.events
                if at >= since
                and isinstance(e, CallMediaConnectionChange)
                and e.call_id == call_id
                and e.reason
            ),
            None,
        )
        return {
            "told_ms": ms(None if told_at is None else told_at - since),
            "ended_ms": ms(None if ended_at is None else ended_at - since),
            "reason": reason,
        }

    def gap(self, call_id: str, start: float, end: float) -> float | None:
        """The longest stretch without a loud block in [start, end] (seconds)."""
        times = [t for t in self.loud.get(call_id, []) if start <= t <= end]
        if not times:
            return None
        points = [start, *times, end]
        return max(b - a for a, b in itertools.pairwise(points))

    async def end_all(self) -> None:
        for call in self.engine.get_all():
            if call.state not in (CallState.ENDED, CallState.CANCELLED):
                with contextlib.suppress(Exception):
                    await self.engine.end(call.id)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and any(
            c.state not in (CallState.ENDED, CallState.CANCELLED) for c in self.engine.get_all()
        ):
            await asyncio.sleep(0.02)


class PlaywrightPage:
    """A Playwright (Chromium) page behind the interface PagePhone drives (goto, run)."""

    def __init__(self, page: Any) -> None:
        self.page = page

    async def goto(self, url: str) -> None:
        await self.page.goto(url)

    async def run(self, body: str, timeout: float = 20) -> Any:
        return await self.page.evaluate(f"async () => {{ {body} }}")


async def guarded(name: str, out: dict[str, Any], run: Callable[[], Awaitable[Any]]) -> None:
    try:
        out[name] = await run()
    except Exception as exc:  # one peer's failure is a figure, not the end of the phase
        log(f"interop {name}: {type(exc).__name__}: {exc}")
        out[name] = {"error": f"{type(exc).__name__}: {exc}"}


# -------------------------------------------------------------------------------- pages


async def page_scenarios(page: Any, alice: EngineParty, calls: int, user: str) -> dict[str, Any]:
    """Setup both ways (trickle on and off), restart toward the page, then the page killed is
    the caller's job (it owns the browser)."""
    out: dict[str, Any] = {}
    await page.browser.run(PAGE_AUTO_ANSWER)
    engine = alice.engine

    async def page_first_audio(page_id: str, timeout_ms: int = 10000) -> float:
        js = PAGE_FIRST_AUDIO % {"id": json.dumps(page_id), "timeout": timeout_ms}
        at = await page.browser.run(js, timeout=timeout_ms / 1000 + 5)
        if at is None:
            raise TimeoutError("the page heard nothing")
        return float(at) / 1000

    async def latest_page_call() -> str:
        return str(
            await page.until(
                "const all = window.softphone.calls.getAll(); "
                "return all.length ? all[all.length - 1].id : null;"
            )
        )

    async def engine_to_page(trickle: bool = True) -> dict[str, float | None]:
        await page.browser.run(f"window.softphone.calls.trickle = {str(trickle).lower()};")
        wall0, mono0 = time.time(), time.monotonic()
        out_id = await engine.make(user)
        heard = await alice.first_loud(lambda: out_id)
        page_id = await latest_page_call()
        page_heard = await page_first_audio(page_id)
        result = {
            "engine_heard_ms": ms(heard - mono0),
            "page_heard_ms": ms(page_heard - wall0),
        }
        await alice.end_all()
        await page.browser.run(PAGE_END_ALL)
        return result

    async def page_to_engine(trickle: bool) -> dict[str, float | None]:
        alice.auto_answer = True
        made = await page.browser.run(
            PAGE_MAKE % {"to": '"alice"', "trickle": str(trickle).lower()}
        )
        wall0 = float(made["t0"]) / 1000
        mono0 = time.monotonic() - (time.time() - wall0)
        heard = await alice.first_loud(alice.incoming)
        page_heard = await page_first_audio(str(made["id"]))
        connected = await page.until(PAGE_CONNECTED_MS % {"id": json.dumps(made["id"])})
        result = {
            "engine_heard_ms": ms(heard - mono0),
            "page_heard_ms": ms(page_heard - wall0),
            "page_connected_ms": round(float(connected), 1),
        }
        alice.auto_answer = False
        await page.browser.run(PAGE_END_ALL)
        await alice.end_all()
        return result

    async def series(run: Callable[[], Awaitable[dict[str, float | None]]]) -> dict[str, Any]:
        rows = []
        for _ in range(calls + 1):
            rows.append(await run())
            await asyncio.sleep(0.2)
        cold, warm = rows[0], rows[1:]
        both = [
            max(r["engine_heard_ms"] or 0, r["page_heard_ms"] or 0)
            for r in warm
            if r["engine_heard_ms"] is not None and r["page_heard_ms"] is not None
        ]
        figures: dict[str, Any] = {
            "make_to_audio_both_ways_ms": summary(both),
            "engine_heard_ms": summary(
                [r["engine_heard_ms"] for r in warm if r["engine_heard_ms"]]
            ),
            "page_heard_ms": summary([r["page_heard_ms"] for r in warm if r["page_heard_ms"]]),
            "first_call": cold,
        }
        connected = [x for r in warm if (x := r.get("page_connected_ms"))]
        if connected:
            figures["page_make_to_connected_ms"] = summary(connected)
        return figures

    await guarded("engine_to_page_trickle", out, lambda: series(engine_to_page))
    await guarded("engine_to_page_no_trickle", out, lambda: series(lambda: engine_to_page(False)))
    await page.browser.run("window.softphone.calls.trickle = true;")
    await guarded("page_to_engine_trickle", out, lambda: series(lambda: page_to_engine(True)))
    await guarded("page_to_engine_no_trickle", out, lambda: series(lambda: page_to_engine(False)))

    async def restart() -> dict[str, Any]:
        rows = []
        for _ in range(max(2, calls // 2)):
            out_id = await engine.make(user)
            await alice.first_loud(lambda cid=out_id: cid)  # type: ignore[misc]
            page_id = await latest_page_call()
            await page_first_audio(page_id)
            await asyncio.sleep(0.5)
            gap_task = asyncio.ensure_future(
                page.browser.run(PAGE_GAP % {"id": json.dumps(page_id), "ms": 2500}, timeout=10)
            )
            await asyncio.sleep(0.3)
            start = time.monotonic()
            await engine.restart_media(out_id)
            took = time.monotonic() - start
            await asyncio.sleep(2.0)
            page_gap = await gap_task
            rows.append(
                {
                    "restart_ms": ms(took),
                    "engine_audio_gap_ms": ms(alice.gap(out_id, start - 0.2, start + 1.9)),
                    "page_inbound_gap_ms": page_gap,
                    "still_connected": engine.get(out_id).state == CallState.CONNECTED,
                }
            )
            await alice.end_all()
            await page.browser.run(PAGE_END_ALL)
        return {
            "restart_ms": summary([r["restart_ms"] for r in rows if r["restart_ms"]]),
            "engine_audio_gap_ms": summary(
                [r["engine_audio_gap_ms"] for r in rows if r["engine_audio_gap_ms"]]
            ),
            "page_inbound_gap_ms": summary(
                [r["page_inbound_gap_ms"] for r in rows if r["page_inbound_gap_ms"]]
            ),
            "calls": rows,
        }

    await guarded("restart_media", out, restart)
    return out


async def page_killed(
    page: Any, alice: EngineParty, user: str, kill: Callable[[], Awaitable[None]]
) -> dict[str, Any]:
    await page.browser.run(PAGE_AUTO_ANSWER)
    out_id = await alice.engine.make(user)
    await alice.first_loud(lambda: out_id)
    await asyncio.sleep(0.5)
    died = time.monotonic()
    await kill()
    result = await alice.told_and_ended(out_id, died, 20)
    await alice.end_all()
    return result


async def firefox_phase(url: str, alice: EngineParty, calls: int) -> dict[str, Any]:
    from tests.interop import phone_page
    from tests.interop.firefox import Firefox
    from tests.interop.phone_page import PagePhone

    setattr(phone_page, "PASSWORD", PASSWORD)  # noqa: B010 (the benchmark server's users)
    from tests.interop.tools import firefox_missing

    missing = firefox_missing()
    if missing:
        return {"skipped": missing}
    browser = await Firefox.launch()
    try:
        page = PagePhone(browser)
        await page.login(url, "bob")
        out: dict[str, Any] = {"version": browser.version}
        out.update(await page_scenarios(page, alice, calls, "bob"))
        await guarded("killed", out, lambda: page_killed(page, alice, "bob", browser.kill))
        return out
    finally:
        await browser.close()


async def chromium_phase(url: str, alice: EngineParty, calls: int) -> dict[str, Any]:
    from benchmarks._calls_browser import CHROMIUM, FLAGS
    from tests.interop import phone_page
    from tests.interop.phone_page import PagePhone

    setattr(phone_page, "PASSWORD", PASSWORD)  # noqa: B010 (the benchmark server's users)

    if not Path(CHROMIUM).exists():
        return {"skipped": f"{CHROMIUM} is not installed"}
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
        try:
            context = await browser.new_context()
            page = PagePhone(PlaywrightPage(await context.new_page()))  # type: ignore[arg-type]
            await page.login(url, "carol")
            out: dict[str, Any] = {"version": browser.version}
            out.update(await page_scenarios(page, alice, calls, "carol"))

            async def kill() -> None:
                await context.close()  # the page and its peer connections go at once

            await guarded("killed", out, lambda: page_killed(page, alice, "carol", kill))
            return out
        finally:
            await browser.close()


# -------------------------------------------------------------------------------- webrtcbin


async def webrtcbin_phase(url: str, alice: EngineParty, calls: int) -> dict[str, Any]:
    from tests.interop.test_webrtcbin import wrong_fingerprint
    from tests.interop.tools import webrtcbin_missing
    from tests.interop.webrtcbin import Webrtcbin

    missing = webrtcbin_missing()
    if missing:
        return {"skipped": missing}
    stream = EventStream()
    client = SignalingClient(
        url, "dave", lambda: PASSWORD, on_event=stream, backoff=FAST, stop_timeout=1.0
    )
    await client.start()
    await client.wait_connected(5)
    engine = alice.engine
    out: dict[str, Any] = {"note": "webrtcbin waits for complete gathering (no trickle)"}

    async def frame(kind: type[Any], timeout: float = 10) -> Any:
        event = await stream.wait_for(
            Notification, lambda e: isinstance(e.frame, kind), timeout=timeout
        )
        return event.frame

    async def engine_to_gst() -> dict[str, float | None]:
        gst = await Webrtcbin.start(660.0)
        try:
            mono0 = time.monotonic()
            out_id = await engine.make("dave")
            offer = await frame(frames.CallIncoming)
            answer = await gst.answer(offer.sdp)
            await client.rest.answer(offer.call.id, answer)
            heard = await alice.first_loud(lambda: out_id)
            deadline = time.monotonic() + 10
            while (gst_heard := await gst.first_audio()) is None:
                assert time.monotonic() < deadline, "webrtcbin heard nothing"
                await asyncio.sleep(0.01)
            return {"engine_heard_ms": ms(heard - mono0), "peer_heard_ms": ms(gst_heard - mono0)}
        finally:
            await alice.end_all()
            await gst.close()

    async def gst_to_engine(tamper: bool = False) -> dict[str, Any]:
        gst = await Webrtcbin.start(660.0)
        try:
            alice.auto_answer = True
            offer = await gst.offer()
            mono0 = time.monotonic()
            await client.rest.make_call("alice", wrong_fingerprint(offer) if tamper else offer)
            answered = await frame(frames.CallAnswered)
            answered_at = time.monotonic()
            await gst.apply_answer(answered.sdp)
            if tamper:
                call_id = alice.incoming()
                assert call_id is not None
                return await alice.told_and_ended(call_id, answered_at, 25)
            heard = await alice.first_loud(alice.incoming)
            deadline = time.monotonic() + 10
            while (gst_heard := await gst.first_audio()) is None:
                assert time.monotonic() < deadline, "webrtcbin heard nothing"
                await asyncio.sleep(0.01)
            return {"engine_heard_ms": ms(heard - mono0), "peer_heard_ms": ms(gst_heard - mono0)}
        finally:
            alice.auto_answer = False
            await alice.end_all()
            await gst.close()

    async def series(run: Callable[[], Awaitable[dict[str, Any]]]) -> dict[str, Any]:
        rows = [await run() for _ in range(calls + 1)]
        warm = rows[1:]
        both = [max(r["engine_heard_ms"], r["peer_heard_ms"]) for r in warm]
        return {
            "make_to_audio_both_ways_ms": summary(both),
            "engine_heard_ms": summary([r["engine_heard_ms"] for r in warm]),
            "peer_heard_ms": summary([r["peer_heard_ms"] for r in warm]),
            "first_call": rows[0],
        }

    async def killed() -> dict[str, Any]:
        gst = await Webrtcbin.start(660.0)
        try:
            out_id = await engine.make("dave")
            offer = await frame(frames.CallIncoming)
            await client.rest.answer(offer.call.id, await gst.answer(offer.sdp))
            await alice.first_loud(lambda: out_id)
            await asyncio.sleep(0.5)
            died = time.monotonic()
            await gst.kill()
            return await alice.told_and_ended(out_id, died, 25)
        finally:
            await alice.end_all()
            await gst.close()

    async def restart() -> dict[str, Any]:
        """restart_media toward webrtcbin: the helper answers the re-offer on its webrtcbin."""
        gst = await Webrtcbin.start(660.0)
        try:
            out_id = await engine.make("dave")
            offer = await frame(frames.CallIncoming)
            await client.rest.answer(offer.call.id, await gst.answer(offer.sdp))
            await alice.first_loud(lambda: out_id)
            await asyncio.sleep(0.5)

            async def answer_update() -> None:
                update = await frame(frames.CallUpdate)
                await client.rest.update_answer(offer.call.id, await gst.reanswer(update.sdp))

            helper = asyncio.ensure_future(answer_update())
            start = time.monotonic()
            try:
                await engine.restart_media(out_id)
            finally:
                helper.cancel()
            took = time.monotonic() - start
            await asyncio.sleep(2.0)
            return {
                "restart_ms": ms(took),
                "engine_audio_gap_ms": ms(alice.gap(out_id, start - 0.2, start + 1.9)),
                "still_connected": engine.get(out_id).state == CallState.CONNECTED,
            }
        finally:
            await alice.end_all()
            await gst.close()

    try:
        await guarded("engine_to_webrtcbin", out, lambda: series(engine_to_gst))
        await guarded("webrtcbin_to_engine", out, lambda: series(gst_to_engine))
        await guarded("dtls_failure_told", out, lambda: gst_to_engine(tamper=True))
        await guarded("killed", out, killed)
        await guarded("restart_media", out, restart)
    finally:
        await client.stop()
    return out


# -------------------------------------------------------------------------------- engine↔engine


async def engine_phase(url: str, alice: EngineParty, calls: int) -> dict[str, Any]:
    from tests.engine.test_media_health import drop_path

    bob = await EngineParty.online(url, "bob", media_dead_timeout=10.0)
    bob.auto_answer = True
    out: dict[str, Any] = {}
    engine = alice.engine

    async def call() -> str:
        out_id = await engine.make("bob")
        await alice.first_loud(lambda: out_id)
        await bob.first_loud(bob.incoming)
        return out_id

    async def restart() -> dict[str, Any]:
        rows = []
        for _ in range(max(2, calls // 2)):
            out_id = await call()
            in_id = bob.incoming()
            assert in_id is not None
            await asyncio.sleep(0.5)
            start = time.monotonic()
            await engine.restart_media(out_id)
            took = time.monotonic() - start
            await asyncio.sleep(2.0)
            rows.append(
                {
                    "restart_ms": ms(took),
                    "caller_gap_ms": ms(alice.gap(out_id, start - 0.2, start + 1.9)),
                    "callee_gap_ms": ms(bob.gap(in_id, start - 0.2, start + 1.9)),
                }
            )
            await alice.end_all()
            await bob.end_all()
        return {
            key: summary([x for r in rows if (x := r[key]) is not None])
            for key in ("restart_ms", "caller_gap_ms", "callee_gap_ms")
        }

    async def path_dies() -> dict[str, Any]:
        """Every datagram of the current ICE connections dropped both ways: told, then the
        automatic restart brings audio back (new path, same DTLS)."""
        out_id = await call()
        in_id = bob.incoming()
        assert in_id is not None
        await asyncio.sleep(0.5)
        died = time.monotonic()
        for party, cid in ((alice, out_id), (bob, in_id)):
            peer = party.engine.session(cid).peer
            assert peer is not None
            drop_path(peer)
        told = await alice.wait_event(
            lambda e: isinstance(e, CallMediaConnectionChange) and e.state == "stalled", died, 10
        )
        await asyncio.sleep(0.1)
        deadline = time.monotonic() + 15
        back = None
        while time.monotonic() < deadline:
            late = [t for t in alice.loud.get(out_id, []) if t > (told or died) + 0.05]
            if late:
                back = late[0]
                break
            await asyncio.sleep(0.02)
        result = {
            "told_ms": ms(None if told is None else told - died),
            "audio_back_ms": ms(None if back is None else back - died),
            "still_connected": engine.get(out_id).state == CallState.CONNECTED,
        }
        await alice.end_all()
        await bob.end_all()
        return result

    await guarded("restart_media", out, restart)
    await guarded("path_dies_recovered", out, path_dies)
    bob.auto_answer = False
    await bob.engine.stop()
    return out


async def relay_phase(calls: int) -> dict[str, Any]:
    """Engine↔engine with no host address at all: every packet through coturn (TURN REST
    secret), on a server that hands out the credentials; setup make → audio both ways."""
    import tempfile

    import aioice.ice

    from tests.interop.coturn import Coturn
    from tests.interop.tools import turnserver_missing

    missing = turnserver_missing()
    if missing:
        return {"skipped": missing}
    secret = b"benchmark-turn-secret"
    with tempfile.TemporaryDirectory(prefix="softphone-turn-") as tmp:
        turn = await Coturn.start(Path(tmp), secret)
        secret_file = Path(tmp) / "turn.secret"
        secret_file.write_bytes(secret + b"\n")
        extra = f'[turn]\nurls = ["{turn.url}"]\nsecret_file = "{secret_file}"\n'
        hosts = aioice.ice.get_host_addresses
        aioice.ice.get_host_addresses = lambda use_ipv4, use_ipv6: []
        try:
            async with inprocess_server(extra) as server:
                alice = await EngineParty.online(server.url, "alice")
                bob = await EngineParty.online(server.url, "bob")
                bob.auto_answer = True
                rows = []
                relayed = True
                for _ in range(calls + 1):
                    mono0 = time.monotonic()
                    out_id = await alice.engine.make("bob")
                    a = await alice.first_loud(lambda cid=out_id: cid)  # type: ignore[misc]
                    b = await bob.first_loud(bob.incoming)
                    peer = alice.engine.session(out_id).peer
                    pair = peer.selected_pair() if peer is not None else None
                    relayed = relayed and pair is not None and pair.relayed
                    rows.append(max(a, b) - mono0)
                    await alice.end_all()
                    await bob.end_all()
                await alice.engine.stop()
                await bob.engine.stop()
        finally:
            aioice.ice.get_host_addresses = hosts
            await turn.stop()
    return {
        "make_to_audio_both_ways_ms": summary([r * 1000 for r in rows[1:]]),
        "first_call_ms": ms(rows[0]),
        "every_pair_relayed": relayed,
    }


# -------------------------------------------------------------------------------- main


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--calls", type=int, default=5)
    ap.add_argument("--only", default="", help="comma-separated phases (default: all)")
    args = ap.parse_args()
    only = set(filter(None, args.only.split(",")))
    force_loopback()
    load = LoadWindow()
    out: dict[str, Any] = {
        "in_private_netns": os.environ.get("SOFTPHONE_CALLS_NETNS") == "1",
        "calls_per_series": args.calls,
        "setup": "make -> audio both ways: the later of 'engine heard' and 'peer heard'",
    }
    async with inprocess_server() as server:
        alice = await EngineParty.online(server.url, "alice")
        for name, phase in (
            ("engine", engine_phase),
            ("firefox", firefox_phase),
            ("chromium", chromium_phase),
            ("webrtcbin", webrtcbin_phase),
        ):
            if only and name not in only:
                continue
            log(f"interop phase: {name}")
            await guarded(name, out, lambda p=phase: p(server.url, alice, args.calls))  # type: ignore[misc]
        await alice.engine.stop()
    if not only or "relay" in only:
        log("interop phase: relay-only through coturn")
        await guarded("relay_only_coturn", out, lambda: relay_phase(args.calls))
    out["machine"] = load.done()
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    asyncio.run(main())
