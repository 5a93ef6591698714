"""coturn (`turnserver`) on 127.0.0.1 with the TURN REST API secret, for relay-only calls."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import struct
from dataclasses import dataclass
from pathlib import Path

REALM = "softphone.test"


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _answers_stun(port: int) -> bool:
    """A STUN Binding request to 127.0.0.1:port gets a success response."""
    request = struct.pack("!HHI12s", 0x0001, 0, 0x2112A442, os.urandom(12))
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(0.2)
        sock.sendto(request, ("127.0.0.1", port))
        try:
            data = sock.recv(2048)
        except OSError:
            return False
    return data[:2] == b"\x01\x01" and data[8:20] == request[8:20]


@dataclass
class Coturn:
    process: asyncio.subprocess.Process
    port: int
    secret: bytes
    log: Path

    @property
    def url(self) -> str:
        return f"turn:127.0.0.1:{self.port}?transport=udp"

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    @classmethod
    async def start(cls, directory: Path, secret: bytes) -> Coturn:
        port = free_udp_port()
        log = directory / "turnserver.log"
        process = await asyncio.create_subprocess_exec(
            "turnserver", "-n",  # -n: not /etc/turnserver.conf
            "--listening-ip=127.0.0.1", f"--listening-port={port}", "--relay-ip=127.0.0.1",
            "--min-port=49152", "--max-port=65535",
            "--use-auth-secret", f"--static-auth-secret={secret.decode()}", f"--realm={REALM}",
            "--no-tls", "--no-dtls", "--no-tcp-relay", "--allow-loopback-peers", "--no-cli",
            "--no-multicast-peers", f"--userdb={directory / 'turndb'}",
            f"--pidfile={directory / 'turnserver.pid'}", f"--log-file={log}", "--simple-log",
            "--verbose",
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip
        server = cls(process, port, secret, log)
        for _ in range(100):
            if process.returncode is not None:
                raise RuntimeError(f"turnserver exited ({process.returncode}): {server.log_text()}")
            if await asyncio.to_thread(_answers_stun, port):
                return server
            await asyncio.sleep(0.1)
        await server.stop()
        raise RuntimeError(f"turnserver never answered on 127.0.0.1:{port}")

    async def stop(self) -> None:
        if self.process.returncode is not None:
            return
        self.process.terminate()
        try:
            await asyncio.wait_for(self.process.wait(), 5)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            await self.process.wait()
