"""The GStreamer webrtcbin peer (gst_peer.py, run by Debian's python3) as an asyncio object."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
from typing import Any

from tests.interop.tools import HERE, SYSTEM_PYTHON


class GstError(RuntimeError):
    pass


class Webrtcbin:
    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self._process = process
        self._lock = asyncio.Lock()

    @classmethod
    async def start(cls, frequency: float) -> Webrtcbin:
        process = await asyncio.create_subprocess_exec(
            SYSTEM_PYTHON, str(HERE / "gst_peer.py"), str(frequency),
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL, limit=16 * 1024 * 1024, start_new_session=True,
        )  # fmt: skip
        peer = cls(process)
        try:
            await peer._reply(timeout=30)
        except BaseException:
            await peer.close()
            raise
        return peer

    async def _reply(self, timeout: float) -> dict[str, Any]:
        assert self._process.stdout is not None
        async with asyncio.timeout(timeout):
            line = await self._process.stdout.readline()
        if not line:
            raise GstError("the webrtcbin helper exited")
        reply: dict[str, Any] = json.loads(line)
        if not reply.get("ok"):
            raise GstError(str(reply.get("error")))
        return reply

    async def _call(self, timeout: float = 20, **request: Any) -> dict[str, Any]:
        assert self._process.stdin is not None
        async with self._lock:
            self._process.stdin.write((json.dumps(request) + "\n").encode())
            await self._process.stdin.drain()
            return await self._reply(timeout)

    async def offer(self) -> str:
        return str((await self._call(op="offer"))["sdp"])

    async def apply_answer(self, sdp: str) -> None:
        await self._call(op="apply_answer", sdp=sdp)

    async def answer(self, offer: str) -> str:
        return str((await self._call(op="answer", sdp=offer))["sdp"])

    async def reanswer(self, offer: str) -> str:
        """The answer to a re-offer on the same webrtcbin (hold, media restart)."""
        return str((await self._call(op="reanswer", sdp=offer))["sdp"])

    async def heard(self, seconds: float = 0.6) -> dict[str, Any]:
        return await self._call(op="heard", seconds=seconds)

    async def first_audio(self, reset: bool = False) -> float | None:
        """time.monotonic() of the first loud block webrtcbin decoded (None: none yet);
        `reset` forgets it afterwards."""
        at = (await self._call(op="first_audio", reset=reset))["at"]
        return None if at is None else float(at)

    async def state(self) -> dict[str, Any]:
        return await self._call(op="state")

    async def kill(self) -> None:
        """SIGKILL the helper: a peer that vanishes (no BYE, no DTLS close alert)."""
        if self._process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self._process.pid, signal.SIGKILL)
            await self._process.wait()

    async def close(self) -> None:
        if self._process.returncode is not None:
            return
        if self._process.stdin is not None:
            self._process.stdin.close()
        try:
            await asyncio.wait_for(self._process.wait(), 10)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self._process.pid, signal.SIGKILL)
            await self._process.wait()
