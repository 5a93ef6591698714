"""The browser demo pages under /web/ and the demo token service they may use.

The pages are package data (`softphone/web/`): plain HTML, CSS and JavaScript modules, served
as they are with `Cache-Control: no-cache` and a Content-Security-Policy that allows nothing but
this origin (and its websocket). `GET /v1/demo/callparameters` issues a fresh token set for a
token-mode anonymous call; it is off unless `[demo] enabled = true`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import msgspec
from aiohttp import web

from softphone.config import Config
from softphone.protocol.errors import ErrorCode as E
from softphone.server.anonymous import load_realms
from softphone.server.api import endpoint
from softphone.server.errors import ApiError
from softphone.server.http import json_response
from softphone.server.ratelimit import RateLimiter
from softphone.server.services import client_address
from softphone.server.tokens import TokenFormat, issue_token_set

log = logging.getLogger("softphone.server")

WEB_ROOT = Path(__file__).resolve().parent.parent / "web"
WEB_PREFIX = "/web/"
CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
}
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "media-src 'self' blob: mediastream:; connect-src 'self' ws: wss:; object-src 'none'; "
    "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
# What a browser says about a request's origin (Fetch Metadata); anything else is cross-site.
SAME_ORIGIN_FETCH = {"same-origin", "none"}


class DemoCallParameters(msgspec.Struct, rename="camel"):
    """A token set for one token-mode anonymous call, shaped like Kandy's sample token server."""

    realm: str
    account_token: str
    from_token: str
    to_token: str
    caller: str
    callee: str


@dataclass(frozen=True, slots=True)
class DemoIssuer:
    realm: str
    format: TokenFormat
    key: bytes
    caller: str
    callee: str
    account: str
    ttl: int
    limit: RateLimiter

    def issue(self) -> DemoCallParameters:
        tokens = issue_token_set(
            self.format,
            self.key,
            self.realm,
            account=self.account,
            caller=self.caller,
            callee=self.callee,
            ttl=self.ttl,
        )
        return msgspec.convert(tokens, DemoCallParameters)


DEMO = web.AppKey("demo", DemoIssuer)


def setup_web(app: web.Application, config: Config) -> None:
    """Add the static pages, the `/` redirect and (when enabled) the demo token issuer."""
    app.router.add_get("/", _to_pages)
    app.router.add_get("/web", _to_pages)
    app.router.add_get(WEB_PREFIX + "{path:.*}", _static)
    demo = config.demo
    if demo.enabled:
        realm = load_realms([r for r in config.realms if r.name == demo.realm])[demo.realm]
        app[DEMO] = DemoIssuer(
            realm=realm.name,
            format=realm.format,
            key=realm.key,
            caller=demo.caller,
            callee=demo.callee,
            account=demo.account,
            ttl=max(1, int(config.anonymous.token_max_age)),
            limit=RateLimiter(config.rate_limits.anonymous_per_minute, "demo token sets"),
        )


async def _to_pages(request: web.Request) -> web.StreamResponse:
    raise web.HTTPFound(WEB_PREFIX)


async def _static(request: web.Request) -> web.StreamResponse:
    relative = request.match_info["path"] or "index.html"
    path = (WEB_ROOT / relative).resolve()
    content_type = CONTENT_TYPES.get(path.suffix)
    if content_type is None or not path.is_relative_to(WEB_ROOT) or not path.is_file():
        raise web.HTTPNotFound()
    response = web.FileResponse(path)
    response.content_type = content_type.split(";")[0]
    response.charset = "utf-8"
    response.headers.update(
        {
            "Cache-Control": "no-cache",
            "Content-Security-Policy": CONTENT_SECURITY_POLICY,
            "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "no-referrer",
        }
    )
    return response


@endpoint(
    "GET",
    "/v1/demo/callparameters",
    "Demo token service (off by default): a fresh token set for a token-mode anonymous call, "
    "for same-origin pages only",
    response=DemoCallParameters,
    auth="none",
    errors=(E.NOT_FOUND, E.FORBIDDEN, E.RATE_LIMITED),
)
async def demo_call_parameters(request: web.Request) -> web.Response:
    issuer = request.app.get(DEMO)
    if issuer is None:
        raise ApiError(E.NOT_FOUND, "the demo token service is not enabled")
    site = request.headers.get("Sec-Fetch-Site")
    if site is not None and site not in SAME_ORIGIN_FETCH:
        raise ApiError(E.FORBIDDEN, "the demo token service answers same-origin pages only")
    issuer.limit.check(client_address(request))
    log.info("demo token set issued for a call to %s", issuer.callee)
    response = json_response(issuer.issue())
    response.headers["Cache-Control"] = "no-store"
    return response
