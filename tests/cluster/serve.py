"""`softphone serve` in a subprocess with a config file written by the test: started, waited
for on /v1/health, and stopped (SIGTERM) or killed (SIGKILL) by its PID."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import BinaryIO

import aiohttp

from tests.cluster.instances import free_port


def softphone_env(config: Path) -> dict[str, str]:
    """The environment without any SOFTPHONE_* of the test run: the config file says it all."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SOFTPHONE_")}
    env["SOFTPHONE_CONFIG"] = str(config)
    return env


def run_softphone(
    config: Path, *args: str, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "softphone", *args],
        env=softphone_env(config),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


class ServeProcess:
    def __init__(self, directory: Path, config_text: str, port: int | None = None) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.dir = directory
        self.port = port or free_port()
        self.config = directory / "config.toml"
        self.config.write_text(
            f'[server]\ndata_dir = "{directory}"\nport = {self.port}\n{config_text}'
        )
        self.proc: subprocess.Popen[bytes] | None = None
        self._log: BinaryIO | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log(self) -> str:
        path = self.dir / "serve.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def spawn(self) -> subprocess.Popen[bytes]:
        self._log = (self.dir / "serve.log").open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "softphone", "serve", "--log-level", "warning"],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=softphone_env(self.config),
        )
        return self.proc

    async def start(self, timeout: float = 30.0) -> ServeProcess:
        proc = self.spawn()
        deadline = time.monotonic() + timeout
        async with aiohttp.ClientSession() as http:
            while True:
                assert proc.poll() is None, self.log
                try:
                    async with http.get(f"{self.url}/v1/health") as response:
                        if response.status == 200:
                            return self
                except aiohttp.ClientError:
                    pass
                assert time.monotonic() < deadline, f"the server did not start:\n{self.log}"
                await asyncio.sleep(0.05)

    def kill(self) -> None:
        """SIGKILL: no shutdown, no close frames; the kernel resets its connections."""
        self._end(signal.SIGKILL)

    def stop(self) -> None:
        self._end(signal.SIGTERM)

    def _end(self, sig: signal.Signals) -> None:
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            os.kill(proc.pid, sig)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait()
        if self._log is not None:
            self._log.close()
            self._log = None
