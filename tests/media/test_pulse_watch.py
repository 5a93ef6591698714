"""The sound server's devices are watched: a null sink loaded (as a USB headset appears) or
unloaded on a private PulseAudio is reported once per change, by description, with no rescan."""

from __future__ import annotations

import queue
import threading
import time

import pytest

from softphone.media.pulse import PulseDevice
from softphone.media.pulse_watch import PulseWatch
from tests.media.conftest import Pulse

Reports = queue.Queue[tuple[PulseDevice, ...]]


def descriptions(devices: tuple[PulseDevice, ...]) -> set[str]:
    return {d.description for d in devices}


def next_report(reports: Reports, timeout: float = 10) -> tuple[PulseDevice, ...]:
    return reports.get(timeout=timeout)


def test_a_sink_plugged_in_and_out_is_reported(pulse: Pulse) -> None:
    reports: Reports = queue.Queue()
    watch = PulseWatch(reports.put)
    watch.start()
    try:
        baseline = next_report(reports)
        assert {"VSpk", "VFar", "VMic"} <= descriptions(baseline), baseline
        module = pulse.pactl(
            "load-module", "module-null-sink", "sink_name=usbhs",
            "sink_properties=device.description=USB-Headset",
        ).strip()  # fmt: skip
        plugged = next_report(reports)
        assert descriptions(plugged) - descriptions(baseline) == {"USB-Headset"}
        headset = next(d for d in plugged if d.description == "USB-Headset")
        assert headset.kind == "output" and headset.name == "usbhs"
        # A volume change is an event too, but nothing listed changed: no report.
        pulse.pactl("set-sink-volume", "usbhs", "50%")
        pulse.pactl("unload-module", module)
        unplugged = next_report(reports)
        assert descriptions(unplugged) == descriptions(baseline)
        assert reports.empty()
        assert watch.running and watch.problem == ""
    finally:
        watch.stop()
    assert not watch.running


def test_no_server_watches_nothing_and_leaves_no_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PULSE_SERVER", "unix:/nonexistent/pulse/native")
    before = {t.name for t in threading.enumerate()}
    reports: Reports = queue.Queue()
    watch = PulseWatch(reports.put)
    watch.start()
    deadline = time.monotonic() + 5
    while watch.running and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not watch.running and "no PulseAudio" in watch.problem, watch.problem
    assert reports.empty()
    watch.stop()
    assert "softphone-pulse-watch" not in {t.name for t in threading.enumerate()} - before
