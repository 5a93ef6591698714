"""The SQLite store (the embedded and single-process default): one file, WAL mode.

Writes are small and synchronous on the event loop: in WAL mode with synchronous=NORMAL a
commit costs tens of microseconds, far less than a thread hop. The schema is versioned with
SQLite's user_version (see migrations.py).
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

from softphone.server.migrations import migrate_sqlite
from softphone.server.private_files import private_dir, private_file
from softphone.server.store_rows import (
    CALL_COLUMNS,
    CALL_FIELDS,
    CallRow,
    Session,
    SubscriptionRow,
    User,
    call_values,
)


def _user(row: sqlite3.Row) -> User:
    return User(row["name"], row["password_hash"], bool(row["allow_anonymous"]), row["created_at"])


def _call(row: sqlite3.Row) -> CallRow:
    values = {name: row[name] for name in CALL_FIELDS}
    for flag in ("audio", "video", "anonymous"):  # SQLite has no boolean type: 0 or 1
        values[flag] = bool(values[flag])
    return CallRow(**values)


class SqliteStore:
    """`Store` on one SQLite file (or `:memory:`)."""

    def __init__(self, path: Path | str, *, migrate: bool = True) -> None:
        if str(path) != ":memory:":
            # SQLite gives the -wal and -shm files the database file's mode, so a private
            # database file is enough for all three.
            private_dir(Path(path).parent)
            private_file(Path(path))
        self._db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("PRAGMA busy_timeout=5000")
        if migrate:
            migrate_sqlite(self._db)

    def close(self) -> None:
        self._db.close()

    def ping(self) -> bool:
        return self._db.execute("SELECT 1").fetchone() is not None

    def schema_version(self) -> int:
        return int(self._db.execute("PRAGMA user_version").fetchone()[0])

    # -- users -----------------------------------------------------------------------------

    def add_user(self, name: str, password_hash: str, allow_anonymous: bool) -> bool:
        try:
            self._db.execute(
                "INSERT INTO users VALUES (?, ?, ?, ?)",
                (name, password_hash, int(allow_anonymous), time.time()),
            )
        except sqlite3.IntegrityError:
            return False
        return True

    def get_user(self, name: str) -> User | None:
        row = self._db.execute("SELECT * FROM users WHERE name = ?", (name,)).fetchone()
        if row is None:
            return None
        return _user(row)

    def list_users(self) -> list[User]:
        rows = self._db.execute("SELECT * FROM users ORDER BY name").fetchall()
        return [_user(r) for r in rows]

    def update_user(
        self, name: str, *, password_hash: str | None = None, allow_anonymous: bool | None = None
    ) -> bool:
        user = self.get_user(name)
        if user is None:
            return False
        self._db.execute(
            "UPDATE users SET password_hash = ?, allow_anonymous = ? WHERE name = ?",
            (
                password_hash or user.password_hash,
                int(user.allow_anonymous if allow_anonymous is None else allow_anonymous),
                name,
            ),
        )
        return True

    def remove_user(self, name: str) -> bool:
        with self._transaction():
            cursor = self._db.execute("DELETE FROM users WHERE name = ?", (name,))
            self._db.execute("DELETE FROM sessions WHERE user = ? AND anonymous = 0", (name,))
            self._db.execute("DELETE FROM subscriptions WHERE user = ?", (name,))
        return cursor.rowcount > 0

    # -- sessions and subscriptions ----------------------------------------------------------

    def add_session(self, session: Session) -> None:
        self._db.execute(
            "INSERT INTO sessions VALUES (?, ?, ?, ?, ?, ?)",
            (
                session.token_hash,
                session.user,
                int(session.anonymous),
                session.call_id,
                session.created_at,
                session.expires_at,
            ),
        )

    def remove_session(self, token_hash: str) -> None:
        with self._transaction():
            self._db.execute("DELETE FROM sessions WHERE token_hash = ?", (token_hash,))
            self._db.execute("DELETE FROM subscriptions WHERE session_hash = ?", (token_hash,))

    def sessions(self, now: float) -> Iterator[Session]:
        self._db.execute("DELETE FROM sessions WHERE expires_at <= ?", (now,))
        for r in self._db.execute("SELECT * FROM sessions"):
            yield Session(
                r["token_hash"],
                r["user"],
                bool(r["anonymous"]),
                r["call_id"],
                r["created_at"],
                r["expires_at"],
            )

    def put_subscription(self, sub: SubscriptionRow) -> None:
        self._db.execute(
            "INSERT OR REPLACE INTO subscriptions VALUES (?, ?, ?, ?, ?, ?)",
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
        self._db.execute("DELETE FROM subscriptions WHERE id = ?", (sub_id,))

    def subscriptions(self, now: float) -> list[SubscriptionRow]:
        self._db.execute("DELETE FROM subscriptions WHERE expires_at <= ?", (now,))
        return [
            SubscriptionRow(
                r["id"],
                r["session_hash"],
                r["user"],
                json.loads(r["services"]),
                r["created_at"],
                r["expires_at"],
            )
            for r in self._db.execute("SELECT * FROM subscriptions ORDER BY created_at")
        ]

    # -- calls -----------------------------------------------------------------------------

    def put_call(self, call: CallRow) -> None:
        marks = ", ".join("?" * len(CALL_FIELDS))
        self._db.execute(
            f"INSERT OR REPLACE INTO calls ({CALL_COLUMNS}) VALUES ({marks})", call_values(call)
        )

    def live_calls(self) -> list[CallRow]:
        rows = self._db.execute(
            f"SELECT {CALL_COLUMNS} FROM calls WHERE state != 'Ended' ORDER BY created_at"
        ).fetchall()
        return [_call(r) for r in rows]

    def get_call(self, call_id: str) -> CallRow | None:
        row = self._db.execute(
            f"SELECT {CALL_COLUMNS} FROM calls WHERE id = ?", (call_id,)
        ).fetchone()
        return _call(row) if row else None

    def history(self, user: str, limit: int, offset: int) -> list[CallRow]:
        rows = self._db.execute(
            f"SELECT {CALL_COLUMNS} FROM calls "
            "WHERE (caller = ? AND anonymous = 0) OR callee = ? "
            "ORDER BY created_at DESC LIMIT ? OFFSET ?",
            (user, user, limit, offset),
        ).fetchall()
        return [_call(r) for r in rows]

    # -- replay cache ------------------------------------------------------------------------

    def token_used(self, key: str) -> bool:
        row = self._db.execute("SELECT 1 FROM used_tokens WHERE key = ?", (key,)).fetchone()
        return row is not None

    def use_token(self, key: str, expires_at: float, now: float) -> bool:
        """Record a token set as used; False if it was used before (a replay)."""
        self._db.execute("DELETE FROM used_tokens WHERE expires_at <= ?", (now,))
        try:
            self._db.execute("INSERT INTO used_tokens VALUES (?, ?)", (key, expires_at))
        except sqlite3.IntegrityError:
            return False
        return True

    # -- helpers -----------------------------------------------------------------------------

    def _transaction(self) -> _Transaction:
        return _Transaction(self._db)


class _Transaction:
    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def __enter__(self) -> None:
        self._db.execute("BEGIN")

    def __exit__(self, exc_type: object, *_: object) -> None:
        self._db.execute("ROLLBACK" if exc_type else "COMMIT")
