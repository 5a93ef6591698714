"""Audio sources and sinks for calls, and the spec strings that choose them.

Format everywhere: 48 kHz mono s16 in 20 ms (960-sample) blocks. The classes live in small
modules by concern; this module is the one the engine imports.
"""

from __future__ import annotations

import os
from typing import Literal

from softphone.media import pulse
from softphone.media.audio_device import DeviceSink, DeviceSource, check_device, device_name
from softphone.media.audio_file import WavSink, WavSource, read_audio_file
from softphone.media.audio_sink import AudioSink, MemorySink, NullSink, to_mono
from softphone.media.audio_source import AudioSource, SilenceSource, SourceStats, ToneSource
from softphone.media.audio_switch import SwitchableSource
from softphone.media.constants import BLOCK, SAMPLE_RATE
from softphone.media.errors import MediaUnavailable

__all__ = [
    "BLOCK",
    "SAMPLE_RATE",
    "AudioSink",
    "AudioSource",
    "DeviceSink",
    "DeviceSource",
    "MediaUnavailable",
    "MemorySink",
    "NullSink",
    "SilenceSource",
    "SourceStats",
    "SwitchableSource",
    "ToneSource",
    "WavSink",
    "WavSource",
    "check_sink",
    "check_source",
    "describe",
    "open_sink",
    "open_source",
    "read_audio_file",
    "to_mono",
]


def _device(spec: str) -> str | int | None:
    """ "default"/"device" -> PortAudio's default, digits -> an index, else a device name."""
    if spec in ("default", "device"):
        return None
    if spec.startswith("device:"):
        return _device(spec.removeprefix("device:") or "default")
    return int(spec) if spec.isdigit() else spec


def _pulse(spec: str, kind: Literal["input", "output"]) -> pulse.PulseDevice:
    """The device a "pulse:DESCRIPTION" spec names, or MediaUnavailable naming the ones there
    are."""
    try:
        return pulse.resolve(spec, kind)
    except ValueError as exc:
        raise MediaUnavailable(f"{str(exc)[0].upper()}{str(exc)[1:]}.") from None


def _file(spec: str) -> str | None:
    """The path of a file spec: "wav:PATH" (any format FFmpeg reads) or a path ending .wav."""
    if spec.startswith("wav:"):
        return spec.removeprefix("wav:")
    return spec if spec.lower().endswith(".wav") else None


def open_source(spec: str) -> AudioSource:
    """Make the outgoing audio from a spec.

    "tone" / "tone:<Hz>", "silence" (or "null"), "wav:PATH" or a path ending in .wav,
    "default" / "device" / "device:NAME", or a device name or index. Raises MediaUnavailable
    (one sentence) for a missing library, device or file, and ValueError for a malformed
    spec. Device sources must be opened on the call's event loop (they deliver onto it).
    """
    spec = spec.strip()
    kind, _, arg = spec.partition(":")
    if kind == "tone":
        try:
            return ToneSource(float(arg)) if arg else ToneSource()
        except ValueError:
            raise ValueError(f"bad tone frequency in audio source {spec!r}") from None
    if spec in ("silence", "null"):
        return SilenceSource()
    path = _file(spec)
    if path is not None:
        return WavSource(path)
    if not spec:
        raise ValueError("empty audio source spec")
    if pulse.is_pulse(spec):
        with pulse.routed(_pulse(spec, "input")) as device:
            return DeviceSource(device)
    return DeviceSource(_device(spec))


def open_sink(spec: str) -> AudioSink:
    """Make the incoming-audio sink: "null", "wav:PATH" or a path ending .wav, or a device
    ("default", "device", "device:NAME", a name or an index)."""
    spec = spec.strip()
    if spec in ("null", "silence"):
        return NullSink()
    path = _file(spec)
    if path is not None:
        return WavSink(path)
    if not spec:
        raise ValueError("empty audio sink spec")
    if pulse.is_pulse(spec):
        with pulse.routed(_pulse(spec, "output")) as device:
            return DeviceSink(device)
    return DeviceSink(_device(spec))


def check_source(spec: str) -> None:
    """Raise what `open_source(spec)` would (MediaUnavailable, ValueError) without opening a
    device stream: devices are looked up, files read."""
    spec = spec.strip()
    if spec.partition(":")[0] == "tone" or spec in ("silence", "null"):
        open_source(spec).stop()
        return
    path = _file(spec)
    if path is not None:
        WavSource(path).stop()
        return
    if not spec:
        raise ValueError("empty audio source spec")
    if pulse.is_pulse(spec):
        _pulse(spec, "input")
        return
    check_device(_device(spec), "input")


def check_sink(spec: str) -> None:
    """Raise what `open_sink(spec)` would (MediaUnavailable, ValueError) without opening a
    device stream or creating a file."""
    spec = spec.strip()
    if spec in ("null", "silence"):
        return
    path = _file(spec)
    if path is not None:
        folder = os.path.dirname(os.path.abspath(path))
        if os.path.isdir(path):
            raise MediaUnavailable(f"Cannot write WAV file {path!r}: it is a directory.")
        if not os.path.isdir(folder) or not os.access(folder, os.W_OK):
            raise MediaUnavailable(
                f"Cannot write WAV file {path!r}: no writable directory {folder!r}."
            )
        return
    if not spec:
        raise ValueError("empty audio sink spec")
    if pulse.is_pulse(spec):
        _pulse(spec, "output")
        return
    check_device(_device(spec), "output")


def describe(spec: str, kind: Literal["input", "output"]) -> str:
    """A short readable label for a source ("input") or sink ("output") spec, for status
    lines: "tone 440 Hz", "file call.wav", "silence", the PortAudio device's name."""
    spec = spec.strip()
    head, _, arg = spec.partition(":")
    if head == "tone":
        try:
            hz = float(arg) if arg else ToneSource().frequency
        except ValueError:
            return spec
        return f"tone {hz:g} Hz"
    if spec in ("silence", "null"):
        return "silence" if kind == "input" else "null"
    path = _file(spec)
    if path is not None:
        return f"file {os.path.basename(path)}"
    if not spec:
        return spec
    if pulse.is_pulse(spec):
        return spec.removeprefix(pulse.PREFIX)
    device = _device(spec)
    name = device_name(device, kind)
    if name is None:
        return spec
    if device is None:
        return "default" if name == "default" else f"default ({name})"
    return name
