"""Websocket frames of the notification channel, tagged by their `type` field.

Server frames all carry `seq`. Notifications take the next number and are kept for resume;
control frames (welcome, pong, ping, error, resume_failed) repeat the current number and are
never replayed.
"""

from __future__ import annotations

import enum

import msgspec

from softphone.protocol.models import CallInfo


class GoneReason(enum.StrEnum):
    """Why the server ended a subscription (`subscription.gone`): what a client acts on."""

    EXPIRED = "expired"  # the subscription or its login session expired: log in again
    LOGGED_OUT = "logged_out"
    UNSUBSCRIBED = "unsubscribed"
    REPLACED = "replaced"  # a newer device of the same user took its place (force_logout)
    CALL_ENDED = "call_ended"  # an anonymous call's channel: the call is over


class EndReason(enum.StrEnum):
    """How a call ended (`call.ended`, `call.cancelled`, call records)."""

    HANGUP = "hangup"
    REJECTED = "rejected"
    CANCELLED = "cancelled"
    NO_ANSWER = "no_answer"
    CONNECTION_LOST = "connection_lost"
    ANSWERED_ELSEWHERE = "answered_elsewhere"
    REJECTED_ELSEWHERE = "rejected_elsewhere"
    FORWARDED = "forwarded"


class ClientFrame(msgspec.Struct, tag_field="type", forbid_unknown_fields=True, kw_only=True):
    """Base for frames a client sends."""


class Hello(ClientFrame, tag="hello"):
    subscription_id: str
    token: str | None = None
    last_seq: int | None = None


class ClientPing(ClientFrame, tag="ping"):
    id: str | None = None


class ClientPong(ClientFrame, tag="pong"):
    id: str | None = None


ClientFrames = Hello | ClientPing | ClientPong


class ServerFrame(msgspec.Struct, tag_field="type", kw_only=True):
    seq: int = 0


class Welcome(ServerFrame, tag="welcome"):
    subscription_id: str
    resumed: bool
    ping_interval: float


class ResumeFailed(ServerFrame, tag="resume_failed"):
    reason: str


class ServerPing(ServerFrame, tag="ping"):
    id: str | None = None


class ServerPong(ServerFrame, tag="pong"):
    id: str | None = None


class ErrorFrame(ServerFrame, tag="error"):
    code: str
    message: str


class SubscriptionGone(ServerFrame, tag="subscription.gone"):
    reason: GoneReason
    message: str = ""  # the same, for a person


class CallIncoming(ServerFrame, tag="call.incoming"):
    call: CallInfo
    sdp: str


class CallRinging(ServerFrame, tag="call.ringing"):
    call_id: str


class CallAnswered(ServerFrame, tag="call.answered"):
    call_id: str
    sdp: str


class CallRejected(ServerFrame, tag="call.rejected"):
    call_id: str


class CallCancelled(ServerFrame, tag="call.cancelled"):
    call_id: str
    reason: EndReason


class CallEnded(ServerFrame, tag="call.ended"):
    call_id: str
    reason: EndReason


class CallUpdate(ServerFrame, tag="call.update"):
    call_id: str
    sdp: str


class CallUpdateAnswer(ServerFrame, tag="call.update_answer"):
    call_id: str
    sdp: str


class CallDtmf(ServerFrame, tag="call.dtmf"):
    call_id: str
    digits: str
    duration_ms: int


class CallCandidate(ServerFrame, tag="call.candidate"):
    """The other party's trickled ICE candidate (protocol v1 extension, §3.3 `candidates`);
    `candidate` null: the end of its candidates. A client that does not trickle may ignore
    it (the SDP it receives may then lack the candidates: connectivity checks still reach it)."""

    call_id: str
    candidate: str | None = None
    sdp_mid: str | None = None
    sdp_mline_index: int | None = None
    ufrag: str | None = None


Notification = (
    SubscriptionGone
    | CallIncoming
    | CallRinging
    | CallAnswered
    | CallRejected
    | CallCancelled
    | CallEnded
    | CallUpdate
    | CallUpdateAnswer
    | CallDtmf
    | CallCandidate
)

ServerFrames = Welcome | ResumeFailed | ServerPing | ServerPong | ErrorFrame | Notification

END_REASONS = tuple(EndReason)
