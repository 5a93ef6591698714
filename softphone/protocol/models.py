"""REST request and response bodies for protocol v1.

Requests forbid unknown fields so a typo is an error rather than a silently ignored key.
"""

from __future__ import annotations

import enum
from typing import Annotated, Literal

import msgspec


class ServerCallState(enum.StrEnum):
    """Server-side call states (a subset of the SDK's; the client derives the rest)."""

    INITIATED = "Initiated"
    RINGING = "Ringing"
    CONNECTED = "Connected"
    ENDED = "Ended"


LIVE_STATES = frozenset(
    {ServerCallState.INITIATED, ServerCallState.RINGING, ServerCallState.CONNECTED}
)

# The rules the server checks on request fields, stated once: msgspec enforces them when a body
# is decoded and writes them into the OpenAPI document. Patterns are searched (JSON Schema's
# rule); `(?!\n)$` ends a pattern in both Python (whose `$` also matches before a final
# newline) and ECMAScript.
MAX_SDP = 60_000
Sdp = Annotated[
    str,
    msgspec.Meta(
        pattern="^v=0",
        max_length=MAX_SDP,
        description="an SDP document: starts with 'v=0'",
    ),
]
# After optional spaces and an optional 'sip:' scheme, a user name (or user@domain) starts.
Address = Annotated[
    str,
    msgspec.Meta(
        pattern=r"^\s*(?![sS][iI][pP]:(?:[\s@]|$))(?:[sS][iI][pP]:)?[^\s@]",
        description="a user: 'alice', 'alice@domain' or 'sip:alice@domain'",
    ),
]
Label = Annotated[
    str,
    msgspec.Meta(
        pattern=r"^[\w.+:@-]{1,128}(?!\n)$",
        description="1-128 letters, digits and . + : @ - _",
    ),
]
DtmfDigits = Annotated[
    str,
    msgspec.Meta(
        pattern=r"^[0-9*#A-Da-d,]{1,64}(?!\n)$",
        description="1-64 of 0-9 * # A-D and ',' (a pause)",
    ),
]
DtmfDuration = Annotated[int, msgspec.Meta(ge=40, le=2000)]
IceCandidateLine = Annotated[
    str,
    msgspec.Meta(
        pattern=r"^(a=)?candidate:\S",
        max_length=1024,
        description="one ICE candidate as in SDP: 'candidate:...' (an 'a=' prefix is accepted)",
    ),
]
Mid = Annotated[str, msgspec.Meta(max_length=32)]
Service = Literal["call"]
Services = Annotated[list[Service], msgspec.Meta(min_length=1)]
# The upper bound is the server's `subscription_max_expires`; the OpenAPI document adds it.
Expires = Annotated[int, msgspec.Meta(ge=60)]


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
    services: Services = msgspec.field(default_factory=lambda: ["call"])
    force_logout: bool = False
    expires: Expires = 3600


class SubscriptionRefresh(Request):
    expires: Expires = 3600


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
    to: Address
    sdp: Sdp
    media: Media = msgspec.field(default_factory=Media)
    display_name: str | None = None


class SdpRequest(Request):
    sdp: Sdp


class DtmfRequest(Request):
    digits: DtmfDigits
    duration_ms: DtmfDuration = 100


class CandidateRequest(Request):
    """One trickled ICE candidate (`candidate` null: the end of this party's candidates)."""

    candidate: IceCandidateLine | None = None
    sdp_mid: Mid | None = None
    sdp_mline_index: Annotated[int, msgspec.Meta(ge=0, le=63)] | None = None
    ufrag: Annotated[str, msgspec.Meta(max_length=256)] | None = None


class ForwardRequest(Request):
    to: Address


class CallInfo(Body):
    id: str
    caller: str
    callee: str
    state: ServerCallState
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
    """Regular mode: `to` and `from`; token mode: `credentials` (then `to` and `from`, if given,
    must match the tokens)."""

    to: Address | None = None
    from_: Label | None = None
    sdp: Sdp
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

    to: Address | None = None
    from_: Label | None = None
    credentials: TokenCredentials | None = None


class AnonymousIceResponse(Body):
    ice_servers: list[IceServer]
    ice_ttl: int


# -- history, health ------------------------------------------------------------------------


class HistoryEntry(Body):
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
    records: list[HistoryEntry]


class Health(Body):
    status: str  # "ok", or "unavailable" (503) when the store or the bus cannot be reached
    version: str
    uptime: float
    store: str = "ok"  # "ok" or "unreachable"
    bus: str = "none"  # "none" (in-process hub), "ok" or "unreachable"
