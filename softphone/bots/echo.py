"""The echo bot: logs in as `echo`, answers every call and sends back what it receives.

An ordinary client of the server (`SignalingClient` + the engine's aiortc adapter): each
incoming call gets ringing feedback, then an answer whose senders relay the caller's own audio
(and video, if offered) back; re-offers (hold, video, media restart) are answered the same way,
and the call is released when either side ends it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any

from aiortc.contrib.media import MediaRelay

from softphone.client import SignalingClient
from softphone.client import errors as client_errors
from softphone.client import events as client_events
from softphone.client.session import PasswordProvider
from softphone.engine.peer import Peer
from softphone.engine.sdp import ice_ufrags
from softphone.protocol import frames

log = logging.getLogger("softphone.bots.echo")

USERNAME = "echo"


@dataclass(eq=False)
class _EchoCall:
    call_id: str
    peer: Peer
    relay: MediaRelay = field(default_factory=MediaRelay)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


class EchoBot:
    """Answers every call to `username` with the caller's own media."""

    def __init__(
        self, server_url: str, password_provider: PasswordProvider, username: str = USERNAME
    ) -> None:
        self._client = SignalingClient(
            server_url, username, password_provider, on_event=self._on_event
        )
        self._calls: dict[str, _EchoCall] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self.answered = 0

    @property
    def client(self) -> SignalingClient:
        return self._client

    async def start(self, timeout: float = 10.0) -> None:
        await self._client.start()
        await self._client.wait_connected(timeout)

    async def stop(self) -> None:
        for call_id in list(self._calls):
            with contextlib.suppress(client_errors.ClientError):
                await self._client.rest.end(call_id)
            await self._release(call_id)
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._client.stop()

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _on_event(self, event: client_events.Event) -> None:
        if not isinstance(event, client_events.Notification):
            return
        frame = event.frame
        if isinstance(frame, frames.CallIncoming):
            self._spawn(self._answer(frame))
        elif isinstance(frame, frames.CallUpdate):
            self._spawn(self._update(frame))
        elif isinstance(frame, frames.CallEnded | frames.CallCancelled | frames.CallRejected):
            self._spawn(self._release(frame.call_id))

    async def _answer(self, frame: frames.CallIncoming) -> None:
        call_id = frame.call.id
        rest = self._client.rest
        call = _EchoCall(call_id, Peer(self._client.ice_servers))
        self._calls[call_id] = call
        async with call.lock:
            try:
                await rest.ringing(call_id)
                sdp = await call.peer.answer(frame.sdp, {}, echo=call.relay.subscribe)
                await rest.answer(call_id, sdp)
                self.answered += 1
                log.info("echo: answered %s from %s", call_id, frame.call.caller)
            except Exception as exc:
                log.warning("echo: could not answer %s: %s", call_id, exc)
                with contextlib.suppress(client_errors.ClientError):
                    await rest.end(call_id)
                await self._release(call_id)

    async def _update(self, frame: frames.CallUpdate) -> None:
        call = self._calls.get(frame.call_id)
        if call is None:
            return
        rest = self._client.rest
        async with call.lock:
            try:
                if not ice_ufrags(frame.sdp) & ice_ufrags(call.peer.remote_sdp):
                    old, call.peer = call.peer, Peer(self._client.ice_servers)
                    call.relay = MediaRelay()
                    await old.close()
                sdp = await call.peer.answer(frame.sdp, {}, echo=call.relay.subscribe)
                await rest.update_answer(frame.call_id, sdp)
            except Exception as exc:
                log.warning("echo: re-offer on %s failed: %s", frame.call_id, exc)
                with contextlib.suppress(client_errors.ClientError):
                    await rest.end(frame.call_id)
                await self._release(frame.call_id)

    async def _release(self, call_id: str) -> None:
        call = self._calls.pop(call_id, None)
        if call is not None:
            await call.peer.close()


async def run_echo(
    server_url: str, password_provider: PasswordProvider, username: str = USERNAME
) -> None:
    """Run the echo bot until cancelled; it leaves the server cleanly."""
    bot = EchoBot(server_url, password_provider, username)
    await bot.start()
    try:
        await asyncio.Event().wait()
    finally:
        await bot.stop()


__all__ = ["EchoBot", "run_echo"]
