"""The tests' own PostgreSQL, Redis and HAProxy: started on loopback in temporary directories
from Debian's binaries, stopped by their PID. Missing binaries skip a test on a developer's
machine and fail it in CI (CI=true), where scripts/install.sh must have installed them."""

from __future__ import annotations

import glob
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

import pytest


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def require(what: str, path: str | None) -> str:
    """The binary's path; otherwise fail in CI and skip elsewhere."""
    if path and os.access(path, os.X_OK):
        return path
    message = f"{what} is not installed (scripts/install.sh --test installs it)"
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


def wait_for_port(port: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise TimeoutError(f"nothing listens on 127.0.0.1:{port}") from None
            time.sleep(0.05)


def _as_postgres(argv: list[str]) -> list[str]:
    # PostgreSQL refuses to run as root: hand the work to the postgres user.
    return ["runuser", "-u", "postgres", "--", *argv] if os.geteuid() == 0 else argv


class Postgres:
    """One PostgreSQL server (fsync off: a test instance) with the trust method on loopback."""

    def __init__(self) -> None:
        found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
        self._bin = Path(require("PostgreSQL (initdb)", found[-1] if found else None)).parent
        self.dir = Path(tempfile.mkdtemp(prefix="softphone-pg-"))
        if os.geteuid() == 0:
            shutil.chown(self.dir, "postgres", "postgres")
        self.port = free_port()
        self.user = "softphone"
        self._data = self.dir / "data"
        self.pid: int | None = None

    def start(self) -> Postgres:
        if not self._data.exists():
            subprocess.run(
                _as_postgres(
                    [
                        str(self._bin / "initdb"),
                        "-D",
                        str(self._data),
                        "-A",
                        "trust",
                        "-U",
                        self.user,
                    ]
                ),
                check=True,
                capture_output=True,
            )
        options = (
            f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off "
            "-c full_page_writes=off -c max_connections=300"
        )
        subprocess.run(
            _as_postgres(
                [
                    str(self._bin / "pg_ctl"),
                    "-D",
                    str(self._data),
                    "-o",
                    options,
                    "-l",
                    str(self.dir / "log"),
                    "-w",
                    "start",
                ]
            ),
            check=True,
            capture_output=True,
        )
        self.pid = int((self._data / "postmaster.pid").read_text().split()[0])
        return self

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/{database}"

    def admin(self, sql: str, database: str = "postgres") -> None:
        import psycopg

        with psycopg.connect(self.url(database), autocommit=True) as db:
            db.execute(sql.encode())

    def create_database(self, template: str | None = None) -> str:
        name = f"t_{uuid.uuid4().hex[:16]}"
        self.admin(f"CREATE DATABASE {name}" + (f" TEMPLATE {template}" if template else ""))
        return name

    def drop_database(self, name: str) -> None:
        self.admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")

    def kill(self) -> None:
        """SIGKILL the postmaster, as a crash would (its children exit when it is gone)."""
        if self.pid is not None:
            os.kill(self.pid, signal.SIGKILL)
            self.pid = None

    def stop(self, mode: str = "fast") -> None:
        """`immediate` is a crash for the clients (no goodbye, connections reset)."""
        if self.pid is None:
            return
        result = subprocess.run(
            _as_postgres(
                [str(self._bin / "pg_ctl"), "-D", str(self._data), "-m", mode, "-w", "stop"]
            ),
            capture_output=True,
        )
        if result.returncode != 0:
            os.kill(self.pid, signal.SIGKILL)
        self.pid = None

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)
