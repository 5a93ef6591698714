"""The embedded default: a signaling server and the echo bot inside the softphone's process.

`softphone` with no server configured calls `start_embedded()`: it starts `softphone serve`'s
app on 127.0.0.1 (a free port) on a private loop thread, makes sure the local user and `echo`
exist with random passwords kept in a 0600 file in the data directory (never printed), starts
the echo bot, and returns the URL and the local user's credentials. `Embedded.stop()` stops
the bot and the server. The TUI imports this module only when it needs it (from a worker
thread, after its first paint): it loads the server and the engine's media stack.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import secrets
from pathlib import Path

from softphone.bots.echo import EchoBot
from softphone.config import Config, default_data_dir
from softphone.loop_thread import LoopThread
from softphone.server.accounts import Accounts
from softphone.server.runner import RunningServer, start_server

log = logging.getLogger("softphone.embedded")

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
    data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = data_dir / CREDENTIALS_FILE
    passwords = _load_passwords(path)
    changed = False
    with Accounts.in_directory(data_dir) as accounts:
        for name in names:
            anonymous = name in allow_anonymous
            user = accounts.get(name)
            if name not in passwords:
                passwords[name] = secrets.token_urlsafe(24)
                changed = True
                if user is None:
                    accounts.add(name, passwords[name], allow_anonymous=anonymous)
                else:
                    accounts.update(name, password=passwords[name], allow_anonymous=anonymous)
            elif user is None:
                accounts.add(name, passwords[name], allow_anonymous=anonymous)
            elif user.allow_anonymous != anonymous:  # hashing is slow: only what changed
                accounts.update(name, allow_anonymous=anonymous)
    if changed or not path.exists():
        _save_passwords(path, passwords)
    return passwords


class Embedded:
    """A running embedded server and echo bot, on their loop thread; `stop()` (idempotent)
    ends both."""

    def __init__(
        self, url: str, user: str, password: str, data_dir: Path, runner: _Runner
    ) -> None:
        self.url = url
        self.user = user
        self.password = password
        self.data_dir = data_dir
        self._runner: _Runner | None = runner

    def stop(self, timeout: float = 10.0) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            runner.close(timeout)


class _Runner:
    """The server and the bot on their own `LoopThread`."""

    def __init__(self, data_dir: Path, echo_password: str) -> None:
        self._data_dir = data_dir
        self._echo_password = echo_password
        self._thread = LoopThread("softphone-embedded")
        self._server: RunningServer | None = None
        self._bot: EchoBot | None = None

    def open(self, timeout: float) -> str:
        """Start both; returns the server's URL (raises what stopped them, after cleaning up)."""
        try:
            return self._thread.run(self._start(), timeout)
        except BaseException:
            self.close(timeout)
            raise

    async def _start(self) -> str:
        config = Config()
        config.server.data_dir = str(self._data_dir)
        self._server = await start_server(config, host="127.0.0.1", port=0)
        password = self._echo_password
        self._bot = EchoBot(self._server.url, lambda: password, ECHO_USER)
        await self._bot.start()
        return self._server.url

    async def _stop(self) -> None:
        bot, self._bot = self._bot, None
        if bot is not None:
            try:
                await bot.stop()
            except Exception:
                log.exception("the echo bot did not stop cleanly")
        server, self._server = self._server, None
        if server is not None:
            await server.stop()

    def close(self, timeout: float) -> None:
        if self._thread.alive:
            try:
                self._thread.run(self._stop(), timeout)
            except Exception:
                log.exception("the embedded server did not stop cleanly")
        self._thread.stop(timeout)


def start_embedded(
    user: str = "me", data_dir: Path | None = None, timeout: float = 20.0
) -> Embedded:
    """Start the server and the echo bot on their own loop thread; blocks until both are up
    (raises what stopped them)."""
    data = data_dir if data_dir is not None else embedded_data_dir()
    names = [user] if user == ECHO_USER else [user, ECHO_USER]
    passwords = ensure_users(data, names, frozenset({ECHO_USER}))
    runner = _Runner(data, passwords[ECHO_USER])
    url = runner.open(timeout)
    return Embedded(url, user, passwords[user], data, runner)


__all__ = ["ECHO_USER", "Embedded", "embedded_data_dir", "ensure_users", "start_embedded"]
