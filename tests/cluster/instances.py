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


class Redis:
    """One redis-server in the foreground (so its PID is ours), appendonly so a restart keeps
    the seqs, as a deployment must."""

    def __init__(self, port: int | None = None) -> None:
        self._binary = require("Redis (redis-server)", shutil.which("redis-server"))
        self.dir = Path(tempfile.mkdtemp(prefix="softphone-redis-"))
        self.port = port or free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> Redis:
        self.proc = subprocess.Popen(
            [
                self._binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
                "--dir",
                str(self.dir),
            ],
            stdout=(self.dir / "log").open("ab"),
            stderr=subprocess.STDOUT,
        )
        wait_for_port(self.port)
        return self

    def flush(self) -> None:
        import redis

        client = redis.Redis.from_url(self.url)
        try:
            client.flushall()
        finally:
            client.close()

    def kill(self) -> None:
        if self.proc is not None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
            self.proc = None

    def stop(self) -> None:
        if self.proc is not None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()
            self.proc = None

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


HAPROXY_CONFIG = """
global
    maxconn 4096
defaults
    mode http
    option redispatch
    retries 2
    timeout connect 1s
    timeout client 30s
    timeout server 30s
    timeout tunnel 1h
    timeout http-keep-alive 15s
frontend softphone
    bind 127.0.0.1:{port}
    option forwardfor
    default_backend softphone
backend softphone
    balance {balance}
    option httpchk GET /v1/health
    http-check expect status 200
    default-server inter 300ms fall 1 rise 1
{servers}
"""


class HAProxy:
    """HAProxy in the foreground (-db) over the given backend ports; stopped by its PID."""

    def __init__(self, backends: list[int], balance: str = "roundrobin") -> None:
        self._binary = require("HAProxy", shutil.which("haproxy") or "/usr/sbin/haproxy")
        self.dir = Path(tempfile.mkdtemp(prefix="softphone-haproxy-"))
        self.port = free_port()
        servers = "\n".join(
            f"    server sp{i} 127.0.0.1:{port} check" for i, port in enumerate(backends, 1)
        )
        self.config = self.dir / "haproxy.cfg"
        self.config.write_text(
            HAPROXY_CONFIG.format(port=self.port, balance=balance, servers=servers)
        )
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> HAProxy:
        self.proc = subprocess.Popen(
            [self._binary, "-f", str(self.config), "-db"],
            stdout=(self.dir / "log").open("ab"),
            stderr=subprocess.STDOUT,
        )
        wait_for_port(self.port)
        return self

    def remove(self) -> None:
        if self.proc is not None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
            self.proc = None
        shutil.rmtree(self.dir, ignore_errors=True)
