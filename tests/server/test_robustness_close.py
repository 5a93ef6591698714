"""A subscription ended from outside its socket (session expiry, logout) closes the socket with
its close code, and the close frame reaches a client that reads late: TCP is not closed under it
(issue 12, failure 6)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient

from softphone.config import parse_config
from softphone.protocol.errors import CloseCode
from softphone.server.services import SERVICES
from tests.conftest import app_of
from tests.server.harness import Party
from tests.server.robustness_raw import RawSocket, open_websocket

Client = TestClient[Any, Any]


async def late_reader(client: Client, party: Party) -> RawSocket:
    """A websocket that got its welcome, then stops reading at the socket (kernel buffers
    fill, nothing is consumed) while it goes on sending pings, as a busy client would."""
    assert party.token is not None
    raw = await open_websocket(
        str(client.host), client.port or 0, party.token, party.subscription["subscription_id"]
    )
    _, payload = await raw.next_frame()
    assert json.loads(payload)["type"] == "welcome"
    raw.writer.transport.pause_reading()  # type: ignore[attr-defined]
    return raw


async def ping_then_read(raw: RawSocket) -> int | None:
    with contextlib.suppress(ConnectionError):  # a reset shows in what is read below
        for n in range(20):
            raw.send_json({"type": "ping", "id": str(n)})
            await raw.writer.drain()
            await asyncio.sleep(0.05)
    raw.writer.transport.resume_reading()  # type: ignore[attr-defined]
    return await raw.read_until_close()


async def test_session_expiry_close_code_reaches_a_late_reader(start: Any, tmp_path: Path) -> None:
    config = parse_config(f'[server]\ndata_dir = "{tmp_path}"\nsession_ttl = 100\n')
    client = await start(config)
    alice = Party(client, "alice")
    await alice.login()
    await alice.subscribe(expires=3600)
    raw = await late_reader(client, alice)
    try:
        # The housekeeping sweep, as it runs when the session's lifetime is over.
        app_of(client)[SERVICES].hub.sweep(time.time() + 200, time.monotonic())
        code = await ping_then_read(raw)
        assert code == CloseCode.AUTH_EXPIRED
        gone = [f for f in raw.texts if f["type"] == "subscription.gone"]
        assert [(g["reason"], g["message"]) for g in gone] == [("expired", "session expired")]
    finally:
        raw.close()


async def test_logout_close_code_reaches_a_late_reader(start: Any, config: Any) -> None:
    client = await start(config)
    alice = Party(client, "alice")
    await alice.login()
    await alice.subscribe()
    raw = await late_reader(client, alice)
    try:
        await alice.request("DELETE", "/v1/sessions", expect=204)
        assert await ping_then_read(raw) == CloseCode.DO_NOT_RECONNECT
        assert [f["type"] for f in raw.texts if f["type"] != "pong"] == ["subscription.gone"]
    finally:
        raw.close()
