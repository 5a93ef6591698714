"""Running the server: in the foreground (`softphone serve`) or inside another program."""

from __future__ import annotations

import asyncio
import logging
import signal

from aiohttp import web

from softphone.config import Config
from softphone.server.app import build_app

log = logging.getLogger("softphone.server")


class RunningServer:
    """A server started on the current event loop; `port` is the bound one (0 picks a free one)."""

    def __init__(self, runner: web.AppRunner, site: web.TCPSite, host: str, port: int) -> None:
        self.runner = runner
        self.site = site
        self.host = host
        self.port = port

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def app(self) -> web.Application:
        return self.runner.app

    async def stop(self) -> None:
        await self.runner.cleanup()


async def start_server(
    config: Config, host: str | None = None, port: int | None = None
) -> RunningServer:
    app = build_app(config)
    runner = web.AppRunner(app, handle_signals=False, access_log=None, shutdown_timeout=5.0)
    await runner.setup()
    host = host or config.server.host
    site = web.TCPSite(runner, host, config.server.port if port is None else port)
    await site.start()
    return RunningServer(runner, site, host, int(runner.addresses[0][1]))


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
