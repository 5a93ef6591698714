"""Headless Firefox ESR driven by firefox_driver.mjs (puppeteer-core over WebDriver BiDi)."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import signal
from typing import Any

from tests.interop.tools import FIREFOX, HERE


class BrowserError(RuntimeError):
    pass


class Firefox:
    """One browser with one page; `run(js)` runs an async function body in the page."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self._process = process
        self._ids = itertools.count(1)
        self.console: list[str] = []
        self.version = ""

    @classmethod
    async def launch(cls) -> Firefox:
        env = dict(os.environ, FIREFOX=FIREFOX, PUPPETEER_SKIP_DOWNLOAD="1")
        process = await asyncio.create_subprocess_exec(
            "node", str(HERE / "firefox_driver.mjs"), cwd=HERE, env=env,
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL, limit=16 * 1024 * 1024,
            start_new_session=True,  # its own process group: Firefox goes with it on a kill
        )  # fmt: skip
        browser = cls(process)
        try:
            ready = await browser._read(None, timeout=60)
        except BaseException:
            await browser.close()
            raise
        browser.version = str(ready.get("version", ""))
        return browser

    async def _read(self, want: int | None, timeout: float) -> dict[str, Any]:
        assert self._process.stdout is not None
        async with asyncio.timeout(timeout):
            while True:
                line = await self._process.stdout.readline()
                if not line:
                    raise BrowserError(f"the Firefox driver exited; console: {self.console[-5:]}")
                message: dict[str, Any] = json.loads(line)
                if message.get("event") == "console":
                    self.console.append(str(message.get("text")))
                    continue
                if want is None:
                    wanted = message.get("event") == "ready"
                else:
                    wanted = message.get("id") == want
                if wanted:
                    return message

    async def _call(self, request: dict[str, Any], timeout: float) -> Any:
        assert self._process.stdin is not None
        request["id"] = next(self._ids)
        self._process.stdin.write((json.dumps(request) + "\n").encode())
        await self._process.stdin.drain()
        reply = await self._read(request["id"], timeout)
        if not reply["ok"]:
            raise BrowserError(reply["error"])
        return reply.get("value")

    async def goto(self, url: str) -> None:
        await self._call({"op": "goto", "url": url}, timeout=30)

    async def run(self, body: str, timeout: float = 20) -> Any:
        return await self._call({"op": "eval", "expr": body}, timeout=timeout)

    async def kill(self) -> None:
        """SIGKILL Firefox and the driver at once: a peer that vanishes. Puppeteer starts
        Firefox detached (a process group of its own), so every descendant of the driver is
        found by its parent id and killed by pid."""
        if self._process.returncode is not None:
            return
        pids = _descendants(self._process.pid)
        for pid in [*pids, self._process.pid]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        await self._process.wait()

    async def close(self) -> None:
        if self._process.returncode is None:
            if self._process.stdin is not None:
                self._process.stdin.close()
            try:
                await asyncio.wait_for(self._process.wait(), 15)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self._process.pid, signal.SIGKILL)
                await self._process.wait()


def _descendants(root: int) -> list[int]:
    """Every process below `root` (from /proc: each one's parent id)."""
    parents: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents.setdefault(int(fields[1]), []).append(int(entry))
    found: list[int] = []
    todo = [root]
    while todo:
        for child in parents.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found
