"""Running the server: in the foreground (`softphone serve`) or inside another program."""

from __future__ import annotations

import asyncio
import logging
import signal
import ssl

from aiohttp import web

from softphone.config import Config
from softphone.server.app import build_app, trusted_proxies
from softphone.server.connection_guard import ConnectionGuard, request_log
from softphone.server.tls import server_ssl_context

log = logging.getLogger("softphone.server")

# How long a connection may take to send a complete request head, counted from when it opens
# and from its previous response (aiohttp's keep-alive timer, which closes a connection whose
# head is incomplete when it fires): slow or half-sent heads cannot hold descriptors for long.
# Longer than aiohttp's client keep-alive (15 s), so clients, not the server, drop idle ones.
HEADER_TIMEOUT = 20.0


class RunningServer:
    """A server started on the current event loop; `port` is the bound one (0 picks a free one)."""

    def __init__(
        self,
        runner: web.AppRunner,
        site: web.BaseSite | None,
        host: str,
        port: int,
        listener: asyncio.Server | None = None,
        guard: ConnectionGuard | None = None,
        tls: bool = False,
    ) -> None:
        self.runner = runner
        self.tls = tls
        self.site = site
        self.host = host
        self.port = port
        self.guard = guard
        self._listener = listener

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://{self.host}:{self.port}"

    @property
    def app(self) -> web.Application:
        return self.runner.app

    async def stop(self) -> None:
        if self._listener is not None:
            self._listener.close()  # no new connections; open ones are closed by the runner
        await self.runner.cleanup()


async def start_server(
    config: Config,
    host: str | None = None,
    port: int | None = None,
    *,
    header_timeout: float = HEADER_TIMEOUT,
    connections_per_address: int | None = None,
    cap_loopback: bool | None = None,
) -> RunningServer:
    """`connections_per_address` and `cap_loopback` override the config's (tests)."""
    tls: ssl.SSLContext | None = None
    if config.server.tls_cert_file:
        tls = server_ssl_context(config.server.tls_cert_file, config.server.tls_key_file)
    app = build_app(config)
    runner = web.AppRunner(
        app,
        handle_signals=False,
        access_log=None,
        shutdown_timeout=5.0,
        keepalive_timeout=header_timeout,
        logger=request_log(),
    )
    await runner.setup()
    host = host or config.server.host
    assert runner.server is not None
    # Our own listening socket rather than a TCPSite: its protocol factory is the guard.
    server = config.server
    guard = ConnectionGuard(
        runner.server,
        connections_per_address or server.max_connections_per_address,
        cap_loopback=server.limit_loopback_connections if cap_loopback is None else cap_loopback,
        exempt=trusted_proxies(config).trusts,
    )
    listener = await asyncio.get_running_loop().create_server(
        guard,
        host,
        config.server.port if port is None else port,
        reuse_address=True,
        ssl=tls,
        # A client that opens TCP and never finishes the handshake is dropped like a slow head.
        ssl_handshake_timeout=header_timeout if tls else None,
    )
    bound = int(listener.sockets[0].getsockname()[1])
    return RunningServer(runner, None, host, bound, listener, guard, tls=tls is not None)


async def serve_forever(config: Config, ready: asyncio.Event | None = None) -> None:
    server = await start_server(config)
    print(f"softphone server listening on {server.url}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    if ready is not None:
        ready.set()
    try:
        await stop.wait()
    finally:
        print("softphone server stopping", flush=True)
        await server.stop()
