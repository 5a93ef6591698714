"""Login, logout, subscriptions and the notification websocket."""

from __future__ import annotations

from aiohttp import web

from softphone.protocol.errors import ErrorCode as E
from softphone.protocol.frames import GoneReason
from softphone.protocol.models import (
    LoginRequest,
    LoginResponse,
    SubscriptionRefresh,
    SubscriptionRequest,
    SubscriptionResponse,
)
from softphone.server.api import endpoint
from softphone.server.errors import ApiError
from softphone.server.http import decode, json_response
from softphone.server.hub import Subscription
from softphone.server.services import SERVICES, Services, client_address

SERVICES_OFFERED = frozenset({"call"})
NOTIFICATIONS_PATH = "/v1/notifications"


@endpoint(
    "POST",
    "/v1/sessions",
    "Log in: exchange a user name and password for a bearer token",
    request=LoginRequest,
    response=LoginResponse,
    status=201,
    auth="none",
    errors=(E.INVALID_JSON, E.VALIDATION, E.BAD_CREDENTIALS, E.RATE_LIMITED, E.PAYLOAD_TOO_LARGE),
)
async def login(request: web.Request) -> web.Response:
    services = request.app[SERVICES]
    body = await decode(request, LoginRequest)
    services.login_address_limit.check(client_address(request))
    services.login_limit.check(f"{client_address(request)}|{body.username}")
    token, session = await services.sessions.login(body.username, body.password)
    services.metrics.logins += 1
    return json_response(
        LoginResponse(token=token, user=session.user, expires_at=session.expires_at), 201
    )


@endpoint(
    "DELETE",
    "/v1/sessions",
    "Log out: revoke this token and close its subscription",
    status=204,
    errors=(E.UNAUTHORIZED, E.SESSION_EXPIRED, E.ANONYMOUS_NOT_ALLOWED),
)
async def logout(request: web.Request) -> web.Response:
    services = request.app[SERVICES]
    session = services.sessions.require_user(request)
    services.hub.remove_session(session.token_hash, GoneReason.LOGGED_OUT, "logged out")
    services.sessions.revoke(session.token_hash)
    return web.Response(status=204)


def _subscription_body(services: Services, sub: Subscription) -> SubscriptionResponse:
    return SubscriptionResponse(
        subscription_id=sub.id,
        channel=NOTIFICATIONS_PATH,
        services=sub.row.services,
        expires_at=sub.row.expires_at,
        ice_servers=services.ice.servers(sub.row.user),
        ice_ttl=services.ice.ttl,
        ping_interval=services.hub.ping_interval,
        resume_window=services.hub.resume_window,
    )


def _expires(services: Services, expires: int) -> int:
    limit = services.config.server.subscription_max_expires
    if not 60 <= expires <= limit:
        raise ApiError(E.VALIDATION, f"expires must be between 60 and {limit} seconds")
    return expires


@endpoint(
    "POST",
    "/v1/subscriptions",
    "Subscribe this session (one device) to services; returns the notification channel "
    "and ICE servers",
    request=SubscriptionRequest,
    response=SubscriptionResponse,
    status=201,
    errors=(
        E.UNAUTHORIZED,
        E.SESSION_EXPIRED,
        E.INVALID_JSON,
        E.VALIDATION,
        E.PAYLOAD_TOO_LARGE,
        E.TOO_MANY_DEVICES,
        E.ANONYMOUS_NOT_ALLOWED,
    ),
)
async def subscribe(request: web.Request) -> web.Response:
    services = request.app[SERVICES]
    session = services.sessions.require_user(request)
    body = await decode(request, SubscriptionRequest)
    unknown = set(body.services) - SERVICES_OFFERED
    if unknown or not body.services:
        raise ApiError(
            E.VALIDATION,
            f"services must be a non-empty subset of "
            f"{sorted(SERVICES_OFFERED)}; got {sorted(body.services)}",
        )
    sub = services.hub.subscribe(
        session, sorted(set(body.services)), _expires(services, body.expires), body.force_logout
    )
    return json_response(_subscription_body(services, sub), 201)


def _own_subscription(request: web.Request) -> tuple[Services, Subscription]:
    services = request.app[SERVICES]
    session = services.sessions.require(request)
    sub = services.hub.get(request.match_info["sub_id"])
    if sub is None or sub.row.session_hash != session.token_hash:
        raise ApiError(E.NOT_FOUND, "no such subscription for this session")
    return services, sub


@endpoint(
    "GET",
    "/v1/subscriptions/{sub_id}",
    "Read a subscription (fresh ICE credentials)",
    response=SubscriptionResponse,
    auth="any",
    errors=(E.UNAUTHORIZED, E.SESSION_EXPIRED, E.NOT_FOUND),
)
async def get_subscription(request: web.Request) -> web.Response:
    services, sub = _own_subscription(request)
    return json_response(_subscription_body(services, sub))


@endpoint(
    "PUT",
    "/v1/subscriptions/{sub_id}",
    "Refresh a subscription before it expires",
    request=SubscriptionRefresh,
    response=SubscriptionResponse,
    auth="any",
    errors=(
        E.UNAUTHORIZED,
        E.SESSION_EXPIRED,
        E.NOT_FOUND,
        E.INVALID_JSON,
        E.VALIDATION,
        E.PAYLOAD_TOO_LARGE,
    ),
)
async def refresh_subscription(request: web.Request) -> web.Response:
    services, sub = _own_subscription(request)
    body = await decode(request, SubscriptionRefresh)
    services.hub.refresh(sub, _expires(services, body.expires))
    return json_response(_subscription_body(services, sub))


@endpoint(
    "DELETE",
    "/v1/subscriptions/{sub_id}",
    "Unsubscribe; the websocket is closed with 4000",
    status=204,
    errors=(E.UNAUTHORIZED, E.SESSION_EXPIRED, E.NOT_FOUND, E.ANONYMOUS_NOT_ALLOWED),
)
async def unsubscribe(request: web.Request) -> web.Response:
    services, sub = _own_subscription(request)
    services.sessions.require_user(request)
    services.hub.remove(sub, GoneReason.UNSUBSCRIBED, "unsubscribed")
    return web.Response(status=204)


@endpoint(
    "GET",
    NOTIFICATIONS_PATH,
    "The notification websocket (upgrade); first frame 'hello', see docs/protocol.md",
    auth="none",
    status=101,
)
async def notifications(request: web.Request) -> web.StreamResponse:
    return await request.app[SERVICES].hub.handle(request)
