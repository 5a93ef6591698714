"""Forwarded headers from a TLS-terminating proxy, believed only from configured proxies.

Anyone can send X-Forwarded-For; believing it from any peer would let a client choose the
address its rate limits are counted against. So the peer must be one of `[server]
trusted_proxies` (addresses or networks), and the client is the right-most address in the chain
that is not itself a trusted proxy.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Awaitable, Callable, Iterable

from aiohttp import web
from aiohttp.typedefs import Middleware

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_networks(entries: Iterable[str]) -> list[Network]:
    """`["10.0.0.5", "192.168.0.0/24"]` as networks; ValueError names a bad entry."""
    networks: list[Network] = []
    for entry in entries:
        try:
            networks.append(ipaddress.ip_network(entry.strip(), strict=False))
        except ValueError as exc:
            raise ValueError(f"not an address or network: {entry!r}") from exc
    return networks


class TrustedProxies:
    def __init__(self, networks: list[Network]) -> None:
        self._networks = networks

    def __bool__(self) -> bool:
        return bool(self._networks)

    def trusts(self, address: str | None) -> bool:
        if not address:
            return False
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in network for network in self._networks)

    def client_of(self, peer: str, forwarded_for: str) -> str:
        """The client's address: walk the chain from the right past trusted proxies."""
        if not self.trusts(peer):
            return peer
        hops = [hop.strip() for hop in forwarded_for.split(",") if hop.strip()]
        for hop in reversed(hops):
            if not self.trusts(hop):
                try:
                    return str(ipaddress.ip_address(hop))
                except ValueError:
                    return peer  # garbage in the header: keep what we know for sure
        if hops:
            try:
                return str(ipaddress.ip_address(hops[0]))
            except ValueError:
                pass
        return peer

    def middleware(self) -> Middleware:
        @web.middleware
        async def forwarded(request: web.Request, handler: Handler) -> web.StreamResponse:
            peer = request.remote
            if peer is None or not self.trusts(peer):
                return await handler(request)
            remote = self.client_of(peer, request.headers.get("X-Forwarded-For", ""))
            proto = request.headers.get("X-Forwarded-Proto", "").strip().lower()
            if proto in ("http", "https"):
                return await handler(request.clone(remote=remote, scheme=proto))
            return await handler(request.clone(remote=remote))

        return forwarded
