"""Anonymous calls: regular mode (from/to in the clear) and token mode (realm + three tokens).

A refused token set is always `invalid_token`; the message says which check failed (expired,
replayed, not for this callee, bad signature, ...) so the caller's user can tell what to fix.
It never says anything about the key: a bad signature, a wrong key and a damaged token read
alike. The log records the cause but never a token.

In regular mode the caller names itself, so it may not take a registered user's name: only a
realm's tokens vouch for such a name.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
import time
from dataclasses import dataclass
from pathlib import Path

from softphone.config import AnonymousSection, RealmSection
from softphone.protocol.errors import ErrorCode
from softphone.protocol.frames import GoneReason
from softphone.protocol.models import (
    AnonymousCallRequest,
    AnonymousIceRequest,
    TokenCredentials,
)
from softphone.server.auth import Sessions
from softphone.server.calls import CallService, new_call_id
from softphone.server.errors import ApiError
from softphone.server.hub import Hub, Subscription
from softphone.server.storage import Storage
from softphone.server.store_rows import CallRow, Session
from softphone.server.tokens import TokenClaims, TokenError, TokenFormat, parse_key, verify_token

log = logging.getLogger("softphone.server.anonymous")

LABEL = re.compile(r"^[\w.+:@-]{1,128}$")
# The TURN credentials of an ICE lookup that names no caller are minted for this label.
UNNAMED_CALLER = "anonymous"
# What names the parties of an anonymous call: the call itself, or the ICE lookup before it.
Parties = AnonymousCallRequest | AnonymousIceRequest
# The call-scoped session outlives no call; this only bounds a call that is never ended.
ANONYMOUS_SESSION_TTL = 12 * 3600


@dataclass(frozen=True, slots=True)
class Realm:
    name: str
    format: TokenFormat
    key: bytes
    accounts: frozenset[str]


def load_realms(sections: list[RealmSection]) -> dict[str, Realm]:
    realms = {}
    for section in sections:
        path = Path(section.key_file).expanduser()
        try:
            material = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ValueError(
                f"realm {section.name!r}: cannot read key file {path}: {exc.strerror}"
            ) from exc
        try:
            key = parse_key(section.format, material)
        except ValueError as exc:
            raise ValueError(f"realm {section.name!r}: key file {path}: {exc}") from exc
        realms[section.name] = Realm(section.name, section.format, key, frozenset(section.accounts))
    return realms


@dataclass(frozen=True, slots=True)
class AnonymousCall:
    token: str
    session: Session
    call: CallRow
    subscription: Subscription


class AnonymousService:
    def __init__(
        self,
        store: Storage,
        sessions: Sessions,
        hub: Hub,
        calls: CallService,
        settings: AnonymousSection,
        realms: dict[str, Realm],
    ) -> None:
        self._store = store
        self._sessions = sessions
        self._hub = hub
        self._calls = calls
        self._settings = settings
        self._realms = realms
        calls.on_ended = self._call_ended

    def make(self, request: AnonymousCallRequest) -> AnonymousCall:
        caller, callee, replay_key = self._admit(request)
        call_id = new_call_id()
        token, session = self._sessions.create_anonymous(caller, call_id, ANONYMOUS_SESSION_TTL)
        subscription = self._hub.subscribe(session, ["call"], ANONYMOUS_SESSION_TTL, False)
        try:
            display = request.display_name if request.credentials is None else None
            call = self._calls.make(
                session,
                callee,
                request.sdp,
                request.media,
                display,
                anonymous=True,
                call_id=call_id,
            )
        except ApiError:
            self._release(session.token_hash)
            raise
        if replay_key is not None:
            # Marked only once the call exists, with no await in between: a set that failed to
            # start a call can be retried, and one that started a call never starts another.
            self._store.use_token(replay_key, time.time() + self._window() * 2, time.time())
        return AnonymousCall(token, session, call, subscription)

    def ice_lookup(self, request: AnonymousIceRequest) -> str:
        """Check who is about to call whom exactly as `make` would, without starting anything
        and without using up a token set; returns the caller's label (whom the TURN credentials
        are minted for)."""
        caller, _, _ = self._admit(request)
        return caller

    def _admit(self, request: Parties) -> tuple[str, str, str | None]:
        """(caller, callee, replay key or None) of an acceptable request, or the refusal."""
        replay_key: str | None = None
        if request.credentials is None:
            caller, callee = self._regular(request)
        else:
            caller, callee, replay_key = self._verify(request.credentials, request)
        account = self._store.get_user(callee)
        # Unknown callee and callee refusing anonymous calls look alike to an anonymous caller.
        if account is None or not account.allow_anonymous:
            raise ApiError(
                ErrorCode.ANONYMOUS_NOT_ALLOWED, f"{callee} does not accept anonymous calls"
            )
        if replay_key is not None and self._store.token_used(replay_key):
            log.info("anonymous token set refused: replayed")
            raise ApiError(ErrorCode.INVALID_TOKEN, _refusal("replayed"))
        return caller, callee, replay_key

    def _regular(self, request: Parties) -> tuple[str, str]:
        # A call must name its caller; an ICE lookup may leave it out.
        if isinstance(request, AnonymousIceRequest) and request.from_ is None:
            caller = UNNAMED_CALLER
        elif not request.from_ or not LABEL.match(request.from_):
            raise ApiError(
                ErrorCode.VALIDATION,
                "'from' is required: 1-128 characters of letters, digits and . + : @ - _",
            )
        else:
            caller = request.from_
            if self._store.get_user(self._calls.normalise(_strip_sip(caller))) is not None:
                raise ApiError(
                    ErrorCode.FORBIDDEN,
                    f"'from' {caller!r} is a registered user's name: a guest cannot call as "
                    "that user (log in, or call with tokens from a realm that vouches for it)",
                )
        if not request.to:
            raise ApiError(ErrorCode.VALIDATION, "'to' is required: the account to call")
        return caller, self._calls.normalise(request.to)

    def _window(self) -> float:
        return self._settings.token_max_age + self._settings.clock_skew

    def _verify(self, creds: TokenCredentials, request: Parties) -> tuple[str, str, str]:
        def refuse(reason: str) -> ApiError:
            log.info("anonymous token set refused: %s (realm %r)", reason, creds.realm[:64])
            return ApiError(ErrorCode.INVALID_TOKEN, _refusal(reason))

        realm = self._realms.get(creds.realm)
        if realm is None:
            raise refuse("unknown realm")
        try:
            account = verify_token(
                realm.format, realm.key, realm.name, "account", creds.account_token
            )
            sender = verify_token(realm.format, realm.key, realm.name, "from", creds.from_token)
            target = verify_token(realm.format, realm.key, realm.name, "to", creds.to_token)
        except TokenError as exc:
            raise refuse(exc.reason) from None
        claims = (account, sender, target)
        now = time.time()
        skew = self._settings.clock_skew
        for claim in claims:
            if claim.issued_at > now + skew:
                raise refuse("issued in the future")
            if now - claim.issued_at > self._settings.token_max_age + skew:
                raise refuse("expired")
            if claim.expires_at is not None and claim.expires_at < now - skew:
                raise refuse("expired")
        if len({_binding(c) for c in claims}) != 1:
            raise refuse("tokens from different sets")
        account_name = self._calls.normalise(account.identity)
        if self._store.get_user(account_name) is None:
            raise refuse("account does not exist")
        if realm.accounts and account_name not in realm.accounts:
            raise refuse("account not served by this realm")
        callee = self._calls.normalise(target.identity)
        if request.to is not None and self._calls.normalise(request.to) != callee:
            raise refuse("toToken does not name the callee")
        caller = _strip_sip(sender.identity)
        if request.from_ is not None and _strip_sip(request.from_) != caller:
            raise refuse("fromToken does not name the caller")
        if not LABEL.match(caller):
            raise refuse("caller identity is not a valid label")
        if sender.binding is not None:
            replay = f"v2:{realm.name}:{sender.binding}"
        else:
            joined = "|".join((creds.account_token, creds.from_token, creds.to_token)).lower()
            replay = "legacy:" + hashlib.sha256(joined.encode()).hexdigest()
        return caller, callee, replay

    def _call_ended(self, call: CallRow) -> None:
        if call.anonymous:
            # Deferred so the ending notification is queued before the channel closes.
            asyncio.get_running_loop().call_soon(self._release, call.caller_session)

    def _release(self, session_hash: str) -> None:
        self._hub.remove_session(session_hash, GoneReason.CALL_ENDED, "call ended")
        self._sessions.revoke(session_hash)


# What the caller is told for each cause the log records; never a word about the key.
_SAID = {
    "expired": "expired (older than the server accepts; get new tokens)",
    "issued in the future": "issued in the future (check the clocks)",
    "replayed": "replayed (this token set was already used for a call)",
    "unknown realm": "unknown realm",
    "toToken does not name the callee": "not for this callee",
    "fromToken does not name the caller": "not for this caller",
    "tokens from different sets": "tokens from different sets",
    "account does not exist": "not for an account here",
    "account not served by this realm": "not for an account here",
    "caller identity is not a valid label": "the caller's name is not a valid label",
}
_MALFORMED = ("empty", "too_long", "too_short", "bad_encoding", "bad_version")


def _refusal(reason: str) -> str:
    """The refusal's message: the stable prefix, then which check failed."""
    if reason in _SAID:
        said = _SAID[reason]
    elif reason in _MALFORMED:
        said = "malformed token"
    else:  # bad_mac, bad_tag, wrong_key, bad_padding, ...: all one to the caller
        said = "bad signature"
    return f"invalid or expired credentials: {said}"


def _binding(claims: TokenClaims) -> str:
    return claims.binding if claims.binding is not None else f"ts:{claims.issued_at}"


def _strip_sip(identity: str) -> str:
    return identity[4:] if identity.lower().startswith("sip:") else identity
