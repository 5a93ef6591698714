"""A TURN server of a few lines of UDP, for tests whose clients must gather with TURN.

It plays coturn with `--use-auth-secret` just far enough to see who allocates: the first Allocate
is answered 401 (realm and nonce); the authenticated one is checked the way coturn checks it
(password = base64 HMAC-SHA1(secret, username), MESSAGE-INTEGRITY under
MD5(username:realm:password)), recorded, then refused with a signed 403, so that the client's
gathering goes on at once without a relay candidate. Needs aioice (for its STUN codec).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
from dataclasses import dataclass
from typing import cast

from aioice import stun

SECRET = b"turn-test-secret"
REALM = "softphone.test"


def password_for(username: str, secret: bytes = SECRET) -> str:
    """What coturn (`--use-auth-secret`) expects as the password of a TURN REST username."""
    return base64.b64encode(hmac.new(secret, username.encode(), hashlib.sha1).digest()).decode()


@dataclass(frozen=True)
class Allocation:
    username: str
    verified: bool  # MESSAGE-INTEGRITY checks out under the secret's password


class FakeTurn(asyncio.DatagramProtocol):
    """Listens on 127.0.0.1 (`port`); `allocations` lists the authenticated Allocate requests."""

    def __init__(self, secret: bytes) -> None:
        self.secret = secret
        self.allocations: list[Allocation] = []
        self.transport: asyncio.DatagramTransport | None = None
        self.port = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)
        self.port = transport.get_extra_info("sockname")[1]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        try:
            request = stun.parse_message(data)
        except ValueError:
            return
        if request.message_method != stun.Method.ALLOCATE:
            return
        answer = stun.Message(
            message_method=stun.Method.ALLOCATE,
            message_class=stun.Class.ERROR,
            transaction_id=request.transaction_id,
        )
        username = request.attributes.get("USERNAME")
        if username is None:
            answer.attributes["ERROR-CODE"] = (401, "Unauthorized")
            answer.attributes["REALM"] = REALM
            answer.attributes["NONCE"] = b"nonce-0123456789"
        else:
            creds = ":".join((username, REALM, password_for(username, self.secret)))
            key = hashlib.md5(creds.encode()).digest()
            verified = request.check_message_integrity(key)
            self.allocations.append(Allocation(username, verified))
            answer.attributes["ERROR-CODE"] = (403, "Forbidden")
            if verified:  # aioice ignores an unsigned answer to a signed request
                answer.add_message_integrity(key)
        assert self.transport is not None
        self.transport.sendto(bytes(answer), addr)

    def of(self, opaque: str, since: int = 0) -> set[Allocation]:
        """The allocations (from the `since`-th on) of the user a TURN REST opaque part names."""
        return {a for a in self.allocations[since:] if a.username.endswith(":" + opaque)}


async def fake_turn(secret: bytes = SECRET) -> FakeTurn:
    """Start one on a free UDP port of 127.0.0.1; close its `transport` when done."""
    loop = asyncio.get_running_loop()
    _, protocol = await loop.create_datagram_endpoint(
        lambda: FakeTurn(secret), local_addr=("127.0.0.1", 0)
    )
    return protocol
