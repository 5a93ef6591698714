"""Browser tests of the demo pages: headless Chromium (Debian's) driven by Playwright.

Design (keeping every packet on this machine):

- Each test starts a real server in-process on 127.0.0.1 (port 0) and a headless Chromium via
  Playwright's async API (`executable_path=/usr/bin/chromium`; never `playwright install`). One
  browser per test with one context per user: contexts share nothing (cookies, storage), and
  Playwright gives each launched browser a fresh temporary user-data-dir.
- As root, the whole of tests/web runs in a private network namespace that has only `lo`: the
  outer pytest replaces each collected web test by a proxy item; the first proxy re-runs the
  selected web tests in ONE child pytest under `unshare -n sh -c 'ip link set lo up; exec ...'`
  (tests/netns.py) and each proxy reports its test's result from the child's
  JUnit XML. Server and browser therefore share that namespace: the browser reaches the server on
  127.0.0.1, and nothing else (background traffic, STUN) can leave the machine.
- Not root: no namespace can be made, so the tests run directly (on the host's loopback).
- Chromium missing: a failure under CI (CI=true), a skip with the reason otherwise.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from softphone.config import Config, parse_config
from softphone.server.runner import RunningServer, start_server
from softphone.server.services import SERVICES
from softphone.server.tokens import generate_key
from tests.conftest import seed_users
from tests.netns import Namespace, proxy_items

HERE = Path(__file__).resolve().parent
CHROMIUM = "/usr/bin/chromium"
CHILD_TIMEOUT = 300.0
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--use-fake-device-for-media-stream",
    "--use-fake-ui-for-media-stream",
    "--allow-loopback-in-peer-connection",
    "--disable-features=WebRtcHideLocalIpsWithMdns",
    "--autoplay-policy=no-user-gesture-required",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-gpu",
    "--disable-quic",
]


# The engine interop test needs the engine package (it lands separately from the pages).
collect_ignore = [] if importlib.util.find_spec("softphone.engine") else ["test_engine_interop.py"]


def chromium_missing() -> str | None:
    """Why the browser tests cannot run here, or None."""
    if not Path(CHROMIUM).exists():
        return f"{CHROMIUM} is not installed (apt-get install chromium; scripts/install.sh --test)"
    try:
        import playwright  # noqa: F401
    except ImportError:
        return "the playwright package is not installed (pip install -e '.[test]')"
    return None


def require_chromium() -> None:
    reason = chromium_missing()
    if reason is None:
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"browser tests cannot run in CI: {reason}", pytrace=False)
    pytest.skip(reason)


def _skip_without_chromium() -> None:
    reason = chromium_missing()
    if reason is not None and os.environ.get("CI") != "true":
        pytest.skip(reason)


NAMESPACE = Namespace(HERE, timeout=CHILD_TIMEOUT, precheck=_skip_without_chromium)


def pytest_collection_modifyitems(
    session: pytest.Session, config: pytest.Config, items: list[pytest.Item]
) -> None:
    proxy_items(items, NAMESPACE)


# ------------------------------------------------------------------- fixtures (in the child)

REALM = "webdemo"


@pytest.fixture
def web_config(tmp_path: Path) -> Config:
    key_file = tmp_path / "demo.key"
    key_file.write_text(generate_key("v2") + "\n")
    return parse_config(f"""
[server]
data_dir = "{tmp_path}"
ring_timeout = 30
resume_window = 5
[rate_limits]
login_per_minute = 1000
anonymous_per_minute = 1000
[[realms]]
name = "{REALM}"
format = "v2"
key_file = "{key_file}"
[demo]
enabled = true
realm = "{REALM}"
caller = "guest@example.org"
callee = "desk"
account = "desk"
""")


@pytest.fixture
async def web_server(web_config: Config) -> AsyncIterator[RunningServer]:
    server = await start_server(web_config, host="127.0.0.1", port=0)
    seed_users(server.app[SERVICES].store)
    yield server
    await server.stop()


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    require_chromium()
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        launched = await pw.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=FLAGS, timeout=30_000
        )
        try:
            yield launched
        finally:
            await launched.close()
