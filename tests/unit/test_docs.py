"""docs/protocol.md stays true to the code: endpoints, error codes, frames, close codes, metrics."""

from __future__ import annotations

import re
import typing
from pathlib import Path

import msgspec
import pytest

import softphone.server.app  # noqa: F401  (importing the app registers every route)
from softphone.config import Config
from softphone.protocol import frames
from softphone.protocol.errors import HTTP_STATUS, CloseCode, ErrorCode
from softphone.server.api import ENDPOINTS
from softphone.server.app import build_app
from softphone.server.metrics import METRICS_KEY
from softphone.server.store import Store

ROOT = Path(__file__).resolve().parents[2]
PROTOCOL = ROOT / "docs" / "protocol.md"
ARCHITECTURE = ROOT / "docs" / "architecture.md"


@pytest.fixture(scope="module")
def protocol() -> str:
    return PROTOCOL.read_text(encoding="utf-8")


def _tags(union: object) -> list[str]:
    tags = []
    for member in typing.get_args(union):
        assert issubclass(member, msgspec.Struct)
        tag = member.__struct_config__.tag
        assert isinstance(tag, str)
        tags.append(tag)
    return tags


def test_the_registry_is_populated() -> None:
    assert len(ENDPOINTS) >= 20


@pytest.mark.parametrize("endpoint", [f"{e.method} {e.path}" for e in ENDPOINTS])
def test_every_endpoint_is_documented(protocol: str, endpoint: str) -> None:
    assert endpoint in protocol


def test_no_documented_endpoint_is_stale(protocol: str) -> None:
    """Every "METHOD /v1/..." in the text (templates and example requests) is a real route."""
    routes = [
        re.compile(re.sub(r"\\{\w+\\}", "[^/]+", re.escape(f"{e.method} {e.path}")) + "$")
        for e in ENDPOINTS
    ]
    documented = set(re.findall(r'\b(?:GET|POST|PUT|DELETE|PATCH) /v1/[^\s`?",)]*', protocol))
    assert documented
    stale = {d for d in documented if not any(route.match(d) for route in routes)}
    assert stale == set()


@pytest.mark.parametrize("code", list(ErrorCode))
def test_every_error_code_is_documented_with_its_status(protocol: str, code: ErrorCode) -> None:
    row = re.search(rf"^\| `{re.escape(code.value)}` \| (\d{{3}}) \|", protocol, re.MULTILINE)
    assert row is not None, f"error code {code.value} has no row in the error table"
    assert int(row.group(1)) == HTTP_STATUS[code]


@pytest.mark.parametrize("tag", _tags(frames.ServerFrames))
def test_every_server_frame_is_documented(protocol: str, tag: str) -> None:
    assert f"`{tag}`" in protocol
    assert f'"type": "{tag}"' in protocol, f"no example of the {tag} frame"


@pytest.mark.parametrize("tag", _tags(frames.ClientFrames))
def test_every_client_frame_is_documented(protocol: str, tag: str) -> None:
    assert f"`{tag}`" in protocol
    assert f'"type": "{tag}"' in protocol, f"no example of the {tag} frame"


@pytest.mark.parametrize("code", list(CloseCode))
def test_every_close_code_is_documented(protocol: str, code: CloseCode) -> None:
    assert re.search(rf"^\| {code.value} \|", protocol, re.MULTILINE), (
        f"close code {code.value} has no row in the close code table"
    )


@pytest.mark.parametrize("reason", frames.END_REASONS)
def test_every_end_reason_is_documented(protocol: str, reason: str) -> None:
    assert f"`{reason}`" in protocol


def test_every_metric_is_documented(protocol: str) -> None:
    store = Store(":memory:")
    try:
        rendered = build_app(Config(), store)[METRICS_KEY].render()
    finally:
        store.close()
    names = set(re.findall(r"^# TYPE (softphone_\w+)", rendered, re.MULTILINE))
    assert names
    for name in names:
        assert f"`{name}" in protocol, f"metric {name} is not documented"


def test_architecture_doc_exists() -> None:
    text = ARCHITECTURE.read_text(encoding="utf-8")
    for module in ("hub", "calls", "anonymous", "store"):
        assert f"{module}.py" in text
