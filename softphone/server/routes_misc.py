"""Health, metrics, call history and the OpenAPI document."""

from __future__ import annotations

import time

from aiohttp import web

from softphone import __version__
from softphone.protocol.errors import ErrorCode as E
from softphone.protocol.models import Health, History
from softphone.server.api import endpoint
from softphone.server.calls import call_record
from softphone.server.errors import ApiError
from softphone.server.http import json_response
from softphone.server.openapi import openapi_document
from softphone.server.services import SERVICES

MAX_HISTORY_PAGE = 200
MAX_HISTORY_OFFSET = 10**9  # SQLite integers overflow long before any real history would


@endpoint(
    "GET",
    "/v1/health",
    "Liveness, and whether the store can be reached",
    response=Health,
    auth="none",
)
async def health(request: web.Request) -> web.Response:
    services = request.app[SERVICES]
    store = "ok" if services.store.ping() else "unreachable"
    bus = "none" if services.bus is None else ("ok" if services.bus.ping() else "unreachable")
    ok = store == "ok" and bus != "unreachable"
    # 503 takes a process that cannot reach its store out of a load balancer's rotation.
    return json_response(
        Health(
            status="ok" if ok else "unavailable",
            version=__version__,
            uptime=round(time.time() - services.started_at, 3),
            store=store,
            bus=bus,
        ),
        200 if ok else 503,
    )


@endpoint(
    "GET",
    "/v1/metrics",
    "Prometheus metrics (text exposition format)",
    auth="none",
    content_type="text/plain",
)
async def metrics(request: web.Request) -> web.Response:
    return web.Response(
        text=request.app[SERVICES].metrics.render(), content_type="text/plain", charset="utf-8"
    )


@endpoint(
    "GET",
    "/v1/history",
    "Call records of this user, newest first (query: limit 1-200, offset)",
    response=History,
    errors=(E.UNAUTHORIZED, E.SESSION_EXPIRED, E.VALIDATION, E.ANONYMOUS_NOT_ALLOWED),
)
async def history(request: web.Request) -> web.Response:
    services = request.app[SERVICES]
    session = services.sessions.require_user(request)
    try:
        limit = int(request.query.get("limit", "50"))
        offset = int(request.query.get("offset", "0"))
    except ValueError as exc:
        raise ApiError(E.VALIDATION, "limit and offset must be integers") from exc
    if not 1 <= limit <= MAX_HISTORY_PAGE or not 0 <= offset <= MAX_HISTORY_OFFSET:
        raise ApiError(
            E.VALIDATION, f"limit must be 1-{MAX_HISTORY_PAGE}, offset 0-{MAX_HISTORY_OFFSET}"
        )
    calls = services.calls.history(session.user, limit, offset)
    return json_response(History(records=[call_record(c, session.user) for c in calls]))


@endpoint("GET", "/v1/openapi.json", "This API's OpenAPI 3.1 document", auth="none")
async def openapi(request: web.Request) -> web.Response:
    services = request.app[SERVICES]
    return json_response(openapi_document(services.config.server.subscription_max_expires))
