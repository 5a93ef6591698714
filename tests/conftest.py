"""Shared fixtures: a real server app on a temporary database, reached over loopback."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from softphone.config import Config, parse_config
from softphone.server.app import build_app
from softphone.server.passwords import hash_password
from softphone.server.services import SERVICES
from softphone.server.store import Storage
from tests.server.harness import PASSWORD, Party

# --store sqlite|postgres: which store the servers of the server suites use.
pytest_plugins = ["tests.server.store_backend"]

USERS = {"alice": False, "bob": False, "carol": False, "desk": True}
_HASH = hash_password(PASSWORD)  # one scrypt for the whole run


def seed_users(store: Storage) -> None:
    for name, anonymous in USERS.items():
        store.add_user(name, _HASH, anonymous)


@pytest.fixture
def config(tmp_path: Path) -> Config:
    return parse_config(f"""
[server]
data_dir = "{tmp_path}"
ring_timeout = 30
resume_window = 2
[rate_limits]
login_per_minute = 1000
anonymous_per_minute = 1000
""")


ClientFactory = Callable[..., Awaitable[TestClient[Any, Any]]]


@pytest.fixture
async def start(
    tmp_path: Path,
) -> AsyncIterator[Callable[[Config], Awaitable[TestClient[Any, Any]]]]:
    """Start a server for a config (again and again on the same data dir for restarts)."""
    clients: list[TestClient[Any, Any]] = []

    async def run(config: Config) -> TestClient[Any, Any]:
        app = build_app(config)
        if not app[SERVICES].store.list_users():
            seed_users(app[SERVICES].store)
        client = TestClient(TestServer(app, host="127.0.0.1"))
        await client.start_server()
        clients.append(client)
        return client

    yield run
    for client in clients:
        await client.close()


@pytest.fixture
async def client(
    start: Callable[[Config], Awaitable[TestClient[Any, Any]]], config: Config
) -> TestClient[Any, Any]:
    return await start(config)


@pytest.fixture
def party(client: TestClient[Any, Any]) -> Callable[[str], Party]:
    return lambda user: Party(client, user)


def app_of(client: TestClient[Any, Any]) -> web.Application:
    app = client.app
    assert isinstance(app, web.Application)
    return app
