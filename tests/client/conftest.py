"""A real server in-process on 127.0.0.1 (port 0, temp data dir) and signaling clients for it."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from typing import Any

import pytest

from softphone.client import Backoff, EventStream, SignalingClient
from softphone.config import Config
from softphone.server.hub import Hub, Subscription
from softphone.server.runner import RunningServer, start_server
from softphone.server.services import SERVICES
from tests.conftest import seed_users
from tests.server.harness import PASSWORD

# Small back-off so reconnects in tests take milliseconds, without jitter to keep them exact.
FAST = Backoff(base=0.05, cap=0.2, jitter=0.0)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def hub_of(server: RunningServer) -> Hub:
    return server.app[SERVICES].hub


def server_subscription(server: RunningServer, client: SignalingClient) -> Subscription:
    assert client.subscription is not None
    sub = hub_of(server).get(client.subscription.subscription_id)
    assert sub is not None
    return sub


class Servers:
    """Starts servers on one data dir (again on the same port, for restarts); stops them all."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.running: list[RunningServer] = []

    async def start(self, port: int = 0, config: Config | None = None) -> RunningServer:
        server = await start_server(config or self.config, host="127.0.0.1", port=port)
        store = server.app[SERVICES].store
        if not store.list_users():
            seed_users(store)
        self.running.append(server)
        return server

    async def stop(self, server: RunningServer) -> None:
        if server in self.running:
            self.running.remove(server)
            await server.stop()

    async def close(self) -> None:
        for server in list(self.running):
            await self.stop(server)


class Clients:
    """Makes signaling clients with test-speed settings and stops them all at the end."""

    def __init__(self) -> None:
        self.made: list[SignalingClient] = []

    def user(
        self, url: str, name: str, *, password: str = PASSWORD, **options: Any
    ) -> tuple[SignalingClient, EventStream]:
        stream = EventStream()
        options.setdefault("backoff", FAST)
        options.setdefault("stop_timeout", 1.0)
        client = SignalingClient(url, name, lambda: password, on_event=stream, **options)
        self.made.append(client)
        return client, stream

    async def online(
        self, url: str, name: str, **options: Any
    ) -> tuple[SignalingClient, EventStream]:
        client, stream = self.user(url, name, **options)
        await client.start()
        await client.wait_connected(5)
        return client, stream

    async def close(self) -> None:
        for client in self.made:
            await client.stop()


@pytest.fixture
async def servers(config: Config) -> AsyncIterator[Servers]:
    running = Servers(config)
    yield running
    await running.close()


@pytest.fixture
async def server(servers: Servers) -> RunningServer:
    return await servers.start()


@pytest.fixture
async def clients(servers: Servers) -> AsyncIterator[Clients]:
    made = Clients()
    yield made
    await made.close()
