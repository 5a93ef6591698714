"""A raw websocket client on a plain socket, for clients no library would be: ones that never
read, read late, or send half a request. Frames are parsed by hand (RFC 6455)."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import socket
import struct
from dataclasses import dataclass, field
from typing import Any

TEXT, CLOSE = 0x1, 0x8


def frame(payload: bytes, opcode: int = TEXT) -> bytes:
    """One masked client frame."""
    mask = os.urandom(4)
    length = len(payload)
    if length < 126:
        header = struct.pack("!BB", 0x80 | opcode, 0x80 | length)
    elif length < 65536:
        header = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, length)
    else:
        header = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, length)
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return header + mask + masked


@dataclass
class RawSocket:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    pending: bytes = b""
    texts: list[dict[str, Any]] = field(default_factory=list)

    def send_json(self, value: Any) -> None:
        self.writer.write(frame(json.dumps(value).encode()))

    async def next_frame(self, timeout: float = 10.0) -> tuple[int, bytes]:
        """(opcode, payload) of the next server frame; raises on EOF or reset."""

        async def exactly(n: int) -> bytes:
            return await asyncio.wait_for(self.reader.readexactly(n), timeout)

        first, second = await exactly(2)
        length = second & 0x7F
        if length == 126:
            (length,) = struct.unpack("!H", await exactly(2))
        elif length == 127:
            (length,) = struct.unpack("!Q", await exactly(8))
        return first & 0x0F, await exactly(length)

    async def read_until_close(self, timeout: float = 10.0) -> int | None:
        """Read every frame, keeping the text ones, to the close frame: its code, or None if the
        connection ended without one (what a client reports as 1006)."""
        while True:
            try:
                opcode, payload = await self.next_frame(timeout)
            except (asyncio.IncompleteReadError, ConnectionError):
                return None
            if opcode == CLOSE:
                code: int = struct.unpack("!H", payload[:2])[0]
                self.writer.write(frame(payload[:2], CLOSE))
                return code
            if opcode == TEXT:
                self.texts.append(json.loads(payload))

    def close(self) -> None:
        self.writer.transport.abort()


async def open_raw(
    host: str, port: int, *, receive_buffer: int | None = None, limit: int = 2**16
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A TCP connection; a small `receive_buffer` (SO_RCVBUF) and `limit` make a client that
    stops reading push back on the server quickly."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if receive_buffer is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, (host, port))
    return await asyncio.open_connection(sock=sock, limit=limit)


async def open_websocket(
    host: str,
    port: int,
    token: str,
    subscription_id: str,
    *,
    last_seq: int | None = None,
    receive_buffer: int | None = None,
    limit: int = 2**16,
) -> RawSocket:
    """Upgrade to the notification websocket and send hello; the welcome is left unread."""
    reader, writer = await open_raw(host, port, receive_buffer=receive_buffer, limit=limit)
    key = base64.b64encode(os.urandom(16)).decode()
    writer.write(
        (
            "GET /v1/notifications HTTP/1.1\r\n"
            f"Host: {host}:{port}\r\n"
            "Upgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
            f"Authorization: Bearer {token}\r\n\r\n"
        ).encode()
    )
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    assert head.startswith(b"HTTP/1.1 101"), head
    raw = RawSocket(reader, writer)
    hello: dict[str, Any] = {"type": "hello", "subscription_id": subscription_id}
    if last_seq is not None:
        hello["last_seq"] = last_seq
    raw.send_json(hello)
    return raw
