"""Devices plugged in and out while the engine runs: `media:deviceListChange`, and a call whose
device went away moved to the default one.

The sound server (PulseAudio, PipeWire's pulse server) is watched on a thread of its own
(`softphone.media.pulse_watch`), which settles bursts of events and reports the server's
devices only when they changed; the reports come to the engine's loop through
`call_soon_threadsafe` and are handled there one at a time, in order. Each is compared with
the previous one: the listing (`Devices.list_devices`) gives what came and went, and when the
microphone or speaker in use (a "pulse:..." spec) is among what went, `Devices.unplugged`
moves new and live calls to the default device. Without such a server nothing is watched
(PortAudio's own devices still need a rescan); `watching` says which.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Literal

from softphone.engine.devices import DeviceList, Devices
from softphone.engine.events import DevicesChanged, EngineEvent
from softphone.engine.sources import MediaSettings
from softphone.media.devices import AudioDevice
from softphone.media.pulse import PREFIX, PulseDevice, is_pulse
from softphone.media.pulse_watch import SETTLE, PulseWatch

log = logging.getLogger("softphone.engine")

Snapshot = tuple[PulseDevice, ...]


class DeviceWatch:
    """Watches for device changes from `start()` (on the engine's loop) to `stop()`."""

    def __init__(
        self,
        devices: Devices,
        media: MediaSettings,
        emit: Callable[[EngineEvent], None],
        settle: float = SETTLE,
    ) -> None:
        self._devices = devices
        self._media = media
        self._emit = emit
        self._settle = settle
        self._watch: PulseWatch | None = None
        self._task: asyncio.Task[None] | None = None
        self._reports: asyncio.Queue[Snapshot] | None = None
        self._snapshot: Snapshot | None = None  # the server's devices, last report
        self._listing: DeviceList | None = None  # the listing made then

    def start(self) -> None:
        """Start watching (idempotent); must run on the engine's loop."""
        if self._watch is not None:
            return
        loop = asyncio.get_running_loop()
        reports: asyncio.Queue[Snapshot] = asyncio.Queue()
        self._reports = reports
        self._snapshot = self._listing = None

        def from_thread(devices: Snapshot) -> None:
            with contextlib.suppress(RuntimeError):  # the loop is closing: nobody to tell
                loop.call_soon_threadsafe(reports.put_nowait, devices)

        self._task = loop.create_task(self._follow(reports), name="device watch")
        self._watch = PulseWatch(from_thread, settle=self._settle)
        self._watch.start()

    @property
    def watching(self) -> bool:
        """Changes are being reported: the sound server answered and its devices are known."""
        watch = self._watch
        return watch is not None and watch.running and self._listing is not None

    async def stop(self) -> None:
        """Stop the thread (waited for off the loop) and the follower; idempotent."""
        watch, self._watch = self._watch, None
        task, self._task = self._task, None
        if watch is not None:
            await asyncio.to_thread(watch.stop)
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _follow(self, reports: asyncio.Queue[Snapshot]) -> None:
        while True:
            snapshot = await reports.get()
            while not reports.empty():  # only the newest matters
                snapshot = reports.get_nowait()
            try:
                await self._changed(snapshot)
            except Exception:
                log.exception("handling a device change failed")

    async def _changed(self, now: Snapshot) -> None:
        before, self._snapshot = self._snapshot, now
        old = self._listing
        # A blocking read of PortAudio and the server (milliseconds), as list_devices does.
        listing = self._listing = self._devices.list_devices()
        if before is None or old is None:
            return  # the first report: what there is when the watch starts
        went = [d for d in before if (d.name, d.kind) not in {(n.name, n.kind) for n in now}]
        lost: list[AudioDevice] = []
        in_use: tuple[tuple[Literal["audio_in", "audio_out"], str, str], ...] = (
            ("audio_in", "input", self._media.audio_in),
            ("audio_out", "output", self._media.audio_out),
        )
        for kind, direction, spec in in_use:
            device = _named(spec, [d for d in went if d.kind == direction])
            if device is None:
                continue
            lost += [d for d in _devices(old) if d.spec == device.spec]
            await self._devices.unplugged(kind, device.description)
        if lost:
            listing = self._listing = self._devices.list_devices()
        added = _missing(listing, old)
        removed = _missing(old, listing)
        if not added and not removed and _devices(listing) == _devices(old):
            return
        log.info(
            "devices changed: added %s, removed %s",
            [d.name for d in added],
            [d.name for d in removed],
        )
        self._emit(DevicesChanged(listing, added, removed, tuple(lost)))


def _named(spec: str, devices: list[PulseDevice]) -> PulseDevice | None:
    """The device among `devices` a "pulse:..." spec names, as `pulse.resolve` matches."""
    if not is_pulse(spec):
        return None
    wanted = spec.strip().removeprefix(PREFIX)
    for found in (
        [d for d in devices if d.description == wanted],
        [d for d in devices if d.name == wanted],
        [d for d in devices if d.description.casefold() == wanted.casefold()],
    ):
        if found:
            return found[0]
    return None


def _devices(listing: DeviceList) -> tuple[AudioDevice, ...]:
    return tuple(dict.fromkeys(listing.inputs + listing.outputs))  # both ways: once


def _key(device: AudioDevice) -> tuple[str, bool, bool]:
    """What makes a device the same one in two listings (not its default flag)."""
    return device.choice, device.max_input_channels > 0, device.max_output_channels > 0


def _missing(listing: DeviceList, other: DeviceList) -> tuple[AudioDevice, ...]:
    """The devices of `listing` that `other` has not."""
    there = {_key(d) for d in _devices(other)}
    return tuple(d for d in _devices(listing) if _key(d) not in there)


__all__ = ["DeviceWatch"]
