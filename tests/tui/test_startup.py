"""Start-up stays light: before its first frame the TUI loads and builds what that frame shows
and nothing more. The figures are measured by benchmarks/tui.py (never asserted here); these
tests keep the structure that gives them."""

from __future__ import annotations

import gc
import json
import subprocess
import sys

from softphone.server.runner import RunningServer
from tests.tui.conftest import app_for, until

# Needed only after the first paint: the engine and media stack (the start-up worker loads
# them), the modal screens (opened by a key), the engine's event handling and words.
LATER = (
    "aiortc",
    "av",
    "numpy",
    "aiohttp",
    "softphone.engine",
    "softphone.embedded",
    "softphone.tui.screens",
    "softphone.tui.engine_events",
    "softphone.tui.presenter",
    "softphone.tui.bridge",
)


def test_the_first_frame_imports_nothing_that_comes_later() -> None:
    # What the `softphone` command imports before the app paints: softphone.cli, then the app.
    code = (
        "import json, sys; import softphone.cli, softphone.tui.app; "
        "print(json.dumps(sorted(sys.modules)))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded = set(json.loads(done.stdout))
    assert [m for m in LATER if m in loaded] == []


async def test_the_main_screen_builds_no_hidden_widgets_and_no_unused_css(
    server: RunningServer,
) -> None:
    app = app_for(server)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        # Textual's whole Button stylesheet (flat, ANSI, every variant) is not parsed: the
        # main screen's buttons carry the rules they use (widgets/button.py).
        assert "Button.DEFAULT_CSS" not in {name for _, name in app.stylesheet.source}
        # The incoming-call pane is hidden until a call rings: its content comes then.
        assert not app.incoming_pane.display
        assert not app.incoming_pane.children


async def test_the_collector_held_off_for_start_up_is_back_after_the_first_frame(
    server: RunningServer,
) -> None:
    gc.disable()  # as `softphone` (cli.cmd_tui) does before it imports and builds the app
    try:
        app = app_for(server)
        async with app.run_test(size=(80, 24)) as pilot:
            await until(pilot, gc.isenabled, timeout=5, what="the collector on again")
    finally:
        gc.enable()
        gc.unfreeze()  # this test process goes on: let its objects be collected again
