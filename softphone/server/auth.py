"""Bearer-token sessions: login, lookup, expiry, logout, and call-scoped anonymous sessions."""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor

from aiohttp import web

from softphone.protocol.errors import ErrorCode
from softphone.server.errors import ApiError
from softphone.server.passwords import DUMMY_HASH, new_token, token_hash, verify_password
from softphone.server.storage import SharedStore, Storage
from softphone.server.store_rows import Session


def bearer_token(request: web.Request) -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


class Sessions:
    def __init__(self, store: Storage, ttl: float, *, shared: SharedStore | None = None) -> None:
        self._store = store
        self._ttl = ttl
        # With several processes, a session made or revoked by another one must count here at
        # once: every lookup reads the shared store (one primary-key read) instead of a cache.
        self._shared = shared
        self._by_hash: dict[str, Session] = (
            {} if shared else {s.token_hash: s for s in store.sessions(time.time())}
        )
        # scrypt uses 16 MiB per hash; two threads bound both the memory each pooled thread
        # keeps and the CPU a login storm can take from call signaling.
        self._hasher = ThreadPoolExecutor(max_workers=2, thread_name_prefix="password")

    async def login(self, username: str, password: str) -> tuple[str, Session]:
        user = self._store.get_user(username)
        # Verify against a dummy hash for unknown users so timing does not reveal who exists.
        encoded = user.password_hash if user else DUMMY_HASH
        ok = await asyncio.get_running_loop().run_in_executor(
            self._hasher, verify_password, password, encoded
        )
        if user is None or not ok:
            raise ApiError(ErrorCode.BAD_CREDENTIALS, "unknown user or wrong password")
        return self._create(user.name, anonymous=False, call_id=None, ttl=self._ttl)

    def create_anonymous(self, label: str, call_id: str, ttl: float) -> tuple[str, Session]:
        return self._create(label, anonymous=True, call_id=call_id, ttl=ttl)

    def _create(
        self, user: str, *, anonymous: bool, call_id: str | None, ttl: float
    ) -> tuple[str, Session]:
        token = new_token()
        now = time.time()
        session = Session(token_hash(token), user, anonymous, call_id, now, now + ttl)
        self._store.add_session(session)
        if self._shared is None:
            self._by_hash[session.token_hash] = session
        return token, session

    def _session(self, session_hash: str) -> Session | None:
        if self._shared is not None:
            return self._shared.get_session(session_hash)
        return self._by_hash.get(session_hash)

    def lookup(self, token: str) -> Session | None:
        """The live session for a token, or None (unknown, expired, or account removed)."""
        session = self._session(token_hash(token))
        if session is None or session.expires_at <= time.time():
            return None
        return session if self._account_exists(session) else None

    def _account_exists(self, session: Session) -> bool:
        # Shared: the session was just read from the store, and removing an account deletes
        # its sessions in the same transaction, so the row proves the account (one query less).
        if session.anonymous or self._shared is not None:
            return True
        if self._store.get_user(session.user) is not None:
            return True
        # The account was removed (e.g. `softphone user remove`) while this session lived.
        self.revoke(session.token_hash)
        return False

    def get(self, session_hash: str) -> Session | None:
        return self._session(session_hash)

    def is_valid(self, session_hash: str, now: float) -> bool:
        session = self._session(session_hash)
        return session is not None and session.expires_at > now

    def require(self, request: web.Request) -> Session:
        token = bearer_token(request)
        if token is None:
            raise ApiError(
                ErrorCode.UNAUTHORIZED, "missing credentials: send 'Authorization: Bearer <token>'"
            )
        session = self._session(token_hash(token))
        if session is None:
            raise ApiError(ErrorCode.UNAUTHORIZED, "unknown or revoked token; log in again")
        if session.expires_at <= time.time():
            raise ApiError(ErrorCode.SESSION_EXPIRED, "session expired; log in again")
        if not self._account_exists(session):
            raise ApiError(ErrorCode.UNAUTHORIZED, "this account no longer exists")
        return session

    def require_user(self, request: web.Request) -> Session:
        session = self.require(request)
        if session.anonymous:
            raise ApiError(
                ErrorCode.ANONYMOUS_NOT_ALLOWED, "anonymous parties can only act on their own call"
            )
        return session

    def revoke(self, session_hash: str) -> None:
        self._by_hash.pop(session_hash, None)
        self._store.remove_session(session_hash)

    def revoke_user(self, user: str) -> list[str]:
        if self._shared is not None:
            hashes = self._shared.sessions_of(user)
        else:
            hashes = [h for h, s in self._by_hash.items() if s.user == user and not s.anonymous]
        for h in hashes:
            self.revoke(h)
        return hashes

    def close(self) -> None:
        self._hasher.shutdown(wait=False, cancel_futures=True)

    def expired(self, now: float) -> list[str]:
        if self._shared is not None:
            # Their subscriptions are taken by the hub's sweep; the rows just go.
            self._shared.delete_expired_sessions(now)
            return []
        return [h for h, s in self._by_hash.items() if s.expires_at <= now]
