"""The aiohttp application: wiring, lifecycle (start, sweep, graceful shutdown) and routes."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator

from aiohttp import web
from aiohttp.typedefs import Middleware

from softphone.config import Config
from softphone.server import (
    routes_anonymous,
    routes_calls,
    routes_misc,
    routes_sessions,
    routes_web,
)
from softphone.server.anonymous import AnonymousService, load_realms
from softphone.server.api import ENDPOINTS
from softphone.server.auth import Sessions
from softphone.server.calls import CallService
from softphone.server.cluster import cluster_parts, open_bus, shared_store
from softphone.server.forwarded import TrustedProxies, parse_networks
from softphone.server.http import error_middleware
from softphone.server.hub import Hub, HubLimits
from softphone.server.ice import IceProvider
from softphone.server.metrics import METRICS_KEY, Metrics
from softphone.server.ratelimit import Limiter, RateLimiter
from softphone.server.services import SERVICES, Services
from softphone.server.storage import Storage
from softphone.server.store_open import database_path, open_store

log = logging.getLogger("softphone.server")

__all__ = ["ROUTE_MODULES", "build_app", "build_services", "database_path", "trusted_proxies"]

# Importing the route modules registers their endpoints.
ROUTE_MODULES = (routes_sessions, routes_calls, routes_anonymous, routes_misc, routes_web)
SWEEP_INTERVAL = 1.0


def trusted_proxies(config: Config) -> TrustedProxies:
    return TrustedProxies(parse_networks(config.server.trusted_proxies))


def build_services(config: Config, store: Storage) -> Services:
    server = config.server
    bus = open_bus(config)
    limits: tuple[Limiter, Limiter, Limiter]
    if bus is None:
        sessions = Sessions(store, server.session_ttl)
        hub = Hub(store, sessions, HubLimits.of(server))
        calls = CallService(
            store,
            hub,
            domain=server.domain,
            ring_timeout=server.ring_timeout,
            max_live_calls=server.max_live_calls_per_account,
        )
        limits = (
            RateLimiter(config.rate_limits.login_per_minute, "login attempts"),
            # Per address too, so cycling through user names cannot dodge the per-account limit.
            RateLimiter(
                5 * config.rate_limits.login_per_minute, "login attempts from this address"
            ),
            RateLimiter(config.rate_limits.anonymous_per_minute, "anonymous calls"),
        )
    else:
        sessions, hub, calls, limits = cluster_parts(config, shared_store(store), bus)
    anonymous = AnonymousService(
        store, sessions, hub, calls, config.anonymous, load_realms(config.realms)
    )
    metrics = Metrics()
    metrics.counters["calls_total"] = ("Calls started.", lambda: calls.started)
    metrics.counters["call_setups_total"] = (
        "Calls answered (set up end to end).",
        lambda: calls.setups,
    )
    metrics.gauges["websocket_connections"] = (
        "Open notification websockets.",
        lambda: hub.connection_count,
    )
    metrics.gauges["websocket_queued_bytes"] = (
        "Bytes waiting in websocket send queues.",
        lambda: hub.queued_bytes,
    )
    metrics.gauges["websocket_queue_high_water_bytes"] = (
        "The most bytes one websocket send queue has held since the server started.",
        lambda: hub.queue_watermark.high,
    )
    metrics.counters["websocket_slow_consumers_total"] = (
        "Websockets closed (4003) because their send queue overflowed.",
        lambda: hub.slow_consumers,
    )
    metrics.counters["websocket_replies_refused_total"] = (
        "Client websocket frames dropped undecoded beyond the reply budget.",
        lambda: hub.replies_refused,
    )
    metrics.gauges["subscriptions"] = ("Subscriptions (devices).", lambda: hub.subscription_count)
    metrics.gauges["live_calls"] = ("Calls not yet ended.", lambda: calls.live_count)
    return Services(
        config=config,
        store=store,
        sessions=sessions,
        hub=hub,
        calls=calls,
        anonymous=anonymous,
        ice=IceProvider(config),
        metrics=metrics,
        login_limit=limits[0],
        login_address_limit=limits[1],
        anonymous_limit=limits[2],
        started_at=time.time(),
        bus=bus,
    )


def build_app(config: Config, store: Storage | None = None) -> web.Application:
    """The server app. `store` defaults to the configured one (`open_store`)."""
    store = store or open_store(config)
    services = build_services(config, store)
    proxies = trusted_proxies(config)
    # The forwarded-headers middleware runs first so errors and limits see the real client.
    middlewares: list[Middleware] = [error_middleware]
    if proxies:
        middlewares.insert(0, proxies.middleware())
    app = web.Application(middlewares=middlewares, client_max_size=config.server.max_body_bytes)
    app[SERVICES] = services
    app[METRICS_KEY] = services.metrics
    for e in ENDPOINTS:
        app.router.add_route(e.method, e.path, e.handler)
    routes_web.setup_web(app, config)
    app.cleanup_ctx.append(_lifecycle)
    app.on_shutdown.append(_close_websockets)
    return app


async def _lifecycle(app: web.Application) -> AsyncIterator[None]:
    services = app[SERVICES]
    services.hub.start()
    services.calls.start()
    sweeper = asyncio.create_task(_sweep(services))
    yield
    sweeper.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await sweeper
    await services.calls.stop()
    services.sessions.close()
    services.store.close()
    if services.bus is not None:
        await services.bus.close()


async def _sweep(services: Services) -> None:
    while True:
        await asyncio.sleep(SWEEP_INTERVAL)
        try:
            services.hub.sweep(time.time(), time.monotonic())
            for session_hash in services.sessions.expired(time.time()):
                services.sessions.revoke(session_hash)
        except Exception:
            log.exception("housekeeping failed; retrying next tick")


async def _close_websockets(app: web.Application) -> None:
    # Live calls stay in the store: a restarted server still knows them.
    await app[SERVICES].hub.shutdown()
