"""Phase 5 of `benchmarks.calls`: call setup make → Connected through one in-process server,
browser↔browser, browser→engine, engine→browser and engine↔engine, in one run.

    python -m benchmarks._calls_browser --calls N

Prints one JSON object. `benchmarks.calls` runs it under `unshare -n` when root (as the web
tests do), so the server, the engines and Chromium share a private network namespace with only
`lo`. Both pages live in one headless Chromium (one context per user); callees auto-answer on
`call:receive` (pages) or on Ringing (engines). Page times come from the page's own
`startedAt`/`connectedAt` (performance.now()); engine times from time.monotonic().
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import time
from typing import Any

from benchmarks._calls_common import (
    PASSWORD,
    LoadWindow,
    Side,
    force_loopback,
    inprocess_server,
    log,
    new_trial,
    summary,
)

CHROMIUM = "/usr/bin/chromium"
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--use-fake-device-for-media-stream",
    "--use-fake-ui-for-media-stream",
    "--allow-loopback-in-peer-connection",
    "--disable-features=WebRtcHideLocalIpsWithMdns",
    "--autoplay-policy=no-user-gesture-required",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-gpu",
    "--disable-quic",
]
AUTO_ANSWER = """() => {
  const c = window.softphone.calls;
  c.on('call:receive', (p) => { c.answer(p.callId).catch(() => {}); });
}"""
PAGE_MAKE = """async (to) => {
  const c = window.softphone.calls;
  const id = c.make(to);
  const t = performance.now();
  while (performance.now() - t < 15000) {
    const call = c.getById(id);
    if (call.connectedAt !== null) return {id, ms: call.connectedAt - call.startedAt};
    if (call.state === 'Ended' || call.state === 'Cancelled') return {id, ms: null};
    await new Promise((r) => setTimeout(r, 2));
  }
  return {id, ms: null};
}"""
PAGE_END_ALL = """async () => {
  const c = window.softphone.calls;
  for (const call of c.getAll()) {
    if (call.state !== 'Ended' && call.state !== 'Cancelled') await c.end(call.id).catch(() => {});
  }
}"""
PAGE_IDLE = """() => window.softphone.calls.getAll().every(
  (c) => c.state === 'Ended' || c.state === 'Cancelled')"""


async def login(browser: Any, url: str, user: str) -> Any:
    context = await browser.new_context()
    page = await context.new_page()
    await page.goto(f"{url}/web/")
    await page.fill("#username", user)
    await page.fill("#password", PASSWORD)
    await page.click("#login")
    await page.locator("#auth-state", has_text=re.compile(r"^Subscribed: true$")).wait_for()
    await page.evaluate(AUTO_ANSWER)
    return page


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--calls", type=int, default=10)
    args = ap.parse_args()
    force_loopback()
    from playwright.async_api import async_playwright

    from softphone.client import Backoff
    from softphone.engine import Engine
    from softphone.engine.states import CallState

    out: dict[str, Any] = {
        "in_private_netns": os.environ.get("SOFTPHONE_CALLS_NETNS") == "1",
        "server": "in-process (softphone.server.runner.start_server) in this process",
        "calls_per_pair": args.calls,
        "answer": "callee auto-answers at once (page: on call:receive; engine: on Ringing)",
    }
    loop = asyncio.get_running_loop()
    load = LoadWindow()
    async with inprocess_server() as server, async_playwright() as pw:
        t_launch = time.monotonic()
        browser = await pw.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=FLAGS, timeout=30_000
        )
        out["chromium_launch_ms"] = round((time.monotonic() - t_launch) * 1000)
        try:
            pages = {u: await login(browser, server.url, u) for u in ("alice", "bob")}
            engines: dict[str, Engine] = {}
            sides: dict[str, Side] = {}
            for user, role in (("carol", "callee"), ("dave", "callee")):
                engine = Engine(audio_in="tone", audio_out="null")
                side = Side(engine, role, loop)
                side.attach()
                await engine.start(
                    server.url,
                    user,
                    lambda: PASSWORD,
                    backoff=Backoff(base=0.05, cap=0.2, jitter=0.0),
                )
                engines[user], sides[user] = engine, side

            async def page_call(caller: str, callee: str) -> float | None:
                r = await pages[caller].evaluate(PAGE_MAKE, callee)
                await asyncio.sleep(0.1)
                await pages[caller].evaluate(PAGE_END_ALL)
                return None if r["ms"] is None else float(r["ms"])

            async def engine_call(caller: str, callee: str) -> float | None:
                engine = engines[caller]
                trial = new_trial()
                connected = asyncio.Event()

                def on_event(event: Any) -> None:
                    if getattr(event, "state", None) == CallState.CONNECTED:
                        trial.marks.setdefault("connected", time.monotonic())
                        connected.set()

                unsubscribe = engine.subscribe(on_event)
                try:
                    call_id = await engine.make(callee)
                    try:
                        await asyncio.wait_for(connected.wait(), 15)
                    except TimeoutError:
                        return None
                    await asyncio.sleep(0.1)
                    await engine.end(call_id)
                finally:
                    unsubscribe()
                return (trial.marks["connected"] - trial.t0) * 1000

            async def settle() -> None:
                deadline = time.monotonic() + 5
                while time.monotonic() < deadline:
                    busy = any(
                        c.state not in (CallState.ENDED, CallState.CANCELLED)
                        for e in engines.values()
                        for c in e.get_all()
                    )
                    pages_idle = all([await p.evaluate(PAGE_IDLE) for p in pages.values()])
                    if not busy and pages_idle:
                        return
                    await asyncio.sleep(0.05)

            pairs = {
                "browser_to_browser": ("alice", "bob", page_call),
                "browser_to_engine": ("alice", "carol", page_call),
                "engine_to_browser": ("carol", "bob", engine_call),
                "engine_to_engine": ("carol", "dave", engine_call),
            }
            results: dict[str, Any] = {}
            for name, (caller, callee, fn) in pairs.items():
                times: list[float] = []
                failed = 0
                cold = None
                for i in range(args.calls + 1):
                    ms = await fn(caller, callee)
                    await settle()
                    if ms is None:
                        failed += 1
                    elif i == 0:
                        cold = round(ms, 1)
                    else:
                        times.append(ms)
                results[name] = {
                    "make_to_connected_ms": summary(times),
                    "first_call_ms": cold,
                    "failed": failed,
                }
                log(f"browser phase {name}: median {summary(times).get('median')} ms")
            out["pairs"] = results
            for engine in engines.values():
                await engine.stop()
        finally:
            await browser.close()
    out["machine"] = load.done()
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    asyncio.run(main())
