"""Token-mode credentials for `softphone --anonymous`: read from the JSON `softphone token`
prints (`--token-file`) or fetched from a URL (`--token-url`, as the seed's demo page does).

Errors say where the JSON came from and what is wrong; token values never appear in them.
No Textual here: the TUI calls this from a worker thread.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

FIELDS = ("realm", "accountToken", "fromToken", "toToken")
MAX_BYTES = 64 * 1024


class TokenSourceError(Exception):
    """The token JSON could not be read or is not what `softphone token` prints."""


@dataclass(frozen=True)
class TokenSet:
    realm: str
    account_token: str
    from_token: str
    to_token: str
    caller: str
    callee: str

    def __repr__(self) -> str:  # never print the tokens themselves
        return f"TokenSet(realm={self.realm!r}, caller={self.caller!r}, callee={self.callee!r})"


def parse_token_json(raw: bytes | str, where: str) -> TokenSet:
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise TokenSourceError(f"{where}: not JSON ({exc.msg} at line {exc.lineno})") from None
    except ValueError:  # undecodable bytes
        raise TokenSourceError(f"{where}: not UTF-8 JSON") from None
    if not isinstance(data, dict):
        raise TokenSourceError(f"{where}: expected a JSON object like `softphone token` prints")
    missing = [f for f in FIELDS if not isinstance(data.get(f), str) or not data[f]]
    if missing:
        raise TokenSourceError(f"{where}: missing or empty {', '.join(missing)}")
    return TokenSet(
        realm=data["realm"],
        account_token=data["accountToken"],
        from_token=data["fromToken"],
        to_token=data["toToken"],
        caller=str(data.get("caller") or ""),
        callee=str(data.get("callee") or ""),
    )


def read_token_file(path: Path) -> TokenSet:
    try:
        raw = path.read_bytes()[: MAX_BYTES + 1]
    except OSError as exc:
        raise TokenSourceError(f"{path}: {exc.strerror or exc}") from None
    if len(raw) > MAX_BYTES:
        raise TokenSourceError(f"{path}: larger than {MAX_BYTES // 1024} KiB")
    return parse_token_json(raw, str(path))


def fetch_tokens(url: str, timeout: float = 10.0) -> TokenSet:
    """GET `url` (http or https only); the URL itself carries no secret."""
    if not url.startswith(("http://", "https://")):
        raise TokenSourceError(f"{url}: only http:// and https:// token URLs are supported")
    request = urllib.request.Request(url, headers={"Accept": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            raw = response.read(MAX_BYTES + 1)
    except urllib.error.HTTPError as exc:
        raise TokenSourceError(f"{url}: HTTP {exc.code} {exc.reason}") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise TokenSourceError(f"{url}: cannot fetch tokens ({reason})") from None
    if len(raw) > MAX_BYTES:
        raise TokenSourceError(f"{url}: response larger than {MAX_BYTES // 1024} KiB")
    return parse_token_json(raw, url)


__all__ = ["TokenSet", "TokenSourceError", "fetch_tokens", "parse_token_json", "read_token_file"]
