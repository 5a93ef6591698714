"""Call control with the server as the authority on state.

Every action is checked against who asks (caller device, callee user or answering device,
anonymous party) and the call's state, before anything changes. Each change is written to the
store first, then notified, so a restart never loses a call and a notification never announces
a change that was not kept.
"""

from __future__ import annotations

import functools
import re
import secrets
import time
from collections.abc import Callable
from enum import Enum
from typing import ParamSpec, TypeVar

from softphone.protocol.errors import ErrorCode
from softphone.protocol.frames import (
    CallAnswered,
    CallCancelled,
    CallCandidate,
    CallDtmf,
    CallEnded,
    CallIncoming,
    CallRejected,
    CallRinging,
    CallUpdate,
    CallUpdateAnswer,
    EndReason,
)
from softphone.protocol.models import CallInfo, HistoryEntry, Media, ServerCallState
from softphone.server.call_table import CallTable, LocalCalls, LocalTimers, RingTimers
from softphone.server.errors import ApiError
from softphone.server.hub import Hub
from softphone.server.storage import Storage
from softphone.server.store_rows import CallRow, Session

P = ParamSpec("P")
R = TypeVar("R")
DTMF_DIGITS = re.compile(r"[0-9*#A-Da-d,]{1,64}")
MAX_SDP = 60_000


class Role(Enum):
    CALLER = "caller"
    CALLEE = "callee"


LIVE = {
    ServerCallState.INITIATED.value,
    ServerCallState.RINGING.value,
    ServerCallState.CONNECTED.value,
}
UNANSWERED = {ServerCallState.INITIATED.value, ServerCallState.RINGING.value}


def new_call_id() -> str:
    return secrets.token_urlsafe(12)


def call_info(call: CallRow, viewer: Session | None = None) -> CallInfo:
    """The call as `viewer` may see it: the offer only for the callee while it rings."""
    offer = None
    if (
        viewer is not None
        and not viewer.anonymous
        and viewer.user == call.callee
        and call.state in UNANSWERED
    ):
        offer = call.offer_sdp
    return CallInfo(
        id=call.id,
        caller=call.caller,
        callee=call.callee,
        state=ServerCallState(call.state),
        media=Media(audio=call.audio, video=call.video),
        anonymous=call.anonymous,
        display_name=call.display_name,
        created_at=call.created_at,
        answered_at=call.answered_at,
        ended_at=call.ended_at,
        end_reason=call.end_reason,
        offer_sdp=offer,
    )


def call_record(call: CallRow, user: str) -> HistoryEntry:
    duration = None
    if call.answered_at is not None and call.ended_at is not None:
        duration = round(call.ended_at - call.answered_at, 3)
    return HistoryEntry(
        id=call.id,
        caller=call.caller,
        callee=call.callee,
        direction="outgoing" if call.caller == user else "incoming",
        anonymous=call.anonymous,
        started_at=call.created_at,
        answered_at=call.answered_at,
        ended_at=call.ended_at,
        duration=duration,
        end_reason=call.end_reason,
    )


def check_sdp(sdp: str) -> None:
    if not sdp.startswith("v=0") or len(sdp) > MAX_SDP:
        raise ApiError(
            ErrorCode.VALIDATION,
            f"sdp must be an SDP document starting with 'v=0' (at most {MAX_SDP} characters)",
        )


def _atomic(action: Callable[P, R]) -> Callable[P, R]:
    """Run a CallService action inside its call table's `atomic()` (shared: one transaction
    that row-locks the call; in-process: nothing, the loop already serialises actions)."""

    @functools.wraps(action)
    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        service = args[0]
        assert isinstance(service, CallService)
        with service._table.atomic():
            return action(*args, **kwargs)

    return run


class CallService:
    def __init__(
        self,
        store: Storage,
        hub: Hub,
        *,
        domain: str,
        ring_timeout: float,
        max_live_calls: int,
        table: CallTable | None = None,
        timers: RingTimers | None = None,
    ) -> None:
        self._store = store
        self._hub = hub
        self._domain = domain
        self._ring_timeout = ring_timeout
        self._max_live = max_live_calls
        self._table: CallTable = table or LocalCalls(store)
        self._timers: RingTimers = timers or LocalTimers()
        self.setups = 0
        self.started = 0
        self.on_ended: Callable[[CallRow], None] = lambda call: None
        hub.on_device_gone = self.device_gone

    def start(self) -> None:
        """Start the ring timers; in-process, re-arm those of calls that were ringing when the
        server stopped (shared timers live on in Redis)."""
        self._timers.start(self._ring_timeout_fired)
        if isinstance(self._table, LocalCalls):
            now = time.time()
            for call in self._table.all_live():
                if call.state in UNANSWERED:
                    self._arm(call, max(0.0, call.created_at + self._ring_timeout - now))

    async def stop(self) -> None:
        await self._timers.stop()

    @property
    def live_count(self) -> int:
        return self._table.count

    def normalise(self, address: str) -> str:
        """`sip:alice@domain`, `alice@domain` and `alice` all name the local user alice."""
        name = address.strip()
        if name.lower().startswith("sip:"):
            name = name[4:]
        user, at, domain = name.partition("@")
        if at and domain.lower() == self._domain.lower():
            name = user
        return name

    # -- lookups and checks ------------------------------------------------------------------

    def _find(self, session: Session, call_id: str) -> CallRow:
        call = self._table.find(call_id)
        if call is None:
            raise ApiError(ErrorCode.NOT_FOUND, f"no call with id {call_id!r}")
        if session.anonymous and session.call_id != call.id:
            raise ApiError(ErrorCode.NOT_IN_CALL, "this token belongs to another call")
        # An anonymous caller's "from" is only a label: it never makes a user a party.
        parties = (call.callee,) if call.anonymous else (call.caller, call.callee)
        if not session.anonymous and session.user not in parties:
            raise ApiError(ErrorCode.NOT_IN_CALL, "you are not a party to this call")
        return call

    def _role(self, session: Session, call: CallRow) -> Role:
        """The party this device plays in the call, or NOT_IN_CALL."""
        if session.token_hash == call.caller_session:
            return Role.CALLER
        if (
            not session.anonymous
            and session.user == call.callee
            and (call.callee_session is None or call.callee_session == session.token_hash)
        ):
            return Role.CALLEE
        raise ApiError(ErrorCode.NOT_IN_CALL, "this device is not a party to this call")

    @staticmethod
    def _require_state(call: CallRow, allowed: set[str], action: str) -> None:
        if call.state not in allowed:
            raise ApiError(ErrorCode.WRONG_STATE, f"cannot {action} a call in state {call.state!r}")

    def _require_role(self, session: Session, call: CallRow, role: Role, action: str) -> None:
        if self._role(session, call) is not role:
            raise ApiError(ErrorCode.FORBIDDEN, f"only the {role.value} can {action} this call")

    # -- actions -----------------------------------------------------------------------------

    @_atomic
    def make(
        self,
        session: Session,
        to: str,
        sdp: str,
        media: Media,
        display_name: str | None,
        *,
        anonymous: bool = False,
        call_id: str | None = None,
    ) -> CallRow:
        check_sdp(sdp)
        callee = self.normalise(to)
        if not callee:
            raise ApiError(ErrorCode.VALIDATION, "'to' must name a user")
        known, caller_live, callee_live = self._table.new_call_checks(
            None if anonymous else session.user, callee
        )
        if not known:
            raise ApiError(ErrorCode.UNKNOWN_USER, f"no user named {callee!r}")
        if not anonymous and caller_live >= self._max_live:
            raise ApiError(
                ErrorCode.TOO_MANY_CALLS,
                f"at most {self._max_live} live calls per account",
                retry_after=5,
            )
        if callee_live >= self._max_live:
            raise ApiError(ErrorCode.USER_BUSY, f"{callee} has too many calls in progress")
        if not self._hub.user_online(callee, exclude=session.token_hash):
            raise ApiError(ErrorCode.USER_UNAVAILABLE, f"{callee} is not connected")
        call = CallRow(
            id=call_id or new_call_id(),
            caller=session.user,
            callee=callee,
            caller_session=session.token_hash,
            callee_session=None,
            state=ServerCallState.INITIATED.value,
            audio=media.audio,
            video=media.video,
            anonymous=anonymous,
            display_name=display_name,
            offer_sdp=sdp,
        )
        self._save(call)
        self.started += 1
        self._hub.to_user(
            callee, CallIncoming(call=call_info(call), sdp=sdp), exclude=session.token_hash
        )
        self._arm(call, self._ring_timeout)
        return call

    @_atomic
    def ringing(self, session: Session, call_id: str) -> CallRow:
        call = self._find(session, call_id)
        self._require_role(session, call, Role.CALLEE, "send ringing for")
        self._require_state(call, UNANSWERED, "ring")
        if call.state == ServerCallState.INITIATED.value:
            call.state = ServerCallState.RINGING.value
            self._save(call)
            self._hub.to_session(call.caller_session, CallRinging(call_id=call.id))
        return call

    @_atomic
    def answer(self, session: Session, call_id: str, sdp: str) -> CallRow:
        check_sdp(sdp)
        call = self._find(session, call_id)
        self._require_role(session, call, Role.CALLEE, "answer")
        self._require_state(call, UNANSWERED, "answer")
        self._disarm(call.id)
        call.state = ServerCallState.CONNECTED.value
        call.callee_session = session.token_hash
        call.answered_at = time.time()
        self._save(call)
        self.setups += 1
        self._hub.to_session(call.caller_session, CallAnswered(call_id=call.id, sdp=sdp))
        self._hub.to_user(
            call.callee,
            CallCancelled(call_id=call.id, reason=EndReason.ANSWERED_ELSEWHERE),
            exclude=session.token_hash,
        )
        return call

    @_atomic
    def reject(self, session: Session, call_id: str) -> CallRow:
        call = self._find(session, call_id)
        self._require_role(session, call, Role.CALLEE, "reject")
        self._require_state(call, UNANSWERED, "reject")
        self._finish(call, EndReason.REJECTED)
        self._hub.to_session(call.caller_session, CallRejected(call_id=call.id))
        self._hub.to_user(
            call.callee,
            CallCancelled(call_id=call.id, reason=EndReason.REJECTED_ELSEWHERE),
            exclude=session.token_hash,
        )
        return call

    @_atomic
    def end(self, session: Session, call_id: str) -> CallRow:
        call = self._find(session, call_id)
        role = self._role(session, call)
        self._require_state(call, LIVE, "end")
        if role is Role.CALLEE and call.state in UNANSWERED:
            return self.reject(session, call_id)
        if call.state in UNANSWERED:
            self._finish(call, EndReason.CANCELLED)
            self._hub.to_user(
                call.callee, CallCancelled(call_id=call.id, reason=EndReason.CANCELLED)
            )
        else:
            self._finish(call, EndReason.HANGUP)
            self._hub.to_session(
                self._other_session(call, role), CallEnded(call_id=call.id, reason=EndReason.HANGUP)
            )
        return call

    @_atomic
    def update(self, session: Session, call_id: str, sdp: str) -> CallRow:
        check_sdp(sdp)
        call = self._find(session, call_id)
        role = self._role(session, call)
        self._require_state(call, {ServerCallState.CONNECTED.value}, "update")
        if call.pending_update is not None:
            raise ApiError(
                ErrorCode.GLARE,
                "a re-offer is already in progress on this call; answer it or retry later",
                retry_after=1,
            )
        call.pending_update = role.value
        self._save(call)
        self._hub.to_session(self._other_session(call, role), CallUpdate(call_id=call.id, sdp=sdp))
        return call

    @_atomic
    def update_answer(self, session: Session, call_id: str, sdp: str) -> CallRow:
        check_sdp(sdp)
        call = self._find(session, call_id)
        role = self._role(session, call)
        self._require_state(call, {ServerCallState.CONNECTED.value}, "answer a re-offer on")
        if call.pending_update is None or call.pending_update == role.value:
            raise ApiError(ErrorCode.WRONG_STATE, "no re-offer from the other party is pending")
        call.pending_update = None
        self._save(call)
        self._hub.to_session(
            self._other_session(call, role), CallUpdateAnswer(call_id=call.id, sdp=sdp)
        )
        return call

    @_atomic
    def dtmf(self, session: Session, call_id: str, digits: str, duration_ms: int) -> CallRow:
        if not DTMF_DIGITS.fullmatch(digits):
            raise ApiError(
                ErrorCode.VALIDATION, "digits must be 1-64 of 0-9 * # A-D and ',' (pause)"
            )
        if not 40 <= duration_ms <= 2000:
            raise ApiError(ErrorCode.VALIDATION, "duration_ms must be between 40 and 2000")
        call = self._find(session, call_id)
        role = self._role(session, call)
        self._require_state(call, {ServerCallState.CONNECTED.value}, "send DTMF on")
        self._hub.to_session(
            self._other_session(call, role),
            CallDtmf(call_id=call.id, digits=digits, duration_ms=duration_ms),
        )
        return call

    @_atomic
    def candidate(self, session: Session, call_id: str, frame: CallCandidate) -> CallRow:
        """Relay a trickled ICE candidate (protocol v1 extension) to the other party: the
        caller's go to the callee's devices before the answer (any may answer) and to the
        answering device after; the callee's go to the caller once it has answered."""
        call = self._find(session, call_id)
        role = self._role(session, call)
        self._require_state(call, LIVE, "send candidates on")
        frame.call_id = call.id
        if role is Role.CALLEE and call.state in UNANSWERED:
            raise ApiError(ErrorCode.WRONG_STATE, "answer the call before sending candidates")
        if call.state in UNANSWERED:
            self._hub.to_user(call.callee, frame, exclude=session.token_hash)
        else:
            self._hub.to_session(self._other_session(call, role), frame)
        return call

    @_atomic
    def forward(self, session: Session, call_id: str, to: str) -> CallRow:
        if session.anonymous:
            raise ApiError(ErrorCode.ANONYMOUS_NOT_ALLOWED, "anonymous parties cannot forward")
        call = self._find(session, call_id)
        self._require_role(session, call, Role.CALLEE, "forward")
        self._require_state(call, UNANSWERED, "forward")
        target = self.normalise(to)
        if not target:
            raise ApiError(ErrorCode.VALIDATION, "'to' must name a user")
        if self._store.get_user(target) is None:
            raise ApiError(ErrorCode.UNKNOWN_USER, f"no user named {target!r}")
        if target in (call.callee, call.caller):
            raise ApiError(ErrorCode.VALIDATION, "forward to someone other than the parties")
        if call.anonymous and not self._allows_anonymous(target):
            raise ApiError(
                ErrorCode.ANONYMOUS_NOT_ALLOWED, f"{target} does not accept anonymous calls"
            )
        if self._live_for(target) >= self._max_live:
            raise ApiError(ErrorCode.USER_BUSY, f"{target} has too many calls in progress")
        if not self._hub.user_online(target):
            raise ApiError(ErrorCode.USER_UNAVAILABLE, f"{target} is not connected")
        self._disarm(call.id)
        previous = call.callee
        call.callee = target
        call.state = ServerCallState.INITIATED.value
        self._save(call)
        self._hub.to_user(previous, CallCancelled(call_id=call.id, reason=EndReason.FORWARDED))
        self._hub.to_user(target, CallIncoming(call=call_info(call), sdp=call.offer_sdp))
        self._arm(call, self._ring_timeout)
        return call

    def get(self, session: Session, call_id: str) -> CallRow:
        return self._find(session, call_id)

    def live_calls(self, session: Session) -> list[CallRow]:
        if session.anonymous:
            call = self._table.live(session.call_id or "")
            return [call] if call else []
        return self._table.visible_to(session.user)

    def history(self, user: str, limit: int, offset: int) -> list[CallRow]:
        return self._store.history(user, limit, offset)

    # -- endings from outside a request ------------------------------------------------------

    @_atomic
    def device_gone(self, session_hash: str, reason: EndReason) -> None:
        """A device is unreachable (`connection_lost`) or left (`hangup`): end its calls.

        Unanswered calls it was only ringing on are left to its user's other devices and the
        ring timeout.
        """
        for call in self._table.of_session(session_hash):
            if call.caller_session == session_hash:
                self._end_for_departure(call, Role.CALLER, reason)
            elif call.callee_session == session_hash:
                self._end_for_departure(call, Role.CALLEE, reason)

    def _end_for_departure(self, call: CallRow, gone: Role, reason: EndReason) -> None:
        if call.answered_at is None:
            reason = EndReason.CANCELLED if reason == EndReason.HANGUP else reason
            self._finish(call, reason)
            self._hub.to_user(call.callee, CallCancelled(call_id=call.id, reason=reason))
        else:
            self._finish(call, reason)
            self._hub.to_session(
                self._other_session(call, gone), CallEnded(call_id=call.id, reason=reason)
            )

    @_atomic
    def _ring_timeout_fired(self, call_id: str) -> None:
        call = self._table.live(call_id)
        if call is None or call.state not in UNANSWERED:
            return
        self._finish(call, EndReason.NO_ANSWER)
        self._hub.to_session(
            call.caller_session, CallEnded(call_id=call.id, reason=EndReason.NO_ANSWER)
        )
        self._hub.to_user(call.callee, CallCancelled(call_id=call.id, reason=EndReason.NO_ANSWER))

    # -- helpers -----------------------------------------------------------------------------

    def _allows_anonymous(self, user: str) -> bool:
        account = self._store.get_user(user)
        return account is not None and account.allow_anonymous

    def _live_for(self, user: str) -> int:
        # An anonymous caller's label is not an account: it never counts against one.
        return self._table.count_for(user)

    @staticmethod
    def _other_session(call: CallRow, role: Role) -> str:
        if role is Role.CALLER:
            assert call.callee_session is not None  # only asked once the call is answered
            return call.callee_session
        return call.caller_session

    def _finish(self, call: CallRow, reason: EndReason) -> None:
        self._disarm(call.id)
        call.state = ServerCallState.ENDED.value
        call.ended_at = time.time()
        call.end_reason = reason
        call.pending_update = None
        self._save(call)
        self.on_ended(call)

    def _save(self, call: CallRow) -> None:
        self._table.save(call)

    def _arm(self, call: CallRow, delay: float) -> None:
        self._timers.arm(call.id, delay)

    def _disarm(self, call_id: str) -> None:
        self._timers.disarm(call_id)
