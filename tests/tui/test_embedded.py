"""The embedded default: no server configured, the app starts one in-process with the echo
contact, says so, and a call to echo connects and echoes audio back."""

from __future__ import annotations

import re
from pathlib import Path

from softphone.engine import Call
from softphone.tui.app import SoftphoneApp
from softphone.tui.options import TuiOptions
from tests.tui.conftest import MEDIA, row_states, until
from tests.tui.test_app import SIZE, logged


def echo_call(app: SoftphoneApp) -> Call:
    return next(v.call for v in app.views.values() if v.call.remote_participant == "echo")


async def test_dial_echo_on_the_embedded_default(tmp_path: Path) -> None:
    app = SoftphoneApp(
        TuiOptions(embedded_data_dir=tmp_path / "embedded", engine_options=dict(MEDIA))
    )
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: app.engine is not None, what="the embedded server")
        assert logged(app, "Dial echo to test your audio and video.")
        assert "me @ embedded server" in app.status.plain
        await pilot.press(*"echo", "enter")  # the dial box has the focus at start
        await until(pilot, lambda: row_states(app).get("echo") == "in call", what="in call")
        await until(pilot, lambda: bool(echo_call(app).remote_tracks), what="audio")
        engine = app.engine
        assert engine is not None
        call_id = next(iter(app.views))
        # The echo sends our tone back: a real remote audio track, and packets arriving.
        await until(
            pilot,
            lambda: (engine.get_stats(call_id).get("audio") or {}).get("packets_received", 0) > 25,
            what="echoed audio packets",
        )
        # The status line's live numbers: a bitrate near Opus's, and jitter in milliseconds.
        await until(
            pilot,
            lambda: re.search(r"↓\d+ kb/s", app.status.plain) is not None,
            timeout=10,
            what="a bitrate both ways",
        )
        numbers = app.status.plain.split("\n")[1]
        kbps = float(re.search(r"↓(\d+) kb/s", numbers).group(1))  # type: ignore[union-attr]
        jitter_ms = float(re.search(r"jitter (\d+) ms", numbers).group(1))  # type: ignore[union-attr]
        assert 8 <= kbps <= 200, numbers
        assert jitter_ms < 100, numbers
        await pilot.press("e")
        await until(
            pilot, lambda: row_states(app).get("echo") in ("you hung up", None), what="ended"
        )
        await pilot.press("ctrl+q")
        await until(pilot, lambda: not app.is_running, what="exit")
    assert (tmp_path / "embedded" / "embedded-credentials.json").stat().st_mode & 0o777 == 0o600


async def test_anonymous_call_to_echo_on_the_embedded_default(tmp_path: Path) -> None:
    app = SoftphoneApp(
        TuiOptions(
            embedded_data_dir=tmp_path / "embedded",
            engine_options=dict(MEDIA),
            anonymous=True,
            anonymous_to="echo",
        )
    )
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: row_states(app).get("echo") == "in call", what="in call")
        assert logged(app, "Anonymous mode on")
