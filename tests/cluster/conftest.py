"""Three `softphone serve` processes on one PostgreSQL and one Redis, behind HAProxy, all the
tests' own on loopback (tests/cluster/instances.py)."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest

from softphone.server.store_postgres import PostgresStore
from tests.cluster.instances import HAProxy, Postgres, Redis
from tests.cluster.serve import ServeProcess
from tests.conftest import seed_users

RING_TIMEOUT = 3.0
RESUME_WINDOW = 10.0


@dataclass
class Cluster:
    postgres: Postgres
    redis: Redis
    servers: list[ServeProcess]
    proxy: HAProxy

    @property
    def url(self) -> str:
        return self.proxy.url

    async def websockets(self) -> list[int]:
        """Open notification websockets per process (its own /v1/metrics); -1 if it is down."""
        counts = []
        async with aiohttp.ClientSession() as http:
            for server in self.servers:
                try:
                    async with http.get(f"{server.url}/v1/metrics") as response:
                        text = await response.text()
                except aiohttp.ClientError:
                    counts.append(-1)
                    continue
                found = re.search(r"^softphone_websocket_connections (\d+)", text, re.MULTILINE)
                counts.append(int(found.group(1)) if found else 0)
        return counts


def cluster_config(postgres: Postgres, database: str, redis: Redis) -> str:
    return f"""resume_window = {RESUME_WINDOW}
ring_timeout = {RING_TIMEOUT}
trusted_proxies = ["127.0.0.1"]
[store]
url = "{postgres.url(database)}"
[bus]
url = "{redis.url}"
[rate_limits]
login_per_minute = 1000
anonymous_per_minute = 1000
"""


@pytest.fixture
async def cluster(tmp_path: Path) -> AsyncIterator[Cluster]:
    postgres = Postgres().start()
    redis = Redis().start()
    servers: list[ServeProcess] = []
    proxy: HAProxy | None = None
    try:
        database = postgres.create_database()
        store = PostgresStore(postgres.url(database))  # migrates, as `softphone serve` would
        seed_users(store)
        store.close()
        text = cluster_config(postgres, database, redis)
        servers = [ServeProcess(tmp_path / f"sp{n}", text) for n in (1, 2, 3)]
        await asyncio.gather(*(server.start() for server in servers))
        proxy = HAProxy([server.port for server in servers]).start()
        yield Cluster(postgres, redis, servers, proxy)
    finally:
        if proxy is not None:
            proxy.remove()
        for server in servers:
            server.kill()
        redis.remove()
        postgres.remove()
