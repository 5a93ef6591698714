"""Wiring for several server processes: `[bus] url` (or $SOFTPHONE_BUS_URL) set, with the
PostgreSQL store. The parts keep their interfaces; they read and write what is shared."""

from __future__ import annotations

import os
from pathlib import Path

from softphone.config import Config
from softphone.server.auth import Sessions
from softphone.server.bus import RedisBus
from softphone.server.call_table import SharedCalls, SharedTimers
from softphone.server.calls import CallService
from softphone.server.cluster_hub import ClusterHub
from softphone.server.hub import HubLimits
from softphone.server.ratelimit import Limiter, SharedRateLimiter
from softphone.server.storage import SharedStore, Storage

BUS_URL_ENV = "SOFTPHONE_BUS_URL"


def bus_url(config: Config) -> str:
    return os.environ.get(BUS_URL_ENV) or config.bus.url


def open_bus(config: Config) -> RedisBus | None:
    """The configured bus, reachable now (else BusUnavailable: `serve` exits with the reason),
    or None for the in-process hub."""
    url = bus_url(config)
    if not url:
        return None
    password = None
    if config.bus.password_file:
        password = Path(config.bus.password_file).expanduser().read_text("utf-8").strip()
    bus = RedisBus(url, password=password, resume_buffer=config.server.resume_buffer)
    bus.check()
    return bus


def shared_store(store: Storage) -> SharedStore:
    from softphone.server.store_postgres import PostgresStore

    if not isinstance(store, PostgresStore):
        raise ValueError("a [bus] url needs a store several processes share: set [store] url")
    return store


def cluster_parts(
    config: Config, store: SharedStore, bus: RedisBus
) -> tuple[Sessions, ClusterHub, CallService, tuple[Limiter, Limiter, Limiter]]:
    server, rates = config.server, config.rate_limits
    sessions = Sessions(store, server.session_ttl, shared=store)
    hub = ClusterHub(store, sessions, bus, HubLimits.of(server))
    timers = SharedTimers(bus)
    timers.handle("lost", hub.device_lost)
    calls = CallService(
        store,
        hub,
        domain=server.domain,
        ring_timeout=server.ring_timeout,
        max_live_calls=server.max_live_calls_per_account,
        table=SharedCalls(store, bus),
        timers=timers,
    )
    limits: tuple[Limiter, Limiter, Limiter] = (
        SharedRateLimiter(bus, "login", rates.login_per_minute, "login attempts"),
        SharedRateLimiter(
            bus, "login-address", 5 * rates.login_per_minute, "login attempts from this address"
        ),
        SharedRateLimiter(bus, "anonymous", rates.anonymous_per_minute, "anonymous calls"),
    )
    return sessions, hub, calls, limits
