"""Call control: make, list, read and act on calls."""

from __future__ import annotations

from aiohttp import web

from softphone.protocol.errors import ErrorCode as E
from softphone.protocol.frames import CallCandidate
from softphone.protocol.models import (
    CallInfo,
    CallList,
    CandidateRequest,
    DtmfRequest,
    ForwardRequest,
    MakeCallRequest,
    SdpRequest,
)
from softphone.server.api import endpoint
from softphone.server.calls import call_info
from softphone.server.errors import ApiError
from softphone.server.http import decode, json_response
from softphone.server.services import SERVICES
from softphone.server.store import Session

AUTH = (E.UNAUTHORIZED, E.SESSION_EXPIRED)
ACTION = (*AUTH, E.NOT_FOUND, E.NOT_IN_CALL, E.FORBIDDEN, E.WRONG_STATE)
BODY = (E.INVALID_JSON, E.VALIDATION, E.PAYLOAD_TOO_LARGE)


def _subscribed(request: web.Request) -> Session:
    services = request.app[SERVICES]
    session = services.sessions.require_user(request)
    if not services.hub.is_subscribed(session.token_hash):
        raise ApiError(E.NOT_SUBSCRIBED, "subscribe to 'call' before making calls")
    return session


@endpoint(
    "POST",
    "/v1/calls",
    "Make a call: send the offer; the callee's devices ring",
    request=MakeCallRequest,
    response=CallInfo,
    status=201,
    errors=(
        *AUTH,
        *BODY,
        E.ANONYMOUS_NOT_ALLOWED,
        E.NOT_SUBSCRIBED,
        E.UNKNOWN_USER,
        E.USER_BUSY,
        E.USER_UNAVAILABLE,
        E.TOO_MANY_CALLS,
    ),
)
async def make_call(request: web.Request) -> web.Response:
    services = request.app[SERVICES]
    session = _subscribed(request)
    body = await decode(request, MakeCallRequest)
    call = services.calls.make(session, body.to, body.sdp, body.media, body.display_name)
    return json_response(call_info(call), 201)


@endpoint(
    "GET",
    "/v1/calls",
    "Live calls of this user (for resynchronisation)",
    response=CallList,
    auth="any",
    errors=AUTH,
)
async def list_calls(request: web.Request) -> web.Response:
    services = request.app[SERVICES]
    session = services.sessions.require(request)
    calls = services.calls.live_calls(session)
    return json_response(CallList(calls=[call_info(c, session) for c in calls]))


@endpoint(
    "GET",
    "/v1/calls/{call_id}",
    "One call",
    response=CallInfo,
    auth="any",
    errors=(*AUTH, E.NOT_FOUND, E.NOT_IN_CALL),
)
async def get_call(request: web.Request) -> web.Response:
    services = request.app[SERVICES]
    session = services.sessions.require(request)
    call = services.calls.get(session, request.match_info["call_id"])
    return json_response(call_info(call, session))


def _action(name: str, summary: str, body: type | None = None, extra: tuple[E, ...] = ()) -> None:
    async def handler(request: web.Request) -> web.Response:
        services = request.app[SERVICES]
        session = services.sessions.require(request)
        call_id = request.match_info["call_id"]
        calls = services.calls
        if name == "ringing":
            call = calls.ringing(session, call_id)
        elif name == "answer":
            call = calls.answer(session, call_id, (await decode(request, SdpRequest)).sdp)
        elif name == "reject":
            call = calls.reject(session, call_id)
        elif name == "end":
            call = calls.end(session, call_id)
        elif name == "update":
            call = calls.update(session, call_id, (await decode(request, SdpRequest)).sdp)
        elif name == "update-answer":
            call = calls.update_answer(session, call_id, (await decode(request, SdpRequest)).sdp)
        elif name == "candidates":
            body = await decode(request, CandidateRequest)
            frame = CallCandidate(
                call_id=call_id,
                candidate=body.candidate,
                sdp_mid=body.sdp_mid,
                sdp_mline_index=body.sdp_mline_index,
                ufrag=body.ufrag,
            )
            call = calls.candidate(session, call_id, frame)
        elif name == "dtmf":
            dtmf = await decode(request, DtmfRequest)
            call = calls.dtmf(session, call_id, dtmf.digits, dtmf.duration_ms)
        else:
            call = calls.forward(session, call_id, (await decode(request, ForwardRequest)).to)
        return json_response(call_info(call))

    handler.__name__ = f"call_{name.replace('-', '_')}"
    endpoint(
        "POST",
        f"/v1/calls/{{call_id}}/{name}",
        summary,
        request=body,
        response=CallInfo,
        auth="any",
        errors=(*ACTION, *(BODY if body else ()), *extra),
    )(handler)


_action("ringing", "Callee: tell the caller this device is alerting")
_action(
    "answer", "Callee: answer with the answer SDP; other devices see the call cancelled", SdpRequest
)
_action("reject", "Callee: decline; the caller sees rejected, other devices cancelled")
_action("end", "Either party: hang up (caller before answer: cancel; callee before answer: reject)")
_action(
    "update",
    "Either party: send a re-offer (hold, unhold, video, media restart)",
    SdpRequest,
    (E.GLARE,),
)
_action("update-answer", "The other party: answer the pending re-offer", SdpRequest)
_action("dtmf", "Either party: relay DTMF digits to the other party", DtmfRequest)
_action(
    "candidates",
    "Either party: relay one trickled ICE candidate (null: end of candidates) to the other "
    "party (protocol v1 extension; the callee after its answer)",
    CandidateRequest,
)
_action(
    "forward",
    "Callee: redirect an unanswered call to another user",
    ForwardRequest,
    (E.UNKNOWN_USER, E.USER_UNAVAILABLE, E.ANONYMOUS_NOT_ALLOWED),
)
