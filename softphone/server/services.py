"""The server's parts, wired together once and shared by every handler through the app."""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web

from softphone.config import Config
from softphone.server.anonymous import AnonymousService
from softphone.server.auth import Sessions
from softphone.server.bus import RedisBus
from softphone.server.calls import CallService
from softphone.server.hub import Hub
from softphone.server.ice import IceProvider
from softphone.server.metrics import Metrics
from softphone.server.ratelimit import Limiter
from softphone.server.storage import Storage


@dataclass
class Services:
    config: Config
    store: Storage
    sessions: Sessions
    hub: Hub
    calls: CallService
    anonymous: AnonymousService
    ice: IceProvider
    metrics: Metrics
    login_limit: Limiter
    login_address_limit: Limiter
    anonymous_limit: Limiter
    started_at: float
    bus: RedisBus | None = None  # several processes: the Redis bus (None: in-process hub)


SERVICES = web.AppKey("services", Services)


def client_address(request: web.Request) -> str:
    return request.remote or "unknown"
