"""Hostile HTTP below the API, against the real runner (`start_server`): half-sent request heads
are timed out and their descriptors released, connections per address are capped, and
malformed requests are logged briefly (issue 12, failures 4 and 7)."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import msgspec
import pytest

from softphone.config import Config
from softphone.server.runner import RunningServer, start_server
from tests.server.robustness_raw import open_raw

Start = Callable[..., Awaitable[RunningServer]]
HALF_HEAD = b"GET /v1/health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: "


def open_descriptors() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.fixture
async def serve(config: Config) -> AsyncIterator[Start]:
    servers: list[RunningServer] = []

    async def run(**options: Any) -> RunningServer:
        server = await start_server(config, "127.0.0.1", 0, **options)
        servers.append(server)
        return server

    yield run
    for server in servers:
        await server.stop()


async def healthy(server: RunningServer) -> bool:
    async with aiohttp.ClientSession() as http, http.get(f"{server.url}/v1/health") as response:
        return response.status == 200


async def test_half_sent_heads_are_closed_and_descriptors_released(serve: Start) -> None:
    server = await serve(header_timeout=1.0)
    assert await healthy(server)
    before = open_descriptors()
    streams = [await open_raw("127.0.0.1", server.port) for _ in range(200)]
    for _, writer in streams:
        writer.write(HALF_HEAD)  # and never the rest
    # The server holds them for now (each costs us one descriptor and the server one).
    assert open_descriptors() >= before + 2 * len(streams) - 10
    # Every one is closed by the server: end of stream, no response.
    answers = await asyncio.wait_for(asyncio.gather(*(r.read() for r, _ in streams)), 60)
    assert answers == [b""] * len(streams)
    for _, writer in streams:
        writer.close()
    await asyncio.sleep(0)
    assert open_descriptors() <= before + 5
    assert await healthy(server)


async def test_connections_per_address_are_capped(serve: Start) -> None:
    server = await serve(connections_per_address=5, cap_loopback=True)
    held = [await open_raw("127.0.0.1", server.port) for _ in range(5)]
    for _, writer in held:
        writer.write(HALF_HEAD)
    reader, writer = await open_raw("127.0.0.1", server.port)
    refusal = await reader.read()
    writer.close()
    assert refusal.startswith(b"HTTP/1.1 429 ")
    assert b'"code":"rate_limited"' in refusal
    assert server.guard is not None and server.guard.refused == 1
    for _, held_writer in held:
        held_writer.close()
    await asyncio.gather(*(r.read() for r, _ in held))
    assert await healthy(server)  # the address's allowance is back once they closed


async def test_the_connection_cap_is_configured(config: Config) -> None:
    """[server] max_connections_per_address, and limit_loopback_connections for a server
    whose clients all come from loopback (tests, or a proxy whose clients are not told apart)."""
    limited = msgspec.structs.replace(
        config.server, max_connections_per_address=3, limit_loopback_connections=True
    )
    server = await start_server(msgspec.structs.replace(config, server=limited), "127.0.0.1", 0)
    try:
        held = [await open_raw("127.0.0.1", server.port) for _ in range(3)]
        reader, writer = await open_raw("127.0.0.1", server.port)
        assert (await reader.read()).startswith(b"HTTP/1.1 429 ")
        writer.close()
        for _, held_writer in held:
            held_writer.close()
    finally:
        await server.stop()
    # The default: loopback is not limited.
    server = await start_server(config, "127.0.0.1", 0)
    try:
        held = [await open_raw("127.0.0.1", server.port) for _ in range(70)]
        assert await healthy(server)
        assert server.guard is not None and server.guard.refused == 0
        for _, held_writer in held:
            held_writer.close()
    finally:
        await server.stop()


async def test_malformed_requests_log_one_line_without_traceback(
    serve: Start, caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    server = await serve()
    caplog.set_level(logging.DEBUG)
    for _ in range(20):
        reader, writer = await open_raw("127.0.0.1", server.port)
        writer.write(b"GET /v1/health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Evil: a\x00b\r\n\r\n")
        answer = await reader.read()
        writer.close()
        assert answer.split(b" ", 2)[1] == b"400"
    records = [r for r in caplog.records if r.name.startswith(("softphone", "aiohttp"))]
    assert [r.levelname for r in records] == ["WARNING"]
    assert records[0].exc_info is None and records[0].exc_text is None
    assert "malformed request" in records[0].getMessage()
    assert await healthy(server)
