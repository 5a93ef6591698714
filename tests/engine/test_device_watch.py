"""Devices plugged in and out while the engine runs (a private PulseAudio, tests/media/conftest.py
`pulse`): a null sink loaded is a media:deviceListChange naming it, unloading it another; the
speaker of a live call unplugged moves the call to the default speaker, says so, and the call
goes on with the far end heard there."""

from __future__ import annotations

import asyncio
import threading

from softphone.engine import CallState
from softphone.engine.events import CallReceive, DevicesChanged, MediaDeviceChange, MediaError
from softphone.media.analysis import dominant_frequency
from softphone.server.runner import RunningServer
from tests.engine.conftest import Parties
from tests.media.conftest import Pulse, pulse, record  # noqa: F401 (the fixture)

RATE = 48000


def load_sink(server: Pulse, name: str, description: str) -> str:
    """A null sink, as a USB headset appears; returns its module's index."""
    return server.pactl(
        "load-module", "module-null-sink", f"sink_name={name}",
        f"sink_properties=device.description={description}",
    ).strip()  # fmt: skip


async def until(condition: object, what: str, timeout: float = 10) -> None:
    assert callable(condition)
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, f"timed out: {what}"
        await asyncio.sleep(0.05)


async def test_a_sink_plugged_in_and_out_is_an_event(
    pulse: Pulse,  # noqa: F811
    parties: Parties,
) -> None:
    alice = parties.make(audio_out="null")
    await until(lambda: alice.engine.watching_devices, "the watch")
    load_sink(pulse, "usbhs", "USB-Headset")
    plugged = await alice.events.wait(DevicesChanged)
    assert [d.name for d in plugged.added] == ["USB-Headset"], plugged.added
    assert plugged.added[0].spec == "pulse:USB-Headset" and plugged.added[0].max_output_channels
    assert not plugged.removed and not plugged.lost
    assert "pulse:USB-Headset" in [d.spec for d in plugged.devices.outputs]
    listed = await alice.engine.list_devices()
    assert "pulse:USB-Headset" in [d.spec for d in listed.outputs]
    module = pulse.pactl("list", "short", "modules").splitlines()
    index = next(line.split()[0] for line in module if "sink_name=usbhs" in line)
    pulse.pactl("unload-module", index)
    unplugged = await alice.events.wait(DevicesChanged, lambda e: bool(e.removed))
    assert [d.name for d in unplugged.removed] == ["USB-Headset"] and not unplugged.added
    assert "pulse:USB-Headset" not in [d.spec for d in unplugged.devices.outputs]
    # Not in use: nothing moved, nothing to complain about.
    assert not [e for e in alice.events.events if isinstance(e, MediaError | MediaDeviceChange)]
    await alice.engine.stop()
    assert not alice.engine.watching_devices
    assert "softphone-pulse-watch" not in {t.name for t in threading.enumerate()}


async def test_no_watch_when_switched_off(pulse: Pulse, parties: Parties) -> None:  # noqa: F811
    alice = parties.make(audio_out="null", watch_devices=False)
    load_sink(pulse, "usbhs", "USB-Headset")
    await asyncio.sleep(1.0)
    assert not alice.engine.watching_devices
    assert not [e for e in alice.events.events if isinstance(e, DevicesChanged)]


async def test_the_speaker_of_a_call_unplugged_moves_it_to_the_default(
    pulse: Pulse,  # noqa: F811
    server: RunningServer,
    parties: Parties,
) -> None:
    module = load_sink(pulse, "headset", "Headset")
    alice = await parties.online(
        server, "alice", audio_out="pulse:Headset", echo_cancellation="off"
    )
    bob = await parties.online(server, "bob", audio_in="tone:440", watch_devices=False)
    await until(lambda: alice.engine.watching_devices, "the watch")
    call_id = await bob.engine.make("alice")
    incoming = await alice.events.wait(CallReceive)
    await alice.engine.answer(incoming.call_id)
    await alice.events.state(incoming.call_id, CallState.CONNECTED)
    await asyncio.sleep(2.5)  # the ALSA pulse plugin starts output ~1.7 s late
    on_headset = await asyncio.to_thread(record, pulse, "headset.monitor", 4.0)
    assert len(on_headset) > RATE // 2 and abs(dominant_frequency(on_headset) - 440) < 10

    pulse.pactl("unload-module", module)
    said = await alice.events.wait(MediaError, lambda e: e.device == "audio_out")
    assert said.error.message == (
        "Speaker 'Headset' was unplugged: playing on the default speaker"
    ), said.error.message
    moved = await alice.events.wait(MediaDeviceChange)
    assert moved.spec == "default" and moved.unplugged == "Headset"
    assert moved.call_ids == (incoming.call_id,)
    listed = await alice.events.wait(DevicesChanged)
    assert [d.name for d in listed.lost] == ["Headset"] and listed.devices.audio_out == "default"
    assert alice.engine.audio_out == "default"
    # The call goes on, and bob is heard on the default speaker (VSpk) now.
    await asyncio.sleep(2.5)
    on_default = await asyncio.to_thread(record, pulse, "vspk.monitor", 4.0)
    assert len(on_default) > RATE // 2 and abs(dominant_frequency(on_default) - 440) < 10
    assert alice.engine.get(incoming.call_id).state == CallState.CONNECTED
    await bob.engine.end(call_id)


async def test_the_microphone_in_use_unplugged_moves_to_the_default(
    pulse: Pulse,  # noqa: F811
    parties: Parties,
) -> None:
    module = pulse.pactl(
        "load-module", "module-remap-source", "master=vfar.monitor", "source_name=usbmic",
        "source_properties=device.description=USB-Mic",
    ).strip()  # fmt: skip
    alice = parties.make(audio_in="pulse:USB-Mic", audio_out="null")
    await until(lambda: alice.engine.watching_devices, "the watch")
    pulse.pactl("unload-module", module)
    said = await alice.events.wait(MediaError, lambda e: e.device == "audio_in")
    assert said.error.message == (
        "Microphone 'USB-Mic' was unplugged: using the default microphone"
    ), said.error.message
    listed = await alice.events.wait(DevicesChanged)
    assert [d.name for d in listed.lost] == ["USB-Mic"] and listed.lost[0].max_input_channels
    assert alice.engine.audio_in == "default" and listed.devices.audio_in == "default"
