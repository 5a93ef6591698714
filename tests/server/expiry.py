"""Expiring a session under a running server, whichever store it uses: the in-process cache
(SQLite mode keeps sessions in memory) and, on PostgreSQL, the row every process reads."""

from __future__ import annotations

import os

from aiohttp import web

from softphone.server.services import SERVICES
from softphone.server.store_open import STORE_URL_ENV


def expire_session(app: web.Application, session_hash: str, expires_at: float) -> None:
    session = app[SERVICES].sessions.get(session_hash)
    assert session is not None
    session.expires_at = expires_at
    url = os.environ.get(STORE_URL_ENV)
    if url:
        import psycopg

        with psycopg.connect(url, autocommit=True) as db:
            db.execute(
                "UPDATE sessions SET expires_at = %s WHERE token_hash = %s",
                (expires_at, session_hash),
            )
