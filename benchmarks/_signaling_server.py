"""The server side of `benchmarks.signaling`: its config file, the users made beforehand with
`softphone user add`, and the `softphone serve` process itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import math
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import aiohttp

from benchmarks._signaling_common import PASSWORD, bounded, progress


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


CONFIG = """\
[server]
max_devices_per_user = 5000
max_live_calls_per_account = 1000
ring_timeout = 60

[rate_limits]
login_per_minute = 1000000
"""


async def create_users(config: Path, data_dir: Path, names: list[str], jobs: int) -> None:
    env = {**os.environ, "SOFTPHONE_PASSWORD": PASSWORD}

    async def add(name: str) -> None:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "softphone",
            "--config",
            str(config),
            "user",
            "--data-dir",
            str(data_dir),
            "add",
            name,
            env=env,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        _, err = await process.communicate()
        if process.returncode != 0:
            raise RuntimeError(f"user add {name} failed: {err.decode().strip()}")

    await bounded([functools.partial(add, name) for name in names], jobs)


class Server:
    def __init__(self, config: Path, data_dir: Path, log_dir: Path, profile: str | None) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        command = [sys.executable]
        if profile:
            command += ["-m", "cProfile", "-o", profile]
        command += [
            "-m",
            "softphone",
            "--config",
            str(config),
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--data-dir",
            str(data_dir),
            "--log-level",
            "warning",
        ]
        self._log = (log_dir / "server.log").open("wb")
        self.process = subprocess.Popen(
            command, stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )
        self.pid = self.process.pid
        self.log_path = log_dir / "server.log"

    async def wait_ready(self, http: aiohttp.ClientSession, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"server exited with {self.process.returncode}: "
                    f"{self.log_path.read_text()[-2000:]}"
                )
            with contextlib.suppress(aiohttp.ClientError):
                async with http.get(self.base + "/v1/health") as response:
                    if response.status == 200:
                        return
            await asyncio.sleep(0.05)
        raise RuntimeError("server did not come up in time")

    async def gauge(self, http: aiohttp.ClientSession, name: str) -> float:
        async with http.get(self.base + "/v1/metrics") as response:
            for line in (await response.text()).splitlines():
                if line.startswith(f"softphone_{name} "):
                    return float(line.split()[1])
        return math.nan

    async def stop(self) -> int | None:
        """SIGTERM, wait; SIGKILL if it does not go. Always by our own child's pid."""
        loop = asyncio.get_running_loop()
        try:
            if self.process.poll() is None:
                self.process.send_signal(signal.SIGTERM)
                try:
                    await loop.run_in_executor(None, self.process.wait, 15)
                except subprocess.TimeoutExpired:
                    progress("server ignored SIGTERM; killing it")
                    self.process.kill()
                    await loop.run_in_executor(None, self.process.wait, 5)
            return self.process.returncode
        finally:
            self._log.close()
