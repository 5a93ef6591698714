"""The PostgreSQL store, for several server processes sharing one database (psycopg 3).

Why psycopg 3 and its synchronous connection rather than asyncpg: the store interface is
synchronous on purpose (check-write-notify without an await point, see store.py), so the
driver must offer a blocking API; asyncpg has none. A loopback round trip to PostgreSQL costs a
few hundred microseconds of loop time, measured by benchmarks/signaling.py; psycopg's binary
wheel needs no compiler or libpq package. Statements autocommit; several rows that change
together share a transaction.

Faults: any connection error closes the connection and raises `StoreUnavailable` (the request
gets 503); the next use reconnects, at most once per RECONNECT_INTERVAL, so a database that is
back is used again by itself. A statement is never retried blindly: it may have been applied.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import psycopg
from psycopg.rows import dict_row

from softphone.server.migrations import migrate_postgres
from softphone.server.store_rows import (
    CALL_COLUMNS,
    CALL_FIELDS,
    CallRow,
    Session,
    StoreUnavailable,
    SubscriptionRow,
    User,
    call_values,
)

log = logging.getLogger("softphone.server.store")

RECONNECT_INTERVAL = 0.5
Row = dict[str, Any]

_CALL_UPDATE = ", ".join(f"{c} = EXCLUDED.{c}" for c in CALL_FIELDS if c != "id")
_LOCKED_CALL = ", ".join(f"c.{c}" for c in CALL_FIELDS)


def _user(row: Row) -> User:
    return User(row["name"], row["password_hash"], row["allow_anonymous"], row["created_at"])


def _call(row: Row) -> CallRow:
    return CallRow(**row)


def _subscription(r: Row) -> SubscriptionRow:
    return SubscriptionRow(
        r["id"],
        r["session_hash"],
        r["user"],
        json.loads(r["services"]),
        r["created_at"],
        r["expires_at"],
    )


class PostgresStore:
    """`Store` on PostgreSQL. `conninfo` is a libpq URL or key=value string without a password;
    the password, if any, comes separately (from a file), so it is never in a URL or a log."""

    def __init__(
        self,
        conninfo: str,
        *,
        password: str | None = None,
        connect_timeout: float = 5.0,
        statement_timeout: float = 5.0,
        migrate: bool = True,
    ) -> None:
        self._conninfo = conninfo
        self._password = password
        self._connect_timeout = connect_timeout
        self._statement_timeout = statement_timeout
        self._db: psycopg.Connection[Row] | None = None
        self._next_attempt = 0.0
        # Inside a transaction (one call action): the subscriptions it has read, so the
        # action reads each at most once (see transaction()); None outside one.
        self._memo: dict[tuple[str, str], Any] | None = None
        try:  # at start, an unreachable database is an error at once
            self._db = self._connect()
        except psycopg.Error as exc:
            raise StoreUnavailable(f"cannot connect to the database {conninfo}: {exc}") from exc
        if migrate:
            migrate_postgres(self._db)

    def _connect(self) -> psycopg.Connection[Row]:
        extra: dict[str, Any] = {}
        if self._password is not None:
            extra["password"] = self._password
        return psycopg.connect(
            self._conninfo,
            autocommit=True,
            row_factory=dict_row,
            connect_timeout=max(1, round(self._connect_timeout)),
            # A stuck statement must not hold the event loop for long.
            options=f"-c statement_timeout={int(self._statement_timeout * 1000)}",
            application_name="softphone",
            **extra,
        )

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    def _conn(self) -> psycopg.Connection[Row]:
        if self._db is not None and not self._db.closed:
            return self._db
        now = time.monotonic()
        if now < self._next_attempt:
            raise StoreUnavailable("the database is unreachable; retrying shortly")
        self._next_attempt = now + RECONNECT_INTERVAL
        try:
            self._db = self._connect()
        except psycopg.Error as exc:
            raise StoreUnavailable(
                f"the database is unreachable: {exc.__class__.__name__}"
            ) from exc
        log.warning("reconnected to the database")
        return self._db

    def _lost(self, exc: psycopg.Error) -> StoreUnavailable:
        log.warning("database connection lost (%s); requests get 503 until it is back", exc)
        if self._db is not None:
            self._db.close()
        self._db = None
        return StoreUnavailable(f"the database is unreachable: {exc.__class__.__name__}")

    def _run(self, sql: str, params: Sequence[Any] | Mapping[str, Any] = ()) -> psycopg.Cursor[Row]:
        db = self._conn()
        try:
            return db.execute(sql, params)
        except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
            raise self._lost(exc) from exc

    def _many(self, statements: Sequence[tuple[str, Sequence[Any]]]) -> list[int]:
        """Statements in one transaction; their row counts."""
        db = self._conn()
        try:
            with db.transaction():
                return [db.execute(sql, params).rowcount for sql, params in statements]
        except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
            raise self._lost(exc) from exc

    def ping(self) -> bool:
        try:
            return self._run("SELECT 1").fetchone() is not None
        except StoreUnavailable:
            return False

    def schema_version(self) -> int:
        row = self._run("SELECT max(version) AS v FROM schema_migrations").fetchone()
        return int(row["v"]) if row and row["v"] is not None else 0

    # -- users -----------------------------------------------------------------------------

    def add_user(self, name: str, password_hash: str, allow_anonymous: bool) -> bool:
        cursor = self._run(
            "INSERT INTO users VALUES (%s, %s, %s, %s) ON CONFLICT (name) DO NOTHING",
            (name, password_hash, allow_anonymous, time.time()),
        )
        return cursor.rowcount == 1

    def get_user(self, name: str) -> User | None:
        row = self._run("SELECT * FROM users WHERE name = %s", (name,)).fetchone()
        return _user(row) if row else None

    def list_users(self) -> list[User]:
        return [_user(r) for r in self._run("SELECT * FROM users ORDER BY name").fetchall()]

    def update_user(
        self, name: str, *, password_hash: str | None = None, allow_anonymous: bool | None = None
    ) -> bool:
        cursor = self._run(
            "UPDATE users SET password_hash = coalesce(%s, password_hash), "
            "allow_anonymous = coalesce(%s, allow_anonymous) WHERE name = %s",
            (password_hash or None, allow_anonymous, name),
        )
        return cursor.rowcount == 1

    def remove_user(self, name: str) -> bool:
        self._forget_subscriptions()
        counts = self._many(
            [
                ("DELETE FROM users WHERE name = %s", (name,)),
                ('DELETE FROM sessions WHERE "user" = %s AND NOT anonymous', (name,)),
                ('DELETE FROM subscriptions WHERE "user" = %s', (name,)),
            ]
        )
        return counts[0] > 0

    # -- sessions and subscriptions ----------------------------------------------------------

    def add_session(self, session: Session) -> None:
        self._run(
            "INSERT INTO sessions VALUES (%s, %s, %s, %s, %s, %s)",
            (
                session.token_hash,
                session.user,
                session.anonymous,
                session.call_id,
                session.created_at,
                session.expires_at,
            ),
        )

    def remove_session(self, token_hash: str) -> None:
        self._forget_subscriptions()
        self._many(
            [
                ("DELETE FROM sessions WHERE token_hash = %s", (token_hash,)),
                ("DELETE FROM subscriptions WHERE session_hash = %s", (token_hash,)),
            ]
        )

    def sessions(self, now: float) -> Iterator[Session]:
        self._run("DELETE FROM sessions WHERE expires_at <= %s", (now,))
        for r in self._run("SELECT * FROM sessions").fetchall():
            yield Session(
                r["token_hash"],
                r["user"],
                r["anonymous"],
                r["call_id"],
                r["created_at"],
                r["expires_at"],
            )

    def put_subscription(self, sub: SubscriptionRow) -> None:
        self._forget_subscriptions()
        self._run(
            "INSERT INTO subscriptions VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (id) DO "
            'UPDATE SET session_hash = EXCLUDED.session_hash, "user" = EXCLUDED."user", '
            "services = EXCLUDED.services, created_at = EXCLUDED.created_at, "
            "expires_at = EXCLUDED.expires_at",
            (
                sub.id,
                sub.session_hash,
                sub.user,
                json.dumps(sub.services),
                sub.created_at,
                sub.expires_at,
            ),
        )

    def remove_subscription(self, sub_id: str) -> None:
        self._forget_subscriptions()
        self._run("DELETE FROM subscriptions WHERE id = %s", (sub_id,))

    def subscriptions(self, now: float) -> list[SubscriptionRow]:
        self._run("DELETE FROM subscriptions WHERE expires_at <= %s", (now,))
        rows = self._run("SELECT * FROM subscriptions ORDER BY created_at").fetchall()
        return [_subscription(r) for r in rows]

    # -- calls -----------------------------------------------------------------------------

    def put_call(self, call: CallRow) -> None:
        marks = ", ".join(["%s"] * len(CALL_FIELDS))
        self._run(
            f"INSERT INTO calls ({CALL_COLUMNS}) VALUES ({marks}) "
            f"ON CONFLICT (id) DO UPDATE SET {_CALL_UPDATE}",
            call_values(call),
        )

    def live_calls(self) -> list[CallRow]:
        rows = self._run(
            f"SELECT {CALL_COLUMNS} FROM calls WHERE state <> 'Ended' ORDER BY created_at"
        ).fetchall()
        return [_call(r) for r in rows]

    def get_call(self, call_id: str) -> CallRow | None:
        row = self._run(f"SELECT {CALL_COLUMNS} FROM calls WHERE id = %s", (call_id,)).fetchone()
        return _call(row) if row else None

    def history(self, user: str, limit: int, offset: int) -> list[CallRow]:
        rows = self._run(
            f"SELECT {CALL_COLUMNS} FROM calls "
            "WHERE (caller = %s AND NOT anonymous) OR callee = %s "
            "ORDER BY created_at DESC LIMIT %s OFFSET %s",
            (user, user, limit, offset),
        ).fetchall()
        return [_call(r) for r in rows]

    # -- replay cache ------------------------------------------------------------------------

    def token_used(self, key: str) -> bool:
        return self._run("SELECT 1 FROM used_tokens WHERE key = %s", (key,)).fetchone() is not None

    def use_token(self, key: str, expires_at: float, now: float) -> bool:
        counts = self._many(
            [
                ("DELETE FROM used_tokens WHERE expires_at <= %s", (now,)),
                (
                    "INSERT INTO used_tokens VALUES (%s, %s) ON CONFLICT (key) DO NOTHING",
                    (key, expires_at),
                ),
            ]
        )
        return counts[1] == 1

    # -- what several processes share (SharedStore) ------------------------------------------

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """Statements inside share one transaction (nested: a savepoint).

        The subscriptions read inside are remembered until the outermost transaction ends: a
        call action that notifies a user it checked was online, or the party whose call row it
        locked (lock_call reads both parties' subscriptions with the row), reads them once.
        Within one action that is the same as reading them again a moment later; a
        subscription written inside forgets them all."""
        db = self._conn()
        outermost = self._memo is None
        if outermost:
            self._memo = {}
        try:
            with db.transaction():
                yield
        except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
            raise self._lost(exc) from exc
        finally:
            if outermost:
                self._memo = None

    def _forget_subscriptions(self) -> None:
        if self._memo is not None:
            self._memo.clear()

    def lock_call(self, call_id: str) -> CallRow | None:
        """The call's row, locked until the enclosing transaction ends: the one authority
        over a call's state across processes (a second answer waits here, then sees the first
        one's result)."""
        row = self._run(
            f"SELECT {_LOCKED_CALL}, to_json(a) AS caller_sub, to_json(b) AS callee_sub "
            "FROM calls c LEFT JOIN subscriptions a ON a.session_hash = c.caller_session "
            "LEFT JOIN subscriptions b ON b.session_hash = c.callee_session "
            "WHERE c.id = %s FOR UPDATE OF c",
            (call_id,),
        ).fetchone()
        if row is None:
            return None
        caller_sub, callee_sub = row.pop("caller_sub"), row.pop("callee_sub")
        call = _call(row)
        if self._memo is not None:
            self._memo["session", call.caller_session] = caller_sub and _subscription(caller_sub)
            if call.callee_session is not None:
                self._memo["session", call.callee_session] = callee_sub and _subscription(
                    callee_sub
                )
        return call

    def live_calls_of(
        self, *, user: str | None = None, session: str | None = None
    ) -> list[CallRow]:
        if session is not None:
            rows = self._run(
                f"SELECT {CALL_COLUMNS} FROM calls WHERE state <> 'Ended' AND "
                "(caller_session = %s OR callee_session = %s) ORDER BY created_at",
                (session, session),
            ).fetchall()
        else:
            rows = self._run(
                f"SELECT {CALL_COLUMNS} FROM calls WHERE state <> 'Ended' AND "
                "(callee = %s OR (caller = %s AND NOT anonymous)) ORDER BY created_at",
                (user, user),
            ).fetchall()
        return [_call(r) for r in rows]

    def live_count_of(self, user: str) -> int:
        row = self._run(
            "SELECT count(*) AS n FROM calls WHERE state <> 'Ended' AND "
            "(callee = %s OR (caller = %s AND NOT anonymous))",
            (user, user),
        ).fetchone()
        return int(row["n"]) if row else 0

    def make_checks(self, caller: str | None, callee: str) -> tuple[bool, int, int]:
        """For a new call, in one round trip: whether `callee` has an account, and the live
        calls of `caller` (None: an anonymous caller, whose label is no account) and of
        `callee`."""
        party = "(callee = {0} OR (caller = {0} AND NOT anonymous))"
        row = self._run(
            "SELECT EXISTS (SELECT 1 FROM users WHERE name = %(callee)s) AS known, "
            f"count(*) FILTER (WHERE {party.format('%(caller)s')}) AS caller_live, "
            f"count(*) FILTER (WHERE {party.format('%(callee)s')}) AS callee_live "
            "FROM calls WHERE state <> 'Ended'",
            {"caller": caller, "callee": callee},
        ).fetchone()
        assert row is not None
        return bool(row["known"]), int(row["caller_live"]), int(row["callee_live"])

    def live_count(self) -> int:
        row = self._run("SELECT count(*) AS n FROM calls WHERE state <> 'Ended'").fetchone()
        return int(row["n"]) if row else 0

    def get_session(self, token_hash: str) -> Session | None:
        r = self._run("SELECT * FROM sessions WHERE token_hash = %s", (token_hash,)).fetchone()
        if r is None:
            return None
        return Session(
            r["token_hash"],
            r["user"],
            r["anonymous"],
            r["call_id"],
            r["created_at"],
            r["expires_at"],
        )

    def sessions_of(self, user: str) -> list[str]:
        rows = self._run(
            'SELECT token_hash FROM sessions WHERE "user" = %s AND NOT anonymous', (user,)
        ).fetchall()
        return [r["token_hash"] for r in rows]

    def delete_expired_sessions(self, now: float) -> None:
        self._run("DELETE FROM sessions WHERE expires_at <= %s", (now,))

    def get_subscription(self, sub_id: str) -> SubscriptionRow | None:
        r = self._run("SELECT * FROM subscriptions WHERE id = %s", (sub_id,)).fetchone()
        return _subscription(r) if r else None

    def subscription_of_session(self, session_hash: str) -> SubscriptionRow | None:
        key = ("session", session_hash)
        if self._memo is not None and key in self._memo:
            found: SubscriptionRow | None = self._memo[key]
            return found
        r = self._run(
            "SELECT * FROM subscriptions WHERE session_hash = %s", (session_hash,)
        ).fetchone()
        found = _subscription(r) if r else None
        if self._memo is not None:
            self._memo[key] = found
        return found

    def subscriptions_of(self, user: str) -> list[SubscriptionRow]:
        key = ("user", user)
        if self._memo is not None and key in self._memo:
            return list(self._memo[key])
        # An anonymous party's label may equal a user name: it is never that user's device.
        rows = self._run(
            "SELECT s.* FROM subscriptions s JOIN sessions x ON x.token_hash = s.session_hash "
            'WHERE s."user" = %s AND NOT x.anonymous ORDER BY s.created_at',
            (user,),
        ).fetchall()
        found = [_subscription(r) for r in rows]
        if self._memo is not None:
            self._memo[key] = list(found)
        return found

    def take_expired_subscriptions(self, now: float) -> list[tuple[SubscriptionRow, bool]]:
        """Delete and return subscriptions past their expiry or whose session is gone or
        expired, with True when it is the session. DELETE ... RETURNING: each row goes to
        exactly one of the processes sweeping at the same moment."""
        self._forget_subscriptions()
        rows = self._run(
            "DELETE FROM subscriptions s WHERE s.expires_at <= %s OR NOT EXISTS "
            "(SELECT 1 FROM sessions x WHERE x.token_hash = s.session_hash AND x.expires_at > %s) "
            "RETURNING s.*, s.expires_at > %s AS session_gone",
            (now, now, now),
        ).fetchall()
        return [(_subscription(r), bool(r["session_gone"])) for r in rows]
