"""REST request and response bodies for protocol v1.

Requests forbid unknown fields so a typo is an error rather than a silently ignored key.
"""

from __future__ import annotations

import enum

import msgspec


class CallState(enum.StrEnum):
    """Server-side call states (a subset of the SDK's; the client derives the rest)."""

    INITIATED = "Initiated"
    RINGING = "Ringing"
    CONNECTED = "Connected"
    ENDED = "Ended"


LIVE_STATES = frozenset({CallState.INITIATED, CallState.RINGING, CallState.CONNECTED})


class Request(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Base for request bodies."""


class Body(msgspec.Struct, kw_only=True, omit_defaults=False):
    """Base for response bodies."""


class ErrorDetail(Body):
    code: str
    message: str


class ErrorBody(Body):
    error: ErrorDetail


# -- sessions -------------------------------------------------------------------------------


class LoginRequest(Request):
    username: str
    password: str


class LoginResponse(Body):
    token: str
    user: str
    expires_at: float


# -- subscriptions --------------------------------------------------------------------------


class SubscriptionRequest(Request):
    services: list[str] = msgspec.field(default_factory=lambda: ["call"])
    force_logout: bool = False
    expires: int = 3600


class SubscriptionRefresh(Request):
    expires: int = 3600


class IceServer(Body, omit_defaults=True):
    urls: list[str]
    username: str | None = None
    credential: str | None = None


class SubscriptionResponse(Body):
    subscription_id: str
    channel: str
    services: list[str]
    expires_at: float
    ice_servers: list[IceServer]
    ice_ttl: int
    ping_interval: float
    resume_window: float


# -- calls ----------------------------------------------------------------------------------


class Media(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    audio: bool = True
    video: bool = False


class MakeCallRequest(Request):
    to: str
    sdp: str
    media: Media = msgspec.field(default_factory=Media)
    display_name: str | None = None


class SdpRequest(Request):
    sdp: str


class DtmfRequest(Request):
    digits: str
    duration_ms: int = 100


class ForwardRequest(Request):
    to: str


class CallInfo(Body):
    id: str
    caller: str
    callee: str
    state: CallState
    media: Media
    anonymous: bool
    display_name: str | None
    created_at: float
    answered_at: float | None
    ended_at: float | None
    end_reason: str | None
    # The caller's offer, given to the callee's devices while the call is unanswered, so a
    # device that resynchronises (GET /v1/calls) can still answer; null otherwise.
    offer_sdp: str | None = None


class CallList(Body):
    calls: list[CallInfo]


# -- anonymous calls ------------------------------------------------------------------------


class TokenCredentials(Request, rename="camel"):
    """The four values of a token-mode anonymous call, named as the SDK names them."""

    realm: str
    account_token: str
    from_token: str
    to_token: str


class AnonymousCallRequest(Request, kw_only=True, rename={"from_": "from"}):
    to: str | None = None
    from_: str | None = None
    sdp: str
    media: Media = msgspec.field(default_factory=Media)
    display_name: str | None = None
    credentials: TokenCredentials | None = None


class AnonymousCallResponse(Body):
    call: CallInfo
    token: str
    subscription_id: str
    channel: str
    ice_servers: list[IceServer]
    ping_interval: float
    resume_window: float


class AnonymousIceRequest(Request, kw_only=True, rename={"from_": "from"}):
    """Who an anonymous caller is about to call, as it will say so in its call (no SDP yet)."""

    to: str | None = None
    from_: str | None = None
    credentials: TokenCredentials | None = None


class AnonymousIceResponse(Body):
    ice_servers: list[IceServer]
    ice_ttl: int


# -- history, health ------------------------------------------------------------------------


class CallRecord(Body):
    id: str
    caller: str
    callee: str
    direction: str
    anonymous: bool
    started_at: float
    answered_at: float | None
    ended_at: float | None
    duration: float | None
    end_reason: str | None


class History(Body):
    records: list[CallRecord]


class Health(Body):
    status: str
    version: str
    uptime: float
