"""The static demo pages under /web/ and the demo token service (no browser needed)."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from softphone.config import Config, ConfigError, parse_config
from softphone.server.tokens import generate_key, parse_key, verify_token

Start = Callable[[Config], Awaitable[TestClient[Any, Any]]]
WEB = Path(__file__).resolve().parents[2] / "softphone" / "web"


def demo_config(tmp_path: Path, per_minute: int = 1000) -> tuple[Config, bytes]:
    key = generate_key("v2")
    (tmp_path / "demo.key").write_text(key)
    config = parse_config(f"""
[server]
data_dir = "{tmp_path}"
[rate_limits]
anonymous_per_minute = {per_minute}
[[realms]]
name = "demo"
key_file = "{tmp_path / "demo.key"}"
[demo]
enabled = true
realm = "demo"
caller = "guest"
callee = "desk"
account = "desk"
""")
    return config, parse_key("v2", key)


@pytest.mark.parametrize(
    ("path", "content_type"),
    [
        ("/web/", "text/html"),
        ("/web/index.html", "text/html"),
        ("/web/anonymous.html", "text/html"),
        ("/web/style.css", "text/css"),
        ("/web/js/client.js", "text/javascript"),
        ("/web/js/calls.js", "text/javascript"),
    ],
)
async def test_pages_are_served_with_safe_headers(
    client: TestClient[Any, Any], path: str, content_type: str
) -> None:
    response = await client.get(path)
    assert response.status == 200
    assert response.content_type == content_type
    assert response.headers["Cache-Control"] == "no-cache"
    csp = response.headers["Content-Security-Policy"]
    assert "default-src 'self'" in csp and "connect-src 'self' ws: wss:" in csp
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert "Access-Control-Allow-Origin" not in response.headers


def test_pages_fetch_nothing_from_outside() -> None:
    for path in WEB.rglob("*"):
        if path.suffix in (".html", ".js", ".css"):
            text = path.read_text(encoding="utf-8")
            assert "http://" not in text and "https://" not in text, path
            assert ".innerHTML" not in text, path


async def test_root_redirects_to_the_pages(client: TestClient[Any, Any]) -> None:
    for path in ("/", "/web"):
        response = await client.get(path, allow_redirects=False)
        assert response.status == 302
        assert response.headers["Location"] == "/web/"


@pytest.mark.parametrize(
    "path", ["/web/nope.html", "/web/../config.py", "/web/js/%2e%2e/%2e%2e/config.py", "/web/js/"]
)
async def test_only_page_files_are_served(client: TestClient[Any, Any], path: str) -> None:
    response = await client.get(path)
    assert response.status == 404


async def test_demo_service_is_off_by_default(client: TestClient[Any, Any]) -> None:
    response = await client.get("/v1/demo/callparameters")
    assert response.status == 404
    assert (await response.json())["error"]["code"] == "not_found"


async def test_demo_service_issues_a_fresh_verifiable_set(
    start: Start, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    config, key = demo_config(tmp_path)
    client = await start(config)
    caplog.set_level(logging.DEBUG)
    response = await client.get(
        "/v1/demo/callparameters", headers={"Sec-Fetch-Site": "same-origin"}
    )
    assert response.status == 200
    assert response.headers["Cache-Control"] == "no-store"
    assert "Access-Control-Allow-Origin" not in response.headers
    body = await response.json()
    assert set(body) == {"realm", "accountToken", "fromToken", "toToken", "caller", "callee"}
    assert (body["realm"], body["caller"], body["callee"]) == ("demo", "guest", "desk")
    assert verify_token("v2", key, "demo", "to", body["toToken"]).identity == "desk"
    for name in ("accountToken", "fromToken", "toToken"):
        assert body[name] not in caplog.text
    again = await (await client.get("/v1/demo/callparameters")).json()
    assert again["toToken"] != body["toToken"]


async def test_demo_service_refuses_other_sites(start: Start, tmp_path: Path) -> None:
    client = await start(demo_config(tmp_path)[0])
    response = await client.get("/v1/demo/callparameters", headers={"Sec-Fetch-Site": "cross-site"})
    assert response.status == 403
    assert (await response.json())["error"]["code"] == "forbidden"


async def test_demo_service_is_rate_limited(start: Start, tmp_path: Path) -> None:
    client = await start(demo_config(tmp_path, per_minute=2)[0])
    for _ in range(2):
        assert (await client.get("/v1/demo/callparameters")).status == 200
    response = await client.get("/v1/demo/callparameters")
    assert response.status == 429
    assert int(response.headers["Retry-After"]) >= 1


def test_demo_config_needs_an_existing_realm() -> None:
    with pytest.raises(ConfigError, match=r"demo\.realm"):
        parse_config('[demo]\nenabled = true\nrealm = "nope"\ncallee = "desk"\naccount = "desk"\n')
    with pytest.raises(ConfigError, match=r"demo\.callee"):
        parse_config(
            '[[realms]]\nname = "r"\nkey_file = "/k"\n[demo]\nenabled = true\nrealm = "r"\n'
            'account = "desk"\n'
        )
    assert parse_config('[demo]\nrealm = "nope"\n').demo.enabled is False
