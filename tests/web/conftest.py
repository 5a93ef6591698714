"""Browser tests of the demo pages: headless Chromium (Debian's) driven by Playwright.

Design (keeping every packet on this machine):

- Each test starts a real server in-process on 127.0.0.1 (port 0) and a headless Chromium via
  Playwright's async API (`executable_path=/usr/bin/chromium`; never `playwright install`). One
  browser per test with one context per user: contexts share nothing (cookies, storage), and
  Playwright gives each launched browser a fresh temporary user-data-dir.
- As root, the whole of tests/web runs in a private network namespace that has only `lo`: the
  outer pytest replaces each collected web test by a proxy item; the first proxy re-runs the
  selected web tests in ONE child pytest under `unshare -n sh -c 'ip link set lo up; exec ...'`
  (environment SOFTPHONE_WEB_NETNS=1) and each proxy reports its test's result from the child's
  JUnit XML. Server and browser therefore share that namespace: the browser reaches the server on
  127.0.0.1, and nothing else (background traffic, STUN) can leave the machine.
- Not root: no namespace can be made, so the tests run directly (on the host's loopback).
- Chromium missing: a failure under CI (CI=true), a skip with the reason otherwise.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from softphone.config import Config, parse_config
from softphone.server.runner import RunningServer, start_server
from softphone.server.services import SERVICES
from softphone.server.tokens import generate_key
from tests.conftest import seed_users

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
NETNS_ENV = "SOFTPHONE_WEB_NETNS"
IN_NETNS = os.environ.get(NETNS_ENV) == "1"
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


def _wants_netns() -> bool:
    return not IN_NETNS and os.geteuid() == 0


# ------------------------------------------------------------------- the namespace proxy


class _ChildRun:
    """One child pytest in a fresh network namespace for every selected web test."""

    def __init__(self) -> None:
        self.results: dict[str, tuple[str, str]] | None = None
        self.output = ""

    def run(self, nodeids: list[str]) -> dict[str, tuple[str, str]]:
        if self.results is not None:
            return self.results
        with tempfile.TemporaryDirectory(prefix="softphone-web-") as tmp:
            xml = Path(tmp) / "junit.xml"
            command = [
                "unshare",
                "-n",
                "sh",
                "-c",
                'ip link set lo up && exec "$@"',
                "sh",
                sys.executable,
                "-m",
                "pytest",
                *nodeids,
                "-q",
                "-p",
                "no:cacheprovider",
                f"--junitxml={xml}",
                "-o",
                "junit_family=xunit2",
            ]
            env = dict(os.environ, **{NETNS_ENV: "1"})
            try:
                done = subprocess.run(
                    command,
                    cwd=ROOT,
                    env=env,
                    capture_output=True,
                    text=True,
                    timeout=CHILD_TIMEOUT,
                    check=False,
                )
                self.output = (done.stdout + done.stderr)[-8000:]
            except subprocess.TimeoutExpired as exc:
                self.output = f"the namespaced child pytest timed out after {exc.timeout} s"
            self.results = _parse_junit(xml) if xml.exists() else {}
        return self.results


def _parse_junit(path: Path) -> dict[str, tuple[str, str]]:
    """{"<classname>::<name>": (outcome, text)} with outcome passed, failed or skipped."""
    results = {}
    for case in ET.parse(path).getroot().iter("testcase"):
        key = f"{case.get('classname')}::{case.get('name')}"
        outcome, text = "passed", ""
        for child in case:
            if child.tag in ("failure", "error"):
                outcome = "failed"
                text = (child.get("message") or "") + "\n" + (child.text or "")
            elif child.tag == "skipped":
                outcome, text = "skipped", child.get("message") or ""
        results[key] = (outcome, text)
    return results


def _junit_key(nodeid: str) -> str:
    path, _, rest = nodeid.partition("::")
    parts = rest.split("::")
    classname = ".".join([path.removesuffix(".py").replace("/", "."), *parts[:-1]])
    return f"{classname}::{parts[-1]}"


class NetnsProxy(pytest.Item):
    """Stands for one web test; its result comes from the namespaced child run."""

    child: _ChildRun

    def __init__(self, *, original_nodeid: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.original_nodeid = original_nodeid

    def runtest(self) -> None:
        reason = chromium_missing()
        if reason is not None and os.environ.get("CI") != "true":
            pytest.skip(reason)
        nodeids = [i.original_nodeid for i in self.session.items if isinstance(i, NetnsProxy)]
        results = self.child.run(nodeids)
        outcome, text = results.get(
            _junit_key(self.original_nodeid),
            ("failed", f"no result from the namespaced run; its output:\n{self.child.output}"),
        )
        if outcome == "failed":
            pytest.fail(text, pytrace=False)
        if outcome == "skipped":
            pytest.skip(text)

    def reportinfo(self) -> tuple[Path, int | None, str]:
        return self.path, None, f"{self.name} (in a private network namespace)"


def pytest_collection_modifyitems(
    session: pytest.Session, config: pytest.Config, items: list[pytest.Item]
) -> None:
    if not _wants_netns():
        return
    child = _ChildRun()
    for index, item in enumerate(items):
        if HERE not in item.path.parents or item.parent is None:
            continue
        proxy = NetnsProxy.from_parent(item.parent, name=item.name, original_nodeid=item.nodeid)
        proxy.child = child
        proxy.own_markers = list(item.own_markers)
        items[index] = proxy


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
