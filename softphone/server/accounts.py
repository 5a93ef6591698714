"""Account administration on a server's database: what `softphone user ...` and the embedded
server do. One place for the rules (valid names, hashing), whoever asks.

A running server reads users on each use, so changes made here take effect at once.
"""

from __future__ import annotations

from pathlib import Path
from types import TracebackType

from softphone.config import Config
from softphone.server.passwords import hash_password
from softphone.server.store_open import open_store
from softphone.server.store_rows import User

NAME_RULE = "user names are 1-64 letters, digits, '.', '-' or '_'"


class AccountError(Exception):
    """An account change that cannot be made; the message says why, for a person."""


def valid_name(name: str) -> bool:
    return 0 < len(name) <= 64 and all(c.isalnum() or c in ".-_" for c in name)


class Accounts:
    """The users of the server whose data directory `config` names (open until `close`)."""

    def __init__(self, config: Config) -> None:
        self._store = open_store(config)

    @classmethod
    def in_directory(cls, data_dir: Path) -> Accounts:
        config = Config()
        config.server.data_dir = str(data_dir)
        return cls(config)

    def close(self) -> None:
        self._store.close()

    def __enter__(self) -> Accounts:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def list(self) -> list[User]:
        return self._store.list_users()

    def get(self, name: str) -> User | None:
        return self._store.get_user(name)

    def add(self, name: str, password: str, *, allow_anonymous: bool = False) -> None:
        if not valid_name(name):
            raise AccountError(NAME_RULE)
        if not self._store.add_user(name, hash_password(password), allow_anonymous):
            raise AccountError(f"user {name!r} exists already")

    def remove(self, name: str) -> None:
        """Remove the user, their login sessions and subscriptions."""
        if not self._store.remove_user(name):
            raise AccountError(f"no user named {name!r}")

    def update(
        self, name: str, *, password: str | None = None, allow_anonymous: bool | None = None
    ) -> None:
        new_hash = hash_password(password) if password is not None else None
        if not self._store.update_user(
            name, password_hash=new_hash, allow_anonymous=allow_anonymous
        ):
            raise AccountError(f"no user named {name!r}")


__all__ = ["NAME_RULE", "AccountError", "Accounts", "valid_name"]
