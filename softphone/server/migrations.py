"""Versioned schema migrations for both stores: a short explicit list and a small runner.

Why not Alembic or yoyo: the schema is five tables written by hand-written SQL (no ORM for
Alembic to diff against), the same list must drive SQLite and PostgreSQL, and several server
processes may start at once against one database. Forty lines do exactly that: versions are
applied in order, each in its own transaction, under a PostgreSQL advisory lock (SQLite: an
immediate transaction), and a database newer than the code is refused rather than guessed at.
Add a migration by appending to MIGRATIONS; never edit one that has shipped.
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import psycopg


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sqlite: str
    postgres: str


class SchemaTooNew(ValueError):
    """The database was migrated by a newer softphone than this one."""


# Version 1 is the schema from before versioning; IF NOT EXISTS lets an existing SQLite file
# (user_version 0) adopt it without change.
_SQLITE_V1 = """
CREATE TABLE IF NOT EXISTS users (
    name TEXT PRIMARY KEY,
    password_hash TEXT NOT NULL,
    allow_anonymous INTEGER NOT NULL DEFAULT 0,
    created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS sessions (
    token_hash TEXT PRIMARY KEY,
    user TEXT NOT NULL,
    anonymous INTEGER NOT NULL DEFAULT 0,
    call_id TEXT,
    created_at REAL NOT NULL,
    expires_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS subscriptions (
    id TEXT PRIMARY KEY,
    session_hash TEXT NOT NULL,
    user TEXT NOT NULL,
    services TEXT NOT NULL,
    created_at REAL NOT NULL,
    expires_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS calls (
    id TEXT PRIMARY KEY,
    caller TEXT NOT NULL,
    callee TEXT NOT NULL,
    caller_session TEXT NOT NULL,
    callee_session TEXT,
    state TEXT NOT NULL,
    audio INTEGER NOT NULL,
    video INTEGER NOT NULL,
    anonymous INTEGER NOT NULL,
    display_name TEXT,
    offer_sdp TEXT NOT NULL,
    pending_update TEXT,
    created_at REAL NOT NULL,
    answered_at REAL,
    ended_at REAL,
    end_reason TEXT
);
CREATE INDEX IF NOT EXISTS calls_caller ON calls (caller, created_at);
CREATE INDEX IF NOT EXISTS calls_callee ON calls (callee, created_at);
CREATE INDEX IF NOT EXISTS calls_live ON calls (state) WHERE state != 'Ended';
CREATE TABLE IF NOT EXISTS used_tokens (
    key TEXT PRIMARY KEY,
    expires_at REAL NOT NULL
);
"""

# "user" is reserved in PostgreSQL, hence quoted; times stay epoch seconds as in SQLite.
_POSTGRES_V1 = """
CREATE TABLE users (
    name text PRIMARY KEY,
    password_hash text NOT NULL,
    allow_anonymous boolean NOT NULL DEFAULT false,
    created_at double precision NOT NULL
);
CREATE TABLE sessions (
    token_hash text PRIMARY KEY,
    "user" text NOT NULL,
    anonymous boolean NOT NULL DEFAULT false,
    call_id text,
    created_at double precision NOT NULL,
    expires_at double precision NOT NULL
);
CREATE INDEX sessions_user ON sessions ("user");
CREATE TABLE subscriptions (
    id text PRIMARY KEY,
    session_hash text NOT NULL,
    "user" text NOT NULL,
    services text NOT NULL,
    created_at double precision NOT NULL,
    expires_at double precision NOT NULL
);
CREATE INDEX subscriptions_session ON subscriptions (session_hash);
CREATE TABLE calls (
    id text PRIMARY KEY,
    caller text NOT NULL,
    callee text NOT NULL,
    caller_session text NOT NULL,
    callee_session text,
    state text NOT NULL,
    audio boolean NOT NULL,
    video boolean NOT NULL,
    anonymous boolean NOT NULL,
    display_name text,
    offer_sdp text NOT NULL,
    pending_update text,
    created_at double precision NOT NULL,
    answered_at double precision,
    ended_at double precision,
    end_reason text
);
CREATE INDEX calls_caller ON calls (caller, created_at);
CREATE INDEX calls_callee ON calls (callee, created_at);
CREATE INDEX calls_live ON calls (state) WHERE state <> 'Ended';
CREATE TABLE used_tokens (
    key text PRIMARY KEY,
    expires_at double precision NOT NULL
);
"""

MIGRATIONS: tuple[Migration, ...] = (Migration(1, "initial schema", _SQLITE_V1, _POSTGRES_V1),)
LATEST = MIGRATIONS[-1].version
# Any constant works; it only has to be the same in every process of one deployment.
_ADVISORY_LOCK = 0x50F7_0001


def _too_new(found: int) -> SchemaTooNew:
    return SchemaTooNew(
        f"the database schema is at version {found}, newer than this softphone knows "
        f"({LATEST}); upgrade softphone instead of running an older one on this database"
    )


def migrate_sqlite(db: sqlite3.Connection) -> list[int]:
    """Bring a SQLite database (autocommit connection) to LATEST; the versions applied."""
    applied: list[int] = []
    for migration in MIGRATIONS:
        db.execute("BEGIN IMMEDIATE")  # one writer at a time, even across processes
        try:
            current = int(db.execute("PRAGMA user_version").fetchone()[0])
            if current > LATEST:
                raise _too_new(current)
            if current < migration.version:
                for statement in migration.sqlite.split(";"):
                    if statement.strip():
                        db.execute(statement)
                db.execute(f"PRAGMA user_version = {migration.version:d}")
                applied.append(migration.version)
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")
    return applied


def migrate_postgres(db: psycopg.Connection[Any]) -> list[int]:
    """Bring a PostgreSQL database to LATEST; the versions applied. Safe to run from several
    processes at once: they queue on an advisory lock and the later ones find nothing to do."""
    from psycopg.rows import tuple_row

    applied: list[int] = []
    with db.transaction(), db.cursor(row_factory=tuple_row) as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s)", (_ADVISORY_LOCK,))
        cursor.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations (version integer PRIMARY KEY, "
            "name text NOT NULL, applied_at double precision NOT NULL)"
        )
        cursor.execute("SELECT version FROM schema_migrations")
        done = {int(row[0]) for row in cursor.fetchall()}
        if done and max(done) > LATEST:
            raise _too_new(max(done))
        for migration in MIGRATIONS:
            if migration.version in done:
                continue
            # Several statements in one string: psycopg sends them by the simple protocol.
            cursor.execute(migration.postgres.encode())
            cursor.execute(
                "INSERT INTO schema_migrations VALUES (%s, %s, %s)",
                (migration.version, migration.name, time.time()),
            )
            applied.append(migration.version)
    return applied
