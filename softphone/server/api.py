"""The endpoint registry: routes and the OpenAPI document are both built from it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal

from aiohttp import web

from softphone.protocol.errors import ErrorCode

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Auth = Literal["none", "user", "any"]


@dataclass(frozen=True, slots=True)
class Endpoint:
    method: str
    path: str
    summary: str
    handler: Handler
    request: type[Any] | None
    response: type[Any] | None
    status: int
    auth: Auth
    errors: tuple[ErrorCode, ...]
    content_type: str = "application/json"


ENDPOINTS: list[Endpoint] = []


def endpoint(
    method: str,
    path: str,
    summary: str,
    *,
    request: type[Any] | None = None,
    response: type[Any] | None = None,
    status: int = 200,
    auth: Auth = "user",
    errors: tuple[ErrorCode, ...] = (),
    content_type: str = "application/json",
) -> Callable[[Handler], Handler]:
    def register(handler: Handler) -> Handler:
        ENDPOINTS.append(
            Endpoint(
                method,
                path,
                summary,
                handler,
                request,
                response,
                status,
                auth,
                errors,
                content_type,
            )
        )
        return handler

    return register
