"""`softphone devices` lists what PortAudio and V4L2 see, and never fails for lack of them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.media.conftest import Pulse


def devices(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "softphone", "devices"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )


def test_devices_without_a_sound_server(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PULSE")}
    env.update(HOME=str(tmp_path), XDG_RUNTIME_DIR=str(tmp_path))
    result = devices(env)
    assert result.returncode == 0, result.stderr
    assert "Audio" in result.stdout and "Video:" in result.stdout
    assert "none: PortAudio found no audio devices" in result.stdout
    assert "Calls still work" in result.stdout
    assert "Traceback" not in result.stderr


def test_devices_lists_the_virtual_sound_card(pulse: Pulse) -> None:
    result = devices(dict(os.environ, **pulse.env))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    names = [line.split()[1] for line in lines if line[:6].strip().isdigit()]
    assert "pulse" in names and "default" in names, result.stdout
    assert any("default input" in line and "default output" in line for line in lines)
