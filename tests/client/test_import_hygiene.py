"""softphone.client is headless: importing it pulls in no media, engine or UI library, and
no server or config code (it talks the protocol, nothing else)."""

from __future__ import annotations

import json
import subprocess
import sys

FORBIDDEN = ("aiortc", "av", "sounddevice", "textual", "rich", "numpy", "cv2", "websockets")


def test_client_imports_no_media_ui_or_server() -> None:
    code = (
        "import sys, json, softphone.client; "
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in "
        f"{FORBIDDEN!r} or m.startswith(('softphone.server', 'softphone.config', "
        "'softphone.engine', 'softphone.media', 'softphone.tui')))))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert json.loads(out) == []
