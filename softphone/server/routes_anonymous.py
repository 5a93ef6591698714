"""Anonymous calls: no login, a call-scoped token and channel; and the ICE servers before the
call, so that the caller's offer can gather TURN candidates."""

from __future__ import annotations

from aiohttp import web

from softphone.protocol.errors import ErrorCode as E
from softphone.protocol.models import (
    AnonymousCallRequest,
    AnonymousCallResponse,
    AnonymousIceRequest,
    AnonymousIceResponse,
)
from softphone.server.api import endpoint
from softphone.server.calls import call_info
from softphone.server.http import decode, json_response
from softphone.server.routes_sessions import NOTIFICATIONS_PATH
from softphone.server.services import SERVICES, client_address


@endpoint(
    "POST",
    "/v1/anonymous/calls",
    "Anonymous call (regular or token mode) to an account that accepts them; returns a "
    "call-scoped token and notification channel that end with the call",
    request=AnonymousCallRequest,
    response=AnonymousCallResponse,
    status=201,
    auth="none",
    errors=(
        E.INVALID_JSON,
        E.VALIDATION,
        E.PAYLOAD_TOO_LARGE,
        E.INVALID_TOKEN,
        E.ANONYMOUS_NOT_ALLOWED,
        E.USER_BUSY,
        E.USER_UNAVAILABLE,
        E.RATE_LIMITED,
    ),
)
async def make_anonymous_call(request: web.Request) -> web.Response:
    services = request.app[SERVICES]
    services.anonymous_limit.check(client_address(request))
    body = await decode(request, AnonymousCallRequest)
    made = services.anonymous.make(body)
    return json_response(
        AnonymousCallResponse(
            call=call_info(made.call),
            token=made.token,
            subscription_id=made.subscription.id,
            channel=NOTIFICATIONS_PATH,
            ice_servers=services.ice.servers(made.session.user),
            ping_interval=services.hub.ping_interval,
            resume_window=services.hub.resume_window,
        ),
        201,
    )


@endpoint(
    "POST",
    "/v1/anonymous/ice-servers",
    "ICE servers (fresh TURN credentials) for the anonymous call about to be made, checked as "
    "the call will be (regular or token mode) but starting nothing and using no token set",
    request=AnonymousIceRequest,
    response=AnonymousIceResponse,
    auth="none",
    errors=(
        E.INVALID_JSON,
        E.VALIDATION,
        E.PAYLOAD_TOO_LARGE,
        E.INVALID_TOKEN,
        E.ANONYMOUS_NOT_ALLOWED,
        E.RATE_LIMITED,
    ),
)
async def anonymous_ice_servers(request: web.Request) -> web.Response:
    services = request.app[SERVICES]
    # The same allowance as the calls: a lookup costs what a call attempt costs.
    services.anonymous_limit.check(client_address(request))
    body = await decode(request, AnonymousIceRequest)
    caller = services.anonymous.ice_lookup(body)
    response = json_response(
        AnonymousIceResponse(ice_servers=services.ice.servers(caller), ice_ttl=services.ice.ttl)
    )
    response.headers["Cache-Control"] = "no-store"  # it holds TURN credentials
    return response
