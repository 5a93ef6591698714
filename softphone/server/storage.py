"""The store interface: what the server keeps (accounts, sessions, subscriptions, calls live
and ended, used anonymous tokens), with two implementations.

- `SqliteStore` (store_sqlite.py): one file, the embedded and single-process default.
- `PostgresStore` (store_postgres.py): several server processes sharing one database.

`open_store(config)` (store_open.py) picks one from `[store] url`. Calls are written through on
every change, so a restarted server knows every live call and loses no call record. Methods are
synchronous and called on the event loop, so check-write-notify has no await point inside it
(see docs/architecture.md). A store that cannot be reached raises `StoreUnavailable`, which
requests answer with 503 `service_unavailable`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager
from typing import Protocol

from softphone.server.store_rows import CallRow, Session, SubscriptionRow, User


class Storage(Protocol):
    def close(self) -> None: ...

    def schema_version(self) -> int: ...

    def ping(self) -> bool:
        """Whether the database answers now (for /v1/health)."""
        ...

    # users
    def add_user(self, name: str, password_hash: str, allow_anonymous: bool) -> bool:
        """False if the name is taken."""
        ...

    def get_user(self, name: str) -> User | None: ...

    def list_users(self) -> list[User]: ...

    def update_user(
        self, name: str, *, password_hash: str | None = None, allow_anonymous: bool | None = None
    ) -> bool: ...

    def remove_user(self, name: str) -> bool:
        """Also removes the user's sessions and subscriptions; False if there was no user."""
        ...

    # sessions and subscriptions
    def add_session(self, session: Session) -> None: ...

    def remove_session(self, token_hash: str) -> None:
        """Also removes the session's subscriptions."""
        ...

    def sessions(self, now: float) -> Iterator[Session]:
        """Sessions not expired at `now` (expired ones are deleted)."""
        ...

    def put_subscription(self, sub: SubscriptionRow) -> None: ...

    def remove_subscription(self, sub_id: str) -> None: ...

    def subscriptions(self, now: float) -> list[SubscriptionRow]:
        """Subscriptions not expired at `now`, oldest first (expired ones are deleted)."""
        ...

    # calls
    def put_call(self, call: CallRow) -> None:
        """Insert or replace the call's row."""
        ...

    def live_calls(self) -> list[CallRow]: ...

    def get_call(self, call_id: str) -> CallRow | None: ...

    def history(self, user: str, limit: int, offset: int) -> list[CallRow]:
        """Calls where `user` was a party (not as an anonymous caller's label), newest first."""
        ...

    # replay cache of anonymous token sets
    def token_used(self, key: str) -> bool: ...

    def use_token(self, key: str, expires_at: float, now: float) -> bool:
        """Record a token set as used; False if it was used before (a replay)."""
        ...


class SharedStore(Storage, Protocol):
    """What a store shared by several server processes adds (PostgresStore): transactions with
    row locks for call state, and reads of what other processes wrote, instead of caches."""

    def transaction(self) -> AbstractContextManager[None]: ...

    def lock_call(self, call_id: str) -> CallRow | None: ...

    def live_calls_of(
        self, *, user: str | None = None, session: str | None = None
    ) -> list[CallRow]: ...

    def live_count(self) -> int: ...

    def live_count_of(self, user: str) -> int: ...

    def make_checks(self, caller: str | None, callee: str) -> tuple[bool, int, int]: ...

    def get_session(self, token_hash: str) -> Session | None: ...

    def sessions_of(self, user: str) -> list[str]: ...

    def delete_expired_sessions(self, now: float) -> None: ...

    def get_subscription(self, sub_id: str) -> SubscriptionRow | None: ...

    def subscription_of_session(self, session_hash: str) -> SubscriptionRow | None: ...

    def subscriptions_of(self, user: str) -> list[SubscriptionRow]: ...

    def take_expired_subscriptions(self, now: float) -> list[tuple[SubscriptionRow, bool]]: ...
