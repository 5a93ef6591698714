"""The headless packages must import without media, engine or UI libraries.

import-linter checks the static import graph; this checks what really gets imported at run time,
which also catches imports hidden inside functions or pulled in by third-party packages.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

FORBIDDEN = ("aiortc", "av", "sounddevice", "textual", "rich", "numpy", "cv2")


@pytest.mark.parametrize(
    "module", ["softphone.protocol", "softphone.server.app", "softphone.config", "softphone.cli"]
)
def test_headless_imports(module: str) -> None:
    code = (
        f"import sys, json, {module}; "
        f"print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in "
        f"{FORBIDDEN!r})))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert json.loads(out) == []


def test_protocol_needs_only_msgspec() -> None:
    # Compare with a bare interpreter, whose site hooks (editable installs) are not ours.
    code = (
        "import sys, json; before = {m.split('.')[0] for m in sys.modules}; "
        "import softphone.protocol.frames; "
        "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules} - before)))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    # msgspec itself imports typing_extensions when it is installed.
    allowed = {"softphone", "msgspec", "typing_extensions"}
    third_party = set(json.loads(out)) - set(sys.stdlib_module_names) - allowed
    assert third_party == set()
