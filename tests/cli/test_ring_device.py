"""A bad ring device (--ring-device, [client] ring_device) stops `softphone` before the TUI,
with one line naming where it came from and what is valid; config mistakes name file:line."""

from __future__ import annotations

from pathlib import Path

import pytest

from softphone.config import ConfigError, parse_config
from tests.cli.test_cli import run


@pytest.mark.parametrize(
    ("args", "config", "message"),
    [
        (["--ring-device", "tone"], "", '--ring-device tone: must be "" (the speaker\'s device)'),
        (
            ["--ring-device", "no such speaker"],
            "",
            "--ring-device no such speaker: No usable audio output device 'no such speaker'",
        ),
        (["--ring-device", "no such speaker"], "", "; or none, null, wav:PATH"),
        (
            ["--ring-device", "wav:/nonexistent/dir/ring.wav"],
            "",
            "--ring-device wav:/nonexistent/dir/ring.wav: Cannot write WAV file",
        ),
        ([], '[client]\nring_device = "tone:440"\n', ":2: key 'client.ring_device': must be"),
        (
            [],
            '[client]\nring_device = "no such speaker"\n',
            "softphone: {config}:2: key 'client.ring_device' no such speaker: No usable audio "
            "output device 'no such speaker'",
        ),
        ([], '[client]\nring_sound = "bells"\n', ":2: key 'client.ring_sound': must be \"tone\""),
        (
            [],
            '[client]\nring_sound = "wav:/nonexistent/bell.wav"\n',
            "softphone: {config}:2: key 'client.ring_sound': Cannot read audio file "
            "'/nonexistent/bell.wav'",
        ),
    ],
)
def test_a_bad_ring_device_is_refused_before_the_tui(
    tmp_path: Path, args: list[str], config: str, message: str
) -> None:
    config_file = tmp_path / "softphone.toml"
    config_file.write_text(config)
    result = run("--config", str(config_file), *args, stdin="")
    assert result.returncode == 2, result.stderr
    assert message.format(config=config_file) in result.stderr
    assert "Traceback" not in result.stderr and "\x1b[" not in result.stdout


@pytest.mark.parametrize("spec", ["", "none", "null", "default", "pulse:Ring", "wav:/tmp/r.wav"])
def test_the_config_takes_every_ring_device_form(spec: str) -> None:
    assert parse_config(f'[client]\nring_device = "{spec}"\n').client.ring_device == spec


@pytest.mark.parametrize("spec", ["tone", "tone:425", " default", "pulse:", "wav:"])
def test_the_config_refuses_what_is_not_a_ring_device(spec: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(f'[client]\nring_device = "{spec}"\n', "site.toml")
    assert str(caught.value).startswith("site.toml:2: key 'client.ring_device': must be")
    assert '"none" (no ring tone)' in str(caught.value)
