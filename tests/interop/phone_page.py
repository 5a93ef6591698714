"""Our demo page (/web/, js/calls.js) in Firefox, driven through its `window.softphone` API."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from tests.interop.firefox import Firefox
from tests.server.harness import PASSWORD


class PagePhone:
    def __init__(self, browser: Firefox) -> None:
        self.browser = browser

    async def login(self, server_url: str, user: str) -> None:
        await self.browser.goto(f"{server_url}/web/")
        await self.browser.run(f"""
            const c = window.softphone.client;
            await c.login({json.dumps(user)}, {json.dumps(PASSWORD)});
            await c.subscribe();
            c.connect();
        """)
        await self.until(
            "return document.getElementById('auth-state').textContent === 'Subscribed: true';"
        )

    async def until(self, predicate_js: str, timeout: float = 15) -> Any:
        """Poll a JS function body until it returns something truthy; return that."""
        deadline = time.monotonic() + timeout
        while True:
            value = await self.browser.run(predicate_js)
            if value:
                return value
            if time.monotonic() > deadline:
                raise TimeoutError(f"page condition not met: {predicate_js}")
            await asyncio.sleep(0.05)

    async def calls(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = await self.browser.run("""
            return window.softphone.calls.getAll().map((c) => ({
                id: c.id, state: c.state, direction: c.direction, remoteParty: c.remoteParty,
            }));
        """)
        return result

    async def incoming(self, timeout: float = 15) -> str:
        found = await self.until(
            "const c = window.softphone.calls.getAll().find((c) => c.direction === 'incoming'"
            " && (c.state === 'Initiated' || c.state === 'Ringing')); return c ? c.id : null;",
            timeout,
        )
        return str(found)

    async def make(self, callee: str) -> str:
        await self.browser.run(
            f"window.softphone.calls.make({json.dumps(callee)}, {{video: false}});"
        )
        found = await self.until(
            "const all = window.softphone.calls.getAll(); "
            "return all.length ? all[all.length - 1].id : null;"
        )
        return str(found)

    async def answer(self, call_id: str) -> None:
        await self.browser.run(
            f"window.softphone.calls.answer({json.dumps(call_id)}, {{video: false}});"
        )

    async def end(self, call_id: str) -> None:
        await self.browser.run(f"window.softphone.calls.end({json.dumps(call_id)});")

    async def state(self, call_id: str) -> str:
        return str(
            await self.browser.run(
                f"return window.softphone.calls.getById({json.dumps(call_id)}).state;"
            )
        )

    async def wait_state(self, call_id: str, state: str, timeout: float = 15) -> None:
        await self.until(
            f"return window.softphone.calls.getById({json.dumps(call_id)}).state === "
            f"{json.dumps(state)};",
            timeout,
        )

    async def inbound_audio(self, call_id: str) -> tuple[int, int]:
        """(packetsReceived, bytesReceived) of inbound-rtp audio, from the page's getStats."""
        stats = await self.browser.run(
            f"return await window.softphone.calls.stats({json.dumps(call_id)});"
        )
        return int(stats["audio"]["packetsReceived"]), int(stats["audio"]["bytesReceived"])

    async def audio_flows(self, call_id: str, timeout: float = 10) -> None:
        """Inbound audio packets and bytes keep rising at the page (headless Firefox's WebAudio
        stays suspended, so getStats is what shows that media arrived)."""
        before = await self.inbound_audio(call_id)
        deadline = time.monotonic() + timeout
        while True:
            await asyncio.sleep(0.5)
            now = await self.inbound_audio(call_id)
            if now[0] > before[0] > 0 and now[1] > before[1]:
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"no audio arriving at Firefox: {before} -> {now}")
            before = now
