"""What the server and the TUI write is private whatever the umask: 0700 directories they
create, 0600 files, SQLite's -wal and -shm included (issue 12, failure 5)."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from softphone.config import parse_config
from softphone.server.app import build_services, database_path
from softphone.server.cluster import BUS_URL_ENV
from softphone.server.passwords import hash_password
from softphone.server.store import Store


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def umask_022() -> Iterator[None]:
    previous = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(previous)


def test_database_and_its_directory_are_private(
    tmp_path: Path, umask_022: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The SQLite file's modes, whatever store and bus the run gives the other tests.
    monkeypatch.delenv(BUS_URL_ENV, raising=False)
    data_dir = tmp_path / "fresh" / "data"
    config = parse_config(f'[server]\ndata_dir = "{data_dir}"\n')
    store = Store(database_path(config))
    try:
        build_services(config, store)  # the server's own wiring on that store
        store.add_user("alice", hash_password("correct horse battery"), False)
        db = database_path(config)
        wal, shm = Path(f"{db}-wal"), Path(f"{db}-shm")
        assert wal.exists() and shm.exists()  # WAL mode, connection open
        assert {p.name: mode(p) for p in (db, wal, shm)} == {
            db.name: 0o600,
            wal.name: 0o600,
            shm.name: 0o600,
        }
        assert mode(data_dir) == 0o700
    finally:
        store.close()


def test_an_existing_readable_database_is_made_private(tmp_path: Path, umask_022: None) -> None:
    db = tmp_path / "server.sqlite3"
    db.touch(mode=0o644)
    assert mode(db) == 0o644
    Store(db).close()
    assert mode(db) == 0o600


def test_tui_log_file_is_private(tmp_path: Path) -> None:
    log_file = tmp_path / "logs" / "softphone.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("SOFTPHONE_")}
    env["SOFTPHONE_PASSWORD"] = "unused"
    # Port 9 on loopback: nothing answers, and the log file is made before any connection.
    process = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import os, sys; os.umask(0o022); from softphone.cli import main; sys.exit(main())",
            "--server",
            "http://127.0.0.1:9",
            "--user",
            "alice",
            "--log-file",
            str(log_file),
        ],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while not log_file.exists() and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert log_file.exists()
        assert mode(log_file) == 0o600
        assert mode(log_file.parent) == 0o700
    finally:
        process.kill()
        process.wait()
