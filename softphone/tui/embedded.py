"""The embedded default: a signaling server and the echo bot inside the softphone's process.

`softphone` with no server configured calls `start_embedded()`: it starts `softphone serve`'s
app on 127.0.0.1 (a free port) on a private loop thread, makes sure the local user and `echo`
exist with random passwords kept in a 0600 file in the data directory (never printed), starts
the echo bot, and returns the URL and the local user's credentials. `Embedded.stop()` stops
the bot and the server. No Textual here: the TUI calls this from a worker thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import secrets
import threading
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from softphone.config import Config, default_data_dir

log = logging.getLogger("softphone.tui.embedded")

ECHO_USER = "echo"
CREDENTIALS_FILE = "embedded-credentials.json"


def embedded_data_dir() -> Path:
    return default_data_dir() / "embedded"


def _load_passwords(path: Path) -> dict[str, str]:
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(raw, dict):
        return {}
    return {str(k): str(v) for k, v in raw.items() if isinstance(v, str)}


def _save_passwords(path: Path, passwords: dict[str, str]) -> None:
    """Write the file 0600 from the start (never world-readable, not even for a moment)."""
    tmp = path.with_suffix(".tmp")
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        json.dump(passwords, out)
    os.replace(tmp, path)
    os.chmod(path, 0o600)


def ensure_users(
    data_dir: Path, names: list[str], allow_anonymous: frozenset[str] = frozenset()
) -> dict[str, str]:
    """Make sure every user in `names` exists in the server's database with the password kept
    in the credentials file (created with random passwords as needed); returns the passwords.
    Users in `allow_anonymous` take anonymous calls (the echo contact does, so
    `softphone --anonymous --to echo` works on the embedded default)."""
    from softphone.server.app import database_path
    from softphone.server.passwords import hash_password
    from softphone.server.store import Store

    data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = data_dir / CREDENTIALS_FILE
    passwords = _load_passwords(path)
    changed = False
    config = Config()
    config.server.data_dir = str(data_dir)
    store = Store(database_path(config))
    try:
        for name in names:
            if name not in passwords:
                passwords[name] = secrets.token_urlsafe(24)
                changed = True
                known = store.get_user(name)
                if known is None:
                    store.add_user(name, hash_password(passwords[name]), False)
                else:
                    store.update_user(name, password_hash=hash_password(passwords[name]))
            elif store.get_user(name) is None:
                store.add_user(name, hash_password(passwords[name]), False)
            user = store.get_user(name)
            if user is not None and user.allow_anonymous != (name in allow_anonymous):
                store.update_user(name, allow_anonymous=name in allow_anonymous)
    finally:
        store.close()
    if changed or not path.exists():
        _save_passwords(path, passwords)
    return passwords


@dataclass
class Embedded:
    """A running embedded server and echo bot. `stop()` (idempotent) ends both."""

    url: str
    user: str
    password: str
    data_dir: Path
    _loop: asyncio.AbstractEventLoop | None = field(default=None, repr=False)
    _thread: threading.Thread | None = field(default=None, repr=False)
    _stop: asyncio.Event | None = field(default=None, repr=False)

    def stop(self, timeout: float = 10.0) -> None:
        loop, stop, thread = self._loop, self._stop, self._thread
        if loop is None or stop is None or thread is None:
            return
        self._loop = None
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(stop.set)
        thread.join(timeout)


def start_embedded(
    user: str = "me", data_dir: Path | None = None, timeout: float = 20.0
) -> Embedded:
    """Start the server and the echo bot on their own loop thread; blocks until both are up
    (raises what stopped them)."""
    data = data_dir if data_dir is not None else embedded_data_dir()
    names = [user] if user == ECHO_USER else [user, ECHO_USER]
    passwords = ensure_users(data, names, frozenset({ECHO_USER}))
    ready: Future[str] = Future()
    holder: dict[str, Any] = {}

    async def main() -> None:
        from softphone.bots.echo import EchoBot
        from softphone.server.runner import start_server

        config = Config()
        config.server.data_dir = str(data)
        stop = asyncio.Event()
        holder["stop"] = stop
        server = await start_server(config, host="127.0.0.1", port=0)
        bot: EchoBot | None = None
        try:
            echo_password = passwords[ECHO_USER]
            bot = EchoBot(server.url, lambda: echo_password, ECHO_USER)
            await bot.start()
            ready.set_result(server.url)
            await stop.wait()
        finally:
            if bot is not None:
                with contextlib.suppress(Exception):
                    await bot.stop()
            await server.stop()

    loop = asyncio.new_event_loop()

    def run() -> None:
        # No set_event_loop: run_until_complete makes it the running loop of this thread.
        try:
            loop.run_until_complete(main())
        except BaseException as exc:  # reported to the starter, or logged after start
            if not ready.done():
                ready.set_exception(exc)
            else:
                log.exception("the embedded server stopped with an error")
        finally:
            loop.close()

    thread = threading.Thread(target=run, name="softphone-embedded", daemon=True)
    thread.start()
    url = ready.result(timeout)
    embedded = Embedded(url=url, user=user, password=passwords[user], data_dir=data)
    embedded._loop, embedded._thread, embedded._stop = loop, thread, holder["stop"]
    return embedded


__all__ = ["ECHO_USER", "Embedded", "embedded_data_dir", "ensure_users", "start_embedded"]
