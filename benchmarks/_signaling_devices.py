"""The client side of `benchmarks.signaling`: a `Device` (a session, a subscription and its
notification websocket) and a `Pair` of devices that runs one call setup and times its hops.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time

import aiohttp
import msgspec

from benchmarks._signaling_common import (
    PASSWORD,
    SDP_ANSWER,
    SDP_OFFER,
    SETUP_TIMEOUT,
    BenchError,
)


class _CallRef(msgspec.Struct):
    id: str


class _Frame(msgspec.Struct):
    type: str
    call_id: str | None = None
    call: _CallRef | None = None


class _Token(msgspec.Struct):
    token: str


class _Subscribed(msgspec.Struct):
    subscription_id: str


_frame_decoder = msgspec.json.Decoder(_Frame)
_call_decoder = msgspec.json.Decoder(_CallRef)
_token_decoder = msgspec.json.Decoder(_Token)
_sub_decoder = msgspec.json.Decoder(_Subscribed)

FrameKey = tuple[str, str]  # notification type, call id


class Device:
    """One client device: a session, a subscription and its notification websocket."""

    def __init__(self, http: aiohttp.ClientSession, base: str, user: str) -> None:
        self.http = http
        self.base = base
        self.user = user
        self.token = ""
        self.subscription_id = ""
        self.headers: dict[str, str] = {}
        self.json_headers: dict[str, str] = {}
        self.ws: aiohttp.ClientWebSocketResponse | None = None
        # Notifications by (type, call id): receive times not yet claimed, and who is waiting.
        # Keyed rather than queued so one device can carry several calls at once (open loop).
        self._arrived: dict[FrameKey, float] = {}
        self._waiting: dict[FrameKey, asyncio.Future[float]] = {}
        self._reader: asyncio.Task[None] | None = None

    async def request(self, method: str, path: str, body: bytes | None, expect: int) -> bytes:
        headers = self.json_headers if body is not None else self.headers
        async with self.http.request(
            method, self.base + path, data=body, headers=headers
        ) as response:
            data = await response.read()
            if response.status != expect:
                raise BenchError(f"{method} {path}: {response.status} {data[:200]!r}")
            return data

    async def login(self) -> None:
        body = json.dumps({"username": self.user, "password": PASSWORD}).encode()
        async with self.http.post(
            self.base + "/v1/sessions", data=body, headers={"Content-Type": "application/json"}
        ) as response:
            data = await response.read()
            if response.status != 201:
                raise BenchError(f"login {self.user}: {response.status} {data[:200]!r}")
        self.token = _token_decoder.decode(data).token
        self.headers = {"Authorization": f"Bearer {self.token}"}
        self.json_headers = {**self.headers, "Content-Type": "application/json"}

    async def subscribe(self) -> None:
        data = await self.request("POST", "/v1/subscriptions", b'{"services":["call"]}', 201)
        self.subscription_id = _sub_decoder.decode(data).subscription_id

    async def connect(self) -> None:
        self.ws = await self.http.ws_connect(self.base + "/v1/notifications", headers=self.headers)
        await self.ws.send_str(
            json.dumps({"type": "hello", "subscription_id": self.subscription_id})
        )
        msg = await self.ws.receive(timeout=10.0)
        if msg.type != aiohttp.WSMsgType.TEXT or _frame_decoder.decode(msg.data).type != "welcome":
            raise BenchError(f"{self.user}: no welcome frame: {msg.type} {msg.data!r}")
        self._reader = asyncio.create_task(self._read(self.ws))

    async def online(self) -> Device:
        await self.login()
        await self.subscribe()
        await self.connect()
        return self

    async def _read(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        # Reading also answers the server's heartbeat pings (autoping happens in receive()).
        async for msg in ws:
            if msg.type == aiohttp.WSMsgType.TEXT:
                now = time.monotonic()
                frame = _frame_decoder.decode(msg.data)
                key = (frame.type, (frame.call_id if frame.call is None else frame.call.id) or "")
                waiter = self._waiting.pop(key, None)
                if waiter is not None and not waiter.done():
                    waiter.set_result(now)
                else:
                    self._arrived[key] = now

    async def expect(self, kind: str, call_id: str) -> float:
        """The receive time of notification `kind` for `call_id` (waiting for it if need be)."""
        key = (kind, call_id)
        at = self._arrived.pop(key, None)
        if at is not None:
            return at
        waiter: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        self._waiting[key] = waiter
        try:
            return await waiter
        finally:
            self._waiting.pop(key, None)

    def forget(self, call_id: str) -> None:
        for key in [key for key in self._arrived if key[1] == call_id]:
            del self._arrived[key]

    def unmatched(self) -> int:
        """Notifications nobody asked for (they should not exist); cleared once counted."""
        count = len(self._arrived)
        self._arrived.clear()
        return count

    async def leave(self) -> None:
        """Unsubscribe and log out (the server closes the websocket), then close it."""
        with contextlib.suppress(aiohttp.ClientError, BenchError, asyncio.TimeoutError):
            await self.request("DELETE", f"/v1/subscriptions/{self.subscription_id}", None, 204)
            await self.request("DELETE", "/v1/sessions", None, 204)
        await self.close()

    async def close(self) -> None:
        if self.ws is not None:
            await self.ws.close()
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader


class Pair:
    """A caller device and a callee device (distinct users) that set up calls to each other."""

    def __init__(self, caller: Device, callee: Device) -> None:
        self.caller = caller
        self.callee = callee
        self.make_body = json.dumps({"to": callee.user, "sdp": SDP_OFFER}).encode()
        self.answer_body = json.dumps({"sdp": SDP_ANSWER}).encode()

    async def setup(self) -> tuple[float, float, float, float]:
        """One full setup and hangup; the four hop latencies in seconds."""
        caller, callee = self.caller, self.callee
        call_id, live = "", False
        try:
            async with asyncio.timeout(SETUP_TIMEOUT):
                sent = time.monotonic()
                call_id = _call_decoder.decode(
                    await caller.request("POST", "/v1/calls", self.make_body, 201)
                ).id
                live = True
                incoming = await callee.expect("call.incoming", call_id) - sent
                path = f"/v1/calls/{call_id}"
                sent = time.monotonic()
                await callee.request("POST", path + "/ringing", None, 200)
                ringing = await caller.expect("call.ringing", call_id) - sent
                sent = time.monotonic()
                await callee.request("POST", path + "/answer", self.answer_body, 200)
                answered = await caller.expect("call.answered", call_id) - sent
                sent = time.monotonic()
                await caller.request("POST", path + "/end", None, 200)
                live = False
                ended = await callee.expect("call.ended", call_id) - sent
        except Exception:
            await self._recover(call_id, live)
            raise
        return incoming, ringing, answered, ended

    async def _recover(self, call_id: str, live: bool) -> None:
        """After a failed setup: hang up what may still be live and forget its frames."""
        if live:
            with contextlib.suppress(aiohttp.ClientError, BenchError, asyncio.TimeoutError):
                await self.caller.request("POST", f"/v1/calls/{call_id}/end", None, 200)
        await asyncio.sleep(0.2)
        if call_id:
            self.caller.forget(call_id)
            self.callee.forget(call_id)
