"""What the interop tests need from the machine, and failing (CI) or skipping when it is missing."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
FIREFOX = "/usr/bin/firefox-esr"
NODE_MODULES = HERE / "node_modules"
SYSTEM_PYTHON = "/usr/bin/python3"  # Debian's, with python3-gi (the venv has no gi)
INSTALL = "scripts/install.sh --test (as root)"


def firefox_missing() -> str | None:
    if not Path(FIREFOX).exists():
        return f"{FIREFOX} is not installed ({INSTALL})"
    if shutil.which("node") is None:
        return f"node is not installed ({INSTALL})"
    if not (NODE_MODULES / "puppeteer-core").is_dir():
        return f"puppeteer-core is not in {NODE_MODULES} ({INSTALL})"
    return None


def webrtcbin_missing() -> str | None:
    import subprocess

    probe = (
        "import gi; gi.require_version('Gst', '1.0'); gi.require_version('Nice', '0.1');"
        "gi.require_version('GstWebRTC', '1.0'); from gi.repository import Gst, Nice;"
        "Gst.init(None); import sys;"
        "sys.exit(0 if all(Gst.ElementFactory.find(e) for e in "
        "('webrtcbin', 'nicesrc', 'opusenc', 'opusdec', 'rtpopusdepay', 'audiotestsrc')) else 3)"
    )
    if not Path(SYSTEM_PYTHON).exists():
        return f"{SYSTEM_PYTHON} is missing ({INSTALL})"
    done = subprocess.run([SYSTEM_PYTHON, "-c", probe], capture_output=True, check=False)
    if done.returncode != 0:
        return f"GStreamer webrtcbin with python3-gi is not installed ({INSTALL})"
    return None


def turnserver_missing() -> str | None:
    if shutil.which("turnserver") is None:
        return f"coturn's turnserver is not installed ({INSTALL})"
    return None


def require(reason: str | None) -> None:
    """Nothing missing: return. Missing: a failure under CI (CI=true), else a skip."""
    if reason is None:
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"interop tests cannot run in CI: {reason}", pytrace=False)
    pytest.skip(reason)
