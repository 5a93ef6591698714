"""The store interface on PostgreSQL and SQLite: the suites' store is the one asked for,
versioned migrations (fresh, again, concurrent, too new), `softphone db`, a database down at
start (clear error, non-zero exit) and for a while mid-run (503 service_unavailable, the
websocket stays, service comes back by itself)."""

from __future__ import annotations

import asyncio
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from softphone.config import ConfigError, parse_config
from softphone.server.migrations import LATEST, SchemaTooNew
from softphone.server.services import SERVICES
from softphone.server.store_open import STORE_URL_ENV
from softphone.server.store_postgres import PostgresStore
from softphone.server.store_sqlite import SqliteStore
from tests.client.conftest import Servers
from tests.cluster.instances import Postgres, free_port
from tests.cluster.serve import ServeProcess, run_softphone, softphone_env
from tests.server.harness import Party


@pytest.fixture
def postgres() -> Iterator[Postgres]:
    """A PostgreSQL of this test's own, free to be stopped and started."""
    instance = Postgres().start()
    yield instance
    instance.remove()


async def test_the_servers_use_the_store_the_run_asked_for(
    tmp_path: Path, store_backend: str
) -> None:
    servers = Servers(parse_config(f'[server]\ndata_dir = "{tmp_path}"\n'))
    server = await servers.start()
    try:
        store = server.app[SERVICES].store
        expected = PostgresStore if store_backend == "postgres" else SqliteStore
        assert isinstance(store, expected)
        assert store.schema_version() == LATEST
    finally:
        await servers.close()


def test_postgres_migrations_apply_once_and_refuse_a_newer_schema(postgres: Postgres) -> None:
    import psycopg

    from softphone.server.migrations import migrate_postgres

    url = postgres.url(postgres.create_database())
    with psycopg.connect(url, autocommit=True) as db:
        assert migrate_postgres(db) == [1]
        assert migrate_postgres(db) == []
        db.execute("INSERT INTO schema_migrations VALUES (999, 'from the future', 0)")
        with pytest.raises(SchemaTooNew, match="version 999"):
            migrate_postgres(db)


def test_concurrent_migrations_from_several_processes_apply_each_version_once(
    postgres: Postgres, tmp_path: Path
) -> None:
    url = postgres.url(postgres.create_database())
    config = tmp_path / "config.toml"
    config.write_text(f'[server]\ndata_dir = "{tmp_path}"\n[store]\nurl = "{url}"\n')
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "softphone", "db", "migrate"],
            env=softphone_env(config),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for _ in range(3)
    ]
    outputs = [proc.communicate(timeout=60)[0] for proc in procs]
    assert [proc.returncode for proc in procs] == [0, 0, 0], outputs
    assert all(f"schema at version {LATEST}" in out for out in outputs)
    import psycopg

    with psycopg.connect(url) as db:
        rows = db.execute("SELECT version FROM schema_migrations").fetchall()
    assert rows == [(1,)]
    status = run_softphone(config, "db", "status")
    assert status.returncode == 0 and "up to date" in status.stdout


def test_sqlite_adopts_a_file_from_before_versioning_and_refuses_a_newer_one(
    tmp_path: Path,
) -> None:
    path = tmp_path / "server.sqlite3"
    old = sqlite3.connect(path)
    old.executescript(
        "CREATE TABLE users (name TEXT PRIMARY KEY, password_hash TEXT NOT NULL, "
        "allow_anonymous INTEGER NOT NULL DEFAULT 0, created_at REAL NOT NULL);"
        "INSERT INTO users VALUES ('old', 'h', 0, 1.0);"
    )
    old.close()
    store = SqliteStore(path)
    assert store.schema_version() == LATEST
    user = store.get_user("old")
    assert user is not None and user.password_hash == "h"
    store.close()
    db = sqlite3.connect(path)
    db.execute("PRAGMA user_version = 999")
    db.close()
    with pytest.raises(SchemaTooNew, match="version 999"):
        SqliteStore(path)


def test_store_config_refuses_passwords_in_the_url_and_other_schemes() -> None:
    with pytest.raises(ConfigError, match="password_file"):
        parse_config('[store]\nurl = "postgresql://me:secret@db/softphone"\n')
    with pytest.raises(ConfigError, match="postgresql://"):
        parse_config('[store]\nurl = "mysql://db/softphone"\n')


def test_serve_exits_non_zero_with_a_clear_error_when_the_database_is_unreachable(
    tmp_path: Path,
) -> None:
    closed = free_port()  # nothing listens there
    server = ServeProcess(
        tmp_path,
        f'[store]\nurl = "postgresql://softphone@127.0.0.1:{closed}/softphone"\n'
        "connect_timeout = 2\n",
    )
    proc = server.spawn()
    assert proc.wait(timeout=60) != 0
    assert f"cannot connect to the database postgresql://softphone@127.0.0.1:{closed}" in (
        server.log
    )
    assert "Traceback" not in server.log


async def _status(http: aiohttp.ClientSession, party: Party, path: str) -> tuple[int, Any]:
    async with http.get(path, headers=party.headers) as response:
        body = await response.json()
        return response.status, body


async def test_a_database_outage_mid_run_is_503_then_service_resumes_by_itself(
    postgres: Postgres, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = postgres.url(postgres.create_database())
    monkeypatch.setenv(STORE_URL_ENV, url)
    servers = Servers(parse_config(f'[server]\ndata_dir = "{tmp_path}"\n'))
    server = await servers.start()
    try:
        async with aiohttp.ClientSession(server.url) as http:
            alice, bob = Party(http, "alice"), Party(http, "bob")
            await alice.online()
            await bob.online()
            await alice.make("bob")
            await bob.expect("call.incoming")

            postgres.stop("immediate")
            async with http.get("/v1/history", headers=alice.headers) as response:
                assert response.status == 503
                body = await response.json()
                assert body["error"]["code"] == "service_unavailable"
                assert int(response.headers["Retry-After"]) >= 1
            async with http.get("/v1/health") as response:
                assert response.status == 503
                assert (await response.json())["store"] == "unreachable"
            await bob.nothing(0.3)  # the websocket stayed open: no close frame, no error
            assert bob.ws is not None and not bob.ws.closed

            postgres.start()  # same data, same port
            for _ in range(100):  # reconnects are spaced; the first tries may still be 503
                status, body = await _status(http, alice, "/v1/history")
                if status == 200:
                    break
                assert status == 503, body
                await asyncio.sleep(0.1)
            assert status == 200 and len(body["records"]) == 1
            _, second = await alice.make("bob")
            incoming = await bob.expect("call.incoming")  # the same websocket, next seq
            assert incoming["call"]["id"] == second["id"]
    finally:
        await servers.close()
