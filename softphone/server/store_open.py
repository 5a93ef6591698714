"""Which store a server uses: `[store] url` chooses PostgreSQL; "" keeps the SQLite file."""

from __future__ import annotations

import os
from pathlib import Path

from softphone.config import Config, default_data_dir
from softphone.server.storage import Storage
from softphone.server.store_sqlite import SqliteStore

# Overrides [store] url when set: for containers, and to run the test suites on PostgreSQL.
STORE_URL_ENV = "SOFTPHONE_STORE_URL"


def database_path(config: Config) -> Path:
    base = (
        Path(config.server.data_dir).expanduser() if config.server.data_dir else default_data_dir()
    )
    return base / "server.sqlite3"


def store_url(config: Config) -> str:
    return os.environ.get(STORE_URL_ENV) or config.store.url


def describe(config: Config) -> str:
    """Where the store is, for messages (a URL never carries a password here)."""
    url = store_url(config)
    return url if url else str(database_path(config))


def open_store(config: Config, *, migrate: bool = True) -> Storage:
    """The configured store, its schema brought up to date (unless `migrate` is False).

    An unreachable PostgreSQL raises `StoreUnavailable` (a ConnectionError) at once, so
    `softphone serve` exits non-zero with the reason instead of starting half-alive."""
    url = store_url(config)
    if not url:
        return SqliteStore(database_path(config), migrate=migrate)
    from softphone.server.store_postgres import PostgresStore  # only deployments need psycopg

    password = None
    if config.store.password_file:
        password = Path(config.store.password_file).expanduser().read_text("utf-8").strip()
    return PostgresStore(
        url,
        password=password,
        connect_timeout=config.store.connect_timeout,
        statement_timeout=config.store.statement_timeout,
        migrate=migrate,
    )


def run_db_command(config: Config, action: str) -> str:
    """`softphone db migrate|status`: what it did or found, in one line."""
    from softphone.server.migrations import LATEST

    store = open_store(config, migrate=action == "migrate")
    try:
        version = store.schema_version()
    finally:
        store.close()
    where = describe(config)
    if action == "migrate":
        return f"{where}: schema at version {version} (the latest this softphone knows)"
    state = "up to date" if version == LATEST else f"needs migrating to {LATEST}"
    return f"{where}: schema at version {version}, {state}"
