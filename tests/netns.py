"""Running a test directory in a private network namespace (as root): tests/web and tests/interop.

The outer pytest replaces each collected test of the directory by a proxy item; the first proxy
runs the directory's selected tests in ONE child pytest under `unshare -n`, where the only
interface is `lo`, and each proxy reports its test's result from the child's JUnit XML. So the
engines, the server and the browsers (and webrtcbin, coturn) share a namespace where nothing can
leave the machine. Not root: no namespace can be made, and the tests run directly.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
NETNS_ENV = "SOFTPHONE_NETNS"  # set in the child: it runs its tests directly
IN_NETNS = os.environ.get(NETNS_ENV) == "1"
LOOPBACK_UP = "ip link set lo up"
# Firefox gathers no candidates without a default route.
DEFAULT_ROUTE = "ip route add default dev lo src 127.0.0.1"


def wants_netns() -> bool:
    return not IN_NETNS and os.geteuid() == 0


@dataclass
class Namespace:
    """How one directory's tests run namespaced: the set-up commands before the child pytest,
    how long the child may take, and a check each proxy makes first (e.g. skip without the
    browser outside CI)."""

    directory: Path
    setup: tuple[str, ...] = (LOOPBACK_UP,)
    timeout: float = 300.0
    precheck: Callable[[], None] = lambda: None


class ChildRun:
    """One child pytest in a fresh network namespace for every selected test of a directory."""

    def __init__(self, namespace: Namespace) -> None:
        self.namespace = namespace
        self.results: dict[str, tuple[str, str]] | None = None
        self.output = ""

    def run(self, nodeids: list[str]) -> dict[str, tuple[str, str]]:
        if self.results is not None:
            return self.results
        ns = self.namespace
        with tempfile.TemporaryDirectory(prefix=f"softphone-{ns.directory.name}-") as tmp:
            xml = Path(tmp) / "junit.xml"
            script = " && ".join([*ns.setup, 'exec "$@"'])
            command = [
                "unshare", "-n", "sh", "-c", script, "sh",
                sys.executable, "-m", "pytest", *nodeids, "-q", "-p", "no:cacheprovider",
                f"--junitxml={xml}", "-o", "junit_family=xunit2",
            ]  # fmt: skip
            env = dict(os.environ, **{NETNS_ENV: "1"})
            try:
                done = subprocess.run(
                    command, cwd=ROOT, env=env, capture_output=True, text=True,
                    timeout=ns.timeout, check=False,
                )  # fmt: skip
                self.output = (done.stdout + done.stderr)[-8000:]
            except subprocess.TimeoutExpired as exc:
                self.output = f"the namespaced child pytest timed out after {exc.timeout} s"
            self.results = parse_junit(xml) if xml.exists() else {}
        return self.results


def parse_junit(path: Path) -> dict[str, tuple[str, str]]:
    """{"<classname>::<name>": (outcome, text)}; outcome passed, failed, skipped or xfailed."""
    results = {}
    for case in ET.parse(path).getroot().iter("testcase"):
        key = f"{case.get('classname')}::{case.get('name')}"
        outcome, text = "passed", ""
        for child in case:
            if child.tag in ("failure", "error"):
                outcome = "failed"
                text = (child.get("message") or "") + "\n" + (child.text or "")
            elif child.tag == "skipped":
                # pytest's JUnit writer reports an xfail as skipped with type pytest.xfail.
                xfailed = child.get("type") == "pytest.xfail"
                outcome = "xfailed" if xfailed else "skipped"
                text = child.get("message") or ""
        results[key] = (outcome, text)
    return results


def junit_key(nodeid: str) -> str:
    path, _, rest = nodeid.partition("::")
    parts = rest.split("::")
    classname = ".".join([path.removesuffix(".py").replace("/", "."), *parts[:-1]])
    return f"{classname}::{parts[-1]}"


class NetnsProxy(pytest.Item):
    """Stands for one test; its result comes from its directory's namespaced child run."""

    child: ChildRun

    def __init__(self, *, original_nodeid: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.original_nodeid = original_nodeid

    def runtest(self) -> None:
        self.child.namespace.precheck()
        nodeids = [
            i.original_nodeid
            for i in self.session.items
            if isinstance(i, NetnsProxy) and i.child is self.child
        ]
        results = self.child.run(nodeids)
        outcome, text = results.get(
            junit_key(self.original_nodeid),
            ("failed", f"no result from the namespaced run; its output:\n{self.child.output}"),
        )
        if outcome == "failed":
            pytest.fail(text, pytrace=False)
        if outcome == "xfailed":
            # The child already applied the strict xfail: report it as the xfail it was.
            pytest.xfail(text)
        if outcome == "skipped":
            pytest.skip(text)

    def reportinfo(self) -> tuple[Path, int | None, str]:
        return self.path, None, f"{self.name} (in a private network namespace)"


def proxy_items(items: list[pytest.Item], namespace: Namespace) -> None:
    """Replace the tests of `namespace.directory` among `items` by proxies sharing one child
    run (nothing, unless running as root outside a namespace)."""
    if not wants_netns():
        return
    child = ChildRun(namespace)
    for index, item in enumerate(items):
        if namespace.directory not in item.path.parents or item.parent is None:
            continue
        proxy = NetnsProxy.from_parent(item.parent, name=item.name, original_nodeid=item.nodeid)
        proxy.child = child
        # Not the xfail marks: the child applies them; the proxy reports what it found.
        proxy.own_markers = [m for m in item.own_markers if m.name != "xfail"]
        items[index] = proxy
