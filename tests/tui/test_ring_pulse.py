"""Friction 6 on a real sound server: the ring tone goes to the ring device, not the speaker.

A private PulseAudio (tests/media/conftest.py `pulse`) with two more null sinks, "Ring" and
"Speaker"; alice's TUI rings on pulse:Ring and plays calls on pulse:Speaker. While bob's call
rings, Ring's monitor carries the cadence (both 440 and 480 Hz, whole 2 s bursts) and Speaker's
carries nothing; once alice answers, Ring goes quiet. (How soon the first ring sounds, and that
it is whole and clean, is measured by benchmarks/ring.py: parec's start is too loose for it.)"""

from __future__ import annotations

import asyncio

import numpy as np

from softphone.media.analysis import rms
from softphone.media.ring import FREQUENCIES, ON_SECONDS
from softphone.server.runner import RunningServer
from softphone.tui.app import SoftphoneApp
from softphone.tui.options import TuiOptions
from tests.media.conftest import Pulse, pulse, record  # noqa: F401 (the fixture)
from tests.server.harness import PASSWORD
from tests.tui.conftest import FAST, Far, row_states, until
from tests.tui.test_app import SIZE
from tests.tui.test_pulse import RATE
from tests.tui.test_ring_tone import strongest

BLOCK = RATE // 50  # 20 ms
QUIET = 100  # peak sample of a sink nothing plays into (null sinks give exact zeros)


def longest_burst(pcm: np.ndarray) -> np.ndarray:
    """The longest run of 20 ms blocks above -40 dBFS in `pcm` (empty if none)."""
    loud = [rms(pcm[i : i + BLOCK]) > 0.01 for i in range(0, pcm.size - BLOCK + 1, BLOCK)]
    best, start = (0, 0), None
    for i, hot in enumerate([*loud, False]):
        if hot and start is None:
            start = i
        elif not hot and start is not None:
            best = max(best, (start, i), key=lambda run: run[1] - run[0])
            start = None
    return pcm[best[0] * BLOCK : best[1] * BLOCK]


def recorders(server: Pulse) -> int:
    """How many streams record from the server's sources now."""
    return len(server.pactl("list", "short", "source-outputs").splitlines())


def add_sink(server: Pulse, name: str, description: str) -> None:
    server.pactl(
        "load-module",
        "module-null-sink",
        f"sink_name={name}",
        f"sink_properties=device.description={description}",
    )


async def test_the_ring_device_rings_and_the_speaker_does_not(
    pulse: Pulse,  # noqa: F811
    server: RunningServer,
    far: type[Far],
) -> None:
    add_sink(pulse, "ring", "Ring")
    add_sink(pulse, "speaker", "Speaker")
    app = SoftphoneApp(
        TuiOptions(
            server_url=server.url,
            user="alice",
            password=PASSWORD,
            ring_device="pulse:Ring",
            engine_options={
                "audio_in": "tone",
                "audio_out": "pulse:Speaker",
                "echo_cancellation": "off",
            },
            client_options={"backoff": FAST},
        )
    )
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: app.engine is not None, what="login")
        bob = far()
        await bob.start(server, "bob")
        # Both monitors are recorded from before the call (parec itself takes a while to
        # start), for long enough to hold a whole burst after the device's start.
        streams = recorders(pulse)
        recording = asyncio.gather(
            asyncio.to_thread(record, pulse, "ring.monitor", 16.0),
            asyncio.to_thread(record, pulse, "speaker.monitor", 16.0),
        )
        await until(pilot, lambda: recorders(pulse) >= streams + 2, what="parec recording")
        await bob.call(bob.thread.make, "alice")
        await until(pilot, lambda: app.incoming_pane.first is not None, what="incoming")
        on_ring, on_speaker = await recording
        assert on_ring.size > 4 * RATE and on_speaker.size > 4 * RATE
        assert np.abs(on_speaker.astype(np.int32)).max() < QUIET  # nothing on the speaker
        burst = longest_burst(on_ring)
        # A whole burst (less its faded edges and a block or two of the recording's own).
        assert burst.size >= (ON_SECONDS - 0.3) * RATE, f"a ring burst of {burst.size / RATE} s"
        assert sorted(round(f, -1) for f in strongest(burst, 2)) == list(FREQUENCIES)
        await pilot.press("a")
        await until(pilot, lambda: row_states(app).get("bob") == "in call", what="answered")
        after = await asyncio.to_thread(record, pulse, "ring.monitor", 6.0)
        assert after.size > RATE and np.abs(after.astype(np.int32)).max() < QUIET
