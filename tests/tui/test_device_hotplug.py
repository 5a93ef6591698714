"""Devices plugged in and out while the TUI runs (a private PulseAudio with null sinks,
tests/media/conftest.py `pulse`): the open Devices screen lists a new sink by its description
and drops it when it goes, Messages says so once per change, and a speaker in use that is
unplugged moves to the default one, said once, with the status line following."""

from __future__ import annotations

from textual.widgets import OptionList

from softphone.server.runner import RunningServer
from softphone.tui.app import SoftphoneApp
from softphone.tui.devices_screen import DevicesScreen
from softphone.tui.options import TuiOptions
from tests.media.conftest import Pulse, pulse  # noqa: F401 (the fixture)
from tests.server.harness import PASSWORD
from tests.tui.conftest import FAST, until
from tests.tui.test_app import SIZE


def app_with(server: RunningServer, audio_out: str) -> SoftphoneApp:
    return SoftphoneApp(
        TuiOptions(
            server_url=server.url,
            user="alice",
            password=PASSWORD,
            engine_options={"audio_in": "tone", "audio_out": audio_out},
            client_options={"backoff": FAST},
        )
    )


def speakers(app: SoftphoneApp) -> list[str]:
    """The option ids of the open Devices screen's speaker list."""
    if not isinstance(app.screen, DevicesScreen):
        return []
    found = app.screen.query(OptionList).filter("#audio_out")
    if not found:
        return []  # being recomposed
    options = found.first(OptionList)
    return [str(options.get_option_at_index(i).id) for i in range(options.option_count)]


def said(app: SoftphoneApp, text: str) -> int:
    return sum(1 for line in app.log_pane.lines_text if text in line)


def watching(app: SoftphoneApp) -> bool:
    return app.engine is not None and app.engine.engine.watching_devices


async def test_the_devices_screen_follows_a_sink_plugged_in_and_out(
    pulse: Pulse,  # noqa: F811
    server: RunningServer,
) -> None:
    app = app_with(server, "null")
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: watching(app), what="the device watch")
        app.action_devices()
        await until(pilot, lambda: "pulse:VFar" in speakers(app), what="the Devices screen")
        module = pulse.pactl(
            "load-module", "module-null-sink", "sink_name=usbhs",
            "sink_properties=device.description=USB-Headset",
        ).strip()  # fmt: skip
        await until(pilot, lambda: "pulse:USB-Headset" in speakers(app), what="listed")
        await until(pilot, lambda: said(app, "Speaker 'USB-Headset' plugged in") > 0)
        assert isinstance(app.screen, DevicesScreen)  # still open, with focus on a list
        pulse.pactl("unload-module", module)
        await until(pilot, lambda: "pulse:USB-Headset" not in speakers(app), what="dropped")
        await until(pilot, lambda: said(app, "Speaker 'USB-Headset' unplugged") > 0)
        await pilot.pause(0.5)
        assert said(app, "Speaker 'USB-Headset' plugged in") == 1
        assert said(app, "Speaker 'USB-Headset' unplugged") == 1
        assert "pulse:VFar" in speakers(app)


async def test_the_speaker_in_use_unplugged_is_said_once(
    pulse: Pulse,  # noqa: F811
    server: RunningServer,
) -> None:
    module = pulse.pactl(
        "load-module", "module-null-sink", "sink_name=headset",
        "sink_properties=device.description=Headset",
    ).strip()  # fmt: skip
    app = app_with(server, "pulse:Headset")
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: watching(app), what="the device watch")
        await until(pilot, lambda: "spk Headset" in app.status.plain, what="the status line")
        pulse.pactl("unload-module", module)
        text = "Speaker 'Headset' was unplugged: playing on the default speaker"
        await until(pilot, lambda: said(app, text) > 0, what="the unplug said")
        await until(pilot, lambda: "spk default" in app.status.plain, what="status follows")
        await pilot.pause(0.5)
        assert said(app, text) == 1
        assert said(app, "Speaker 'Headset' unplugged") == 0  # not twice
        assert said(app, "Speaker: now") == 0
