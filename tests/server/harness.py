"""Drives the real server over real loopback sockets as a client device would."""

from __future__ import annotations

import json
from typing import Any

import aiohttp
from aiohttp.test_utils import TestClient

PASSWORD = "correct horse battery"
SDP = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\n"


class Party:
    """One device: a session, optionally a subscription and its notification websocket."""

    def __init__(self, client: TestClient[Any, Any] | aiohttp.ClientSession, user: str) -> None:
        self.client = client
        self.user = user
        self.token: str | None = None
        self.subscription: dict[str, Any] = {}
        self.ws: aiohttp.ClientWebSocketResponse | None = None
        self.last_seq = 0
        self.frames: list[dict[str, Any]] = []

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}

    async def request(
        self, method: str, path: str, body: Any = None, expect: int | None = None
    ) -> tuple[int, Any]:
        data = (
            None
            if body is None
            else (body if isinstance(body, bytes) else json.dumps(body).encode())
        )
        headers = dict(self.headers)
        if data is not None:
            headers["Content-Type"] = "application/json"
        async with self.client.request(method, path, data=data, headers=headers) as response:
            text = await response.text()
            payload = (
                json.loads(text) if text and response.content_type == "application/json" else text
            )
            if expect is not None:
                assert response.status == expect, (method, path, response.status, payload)
            return response.status, payload

    async def login(self, password: str = PASSWORD) -> None:
        _, body = await self.request(
            "POST", "/v1/sessions", {"username": self.user, "password": password}, 201
        )
        self.token = body["token"]

    async def subscribe(self, **extra: Any) -> dict[str, Any]:
        _, self.subscription = await self.request(
            "POST", "/v1/subscriptions", {"services": ["call"], **extra}, 201
        )
        return self.subscription

    async def connect(self, *, resume: bool = False, header_auth: bool = True) -> dict[str, Any]:
        hello: dict[str, Any] = {
            "type": "hello",
            "subscription_id": self.subscription["subscription_id"],
        }
        if resume:
            hello["last_seq"] = self.last_seq
        if not header_auth:
            hello["token"] = self.token
        self.ws = await self.client.ws_connect(
            "/v1/notifications", headers=self.headers if header_auth else {}
        )
        await self.ws.send_json(hello)
        welcome = await self.receive()
        assert welcome["type"] == "welcome", welcome
        if not welcome["resumed"]:
            self.last_seq = welcome["seq"]  # the documented rule: a fresh cursor
        return welcome

    async def online(self) -> Party:
        await self.login()
        await self.subscribe()
        await self.connect()
        return self

    async def receive(self, timeout: float = 5.0) -> dict[str, Any]:
        assert self.ws is not None
        msg = await self.ws.receive(timeout=timeout)
        assert msg.type == aiohttp.WSMsgType.TEXT, (msg.type, msg.data, msg.extra)
        frame: dict[str, Any] = json.loads(msg.data)
        if frame["type"].startswith(("call.", "subscription.")):
            assert frame["seq"] == self.last_seq + 1, (frame, self.last_seq)
            self.last_seq = frame["seq"]
        self.frames.append(frame)
        return frame

    async def expect(self, kind: str, timeout: float = 5.0) -> dict[str, Any]:
        frame = await self.receive(timeout)
        assert frame["type"] == kind, (kind, frame)
        return frame

    async def nothing(self, wait: float = 0.2) -> None:
        assert self.ws is not None
        try:
            msg = await self.ws.receive(timeout=wait)
        except TimeoutError:
            return
        raise AssertionError(f"unexpected frame: {msg.data!r}")

    async def drop(self) -> None:
        if self.ws is not None:
            await self.ws.close()
            self.ws = None

    async def make(self, to: str, expect: int = 201, **extra: Any) -> tuple[int, Any]:
        return await self.request("POST", "/v1/calls", {"to": to, "sdp": SDP, **extra}, expect)

    async def act(
        self, call_id: str, action: str, body: Any = None, expect: int | None = 200
    ) -> tuple[int, Any]:
        return await self.request("POST", f"/v1/calls/{call_id}/{action}", body, expect)
