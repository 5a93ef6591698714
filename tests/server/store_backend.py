"""Runs the server suites on either store: `--store postgres` (or SOFTPHONE_TEST_STORE=postgres)
gives every test an empty PostgreSQL database (the session's own instance, one migrated
database per test process, its tables emptied before each test), and points the servers the
test starts at it through SOFTPHONE_STORE_URL (which every server, in-process or a subprocess,
reads). The default, `--store sqlite`, leaves everything as it was: each server's SQLite file in
its data dir."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from softphone.server.cluster import BUS_URL_ENV
from softphone.server.store_open import STORE_URL_ENV
from tests.cluster.instances import Postgres, Redis

STORES = ("sqlite", "postgres")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--store",
        choices=STORES,
        default=os.environ.get("SOFTPHONE_TEST_STORE", "sqlite"),
        help="the store servers in the tests use (default: $SOFTPHONE_TEST_STORE or sqlite)",
    )
    parser.addoption(
        "--bus",
        choices=("none", "redis"),
        default=os.environ.get("SOFTPHONE_TEST_BUS", "none"),
        help="redis: servers use a Redis bus as several processes do (needs --store postgres)",
    )


def store_kind(config: pytest.Config) -> str:
    return str(config.getoption("--store"))


def bus_kind(config: pytest.Config) -> str:
    return str(config.getoption("--bus"))


def pytest_report_header(config: pytest.Config) -> str:
    return f"server store: {store_kind(config)}, bus: {bus_kind(config)}"


@pytest.fixture(scope="session")
def redis_server() -> Iterator[Redis]:
    instance = Redis().start()
    yield instance
    instance.remove()


TABLES = "users, sessions, subscriptions, calls, used_tokens"


@pytest.fixture(scope="session")
def postgres_database(request: pytest.FixtureRequest) -> Iterator[tuple[Postgres, str]]:
    """The session's PostgreSQL and a database migrated to the latest schema."""
    import psycopg

    from softphone.server.migrations import migrate_postgres

    postgres = Postgres().start()
    try:
        template = postgres.create_database()
        with psycopg.connect(postgres.url(template), autocommit=True) as db:
            migrate_postgres(db)
        yield postgres, template
    finally:
        postgres.remove()


@pytest.fixture(autouse=True)
def store_backend(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    monkeypatch.delenv(BUS_URL_ENV, raising=False)
    if store_kind(request.config) != "postgres":
        monkeypatch.delenv(STORE_URL_ENV, raising=False)
        yield "sqlite"
        return
    if bus_kind(request.config) == "redis":
        redis = request.getfixturevalue("redis_server")
        redis.flush()
        monkeypatch.setenv(BUS_URL_ENV, redis.url)
    postgres, database = request.getfixturevalue("postgres_database")
    # Emptying five tables costs milliseconds; a database per test cost ten times more.
    postgres.admin(f"TRUNCATE {TABLES}", database)
    monkeypatch.setenv(STORE_URL_ENV, postgres.url(database))
    yield "postgres"
