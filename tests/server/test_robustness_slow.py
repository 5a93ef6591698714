"""A client that sends pings and never reads, beside a busy server: its send queue stays bounded,
it is closed with 4003 (slow consumer), it resumes without losing a notification, and the other
clients notice nothing (issue 12, failure 3)."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from softphone.config import parse_config
from softphone.protocol.errors import CloseCode
from softphone.server import connection
from softphone.server.connection import SEND_QUEUE_BYTES
from tests.server.harness import SDP, Party
from tests.server.robustness_raw import open_websocket

Client = TestClient[Any, Any]
BIG_SDP = SDP + "a=x-padding:" + "p" * 30_000 + "\r\n"  # a big offer fills buffers fast


async def metric(client: Client, name: str) -> float:
    async with client.get("/v1/metrics") as response:
        text = await response.text()
    found = re.search(rf"^softphone_{name} (\S+)$", text, re.MULTILINE)
    assert found is not None, name
    return float(found.group(1))


def notifications(frames: list[dict[str, Any]]) -> list[int]:
    return [f["seq"] for f in frames if f["type"].startswith(("call.", "subscription."))]


@pytest.mark.parametrize("queue_bytes", [None, 1 << 17], ids=["default", "configured"])
async def test_slow_consumer_is_bounded_closed_and_resumes(
    start: Any, tmp_path: Path, queue_bytes: int | None
) -> None:
    bound = SEND_QUEUE_BYTES if queue_bytes is None else queue_bytes
    setting = "" if queue_bytes is None else f"max_websocket_queue_bytes = {queue_bytes}"
    config = parse_config(f"""
[server]
data_dir = "{tmp_path}"
resume_window = 60
{setting}
[rate_limits]
login_per_minute = 1000
""")
    client = await start(config)
    host, port = str(client.host), client.port or 0
    alice, bob, carol = Party(client, "alice"), Party(client, "bob"), Party(client, "carol")
    await alice.login()
    await alice.subscribe()
    await asyncio.gather(bob.online(), carol.online())
    assert alice.token is not None
    sub_id = alice.subscription["subscription_id"]
    slow = await open_websocket(host, port, alice.token, sub_id, receive_buffer=4096, limit=4096)
    _, payload = await slow.next_frame()
    assert json.loads(payload)["type"] == "welcome"
    slow.writer.transport.pause_reading()  # type: ignore[attr-defined]

    cycles = 0
    pongs = 0
    while await metric(client, "websocket_slow_consumers_total") == 0:
        assert cycles < 200, "the slow consumer was never cut off"
        for n in range(50):  # pings it will never read the answers to
            slow.send_json({"type": "ping", "id": f"{cycles}-{n}"})
        _, call = await bob.make("alice", sdp=BIG_SDP)
        await bob.act(call["id"], "end")
        cycles += 1
        assert await metric(client, "websocket_queued_bytes") <= bound + 4096
        if cycles % 5 == 0:  # everyone else is served as usual: carol's pings are answered
            assert carol.ws is not None
            await carol.ws.send_json({"type": "ping", "id": str(cycles)})
            assert (await carol.expect("pong"))["id"] == str(cycles)
            pongs += 1
    published = 2 * cycles  # call.incoming and call.cancelled per cycle
    # Never past its bound, however briefly (the current total above is sampled between
    # cycles and is mostly 0: the kernel drains the queue until the socket's buffer is full).
    # Which bound cut it off (bytes, or 256 frames of pongs) depends on timing.
    high = await metric(client, "websocket_queue_high_water_bytes")
    assert 0 < high <= bound, (high, bound)

    # Carol still gets calls.
    _, call = await bob.make("carol")
    assert (await carol.expect("call.incoming"))["call"]["id"] == call["id"]

    # The slow client reads at last: what was on the wire, then the close code.
    slow.writer.transport.resume_reading()  # type: ignore[attr-defined]
    assert await slow.read_until_close() == CloseCode.SLOW_CONSUMER
    slow.close()
    seen = notifications(slow.texts)
    assert seen == list(range(1, len(seen) + 1))
    # What did not reach the socket waited in the resume buffer, not in a queue (under load the
    # queue may overflow on pongs alone, after every notification reached the kernel).
    assert len(seen) <= published

    # It resumes from the last notification it saw and misses nothing.
    last = seen[-1] if seen else 0
    resumed = await open_websocket(host, port, alice.token, sub_id, last_seq=last)
    try:
        _, payload = await resumed.next_frame()
        welcome = json.loads(payload)
        assert welcome["type"] == "welcome" and welcome["resumed"] is True
        assert welcome["seq"] == published
        replay: list[dict[str, Any]] = []
        while len(notifications(replay)) < published - last:
            _, payload = await resumed.next_frame()
            replay.append(json.loads(payload))
        assert notifications(replay) == list(range(last + 1, published + 1))
        incoming = [f for f in slow.texts + replay if f["type"] == "call.incoming"]
        assert len(incoming) == cycles and all(f["sdp"] == BIG_SDP for f in incoming)
    finally:
        resumed.close()
    assert pongs == cycles // 5


async def test_replies_beyond_the_budget_are_dropped(
    start: Any, config: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Pongs and errors per socket are capped per interval; the frames beyond are dropped
    undecoded, so a ping flood costs bounded work and memory."""
    monkeypatch.setattr(connection, "REPLY_BUDGET", 10)
    monkeypatch.setattr(connection, "REPLY_INTERVAL", 3600.0)  # one interval for the test
    client = await start(config)
    alice, bob = Party(client, "alice"), Party(client, "bob")
    await asyncio.gather(alice.online(), bob.online())
    assert alice.ws is not None
    for n in range(25):
        await alice.ws.send_json({"type": "ping", "id": str(n)})
    await alice.ws.send_bytes(b"a binary frame gets an error, within the budget")
    for _ in range(200):  # until the server has read all 26 frames
        if await metric(client, "websocket_replies_refused_total") == 16:
            break
        await asyncio.sleep(0.05)
    assert await metric(client, "websocket_replies_refused_total") == 16
    _, call = await bob.make("alice")
    replies = [await alice.receive() for _ in range(11)]
    assert [r.get("id") for r in replies[:10]] == [str(n) for n in range(10)]
    assert replies[10]["type"] == "call.incoming" and replies[10]["call"]["id"] == call["id"]
