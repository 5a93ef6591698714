"""Listing audio and video devices without ever raising (for settings screens and doctor).

Audio devices are PortAudio's, then, where a PulseAudio or PipeWire server runs, its sinks and
sources by description (`softphone.media.pulse`): PortAudio alone shows only "pulse" and
"default" there."""

from __future__ import annotations

import glob
from dataclasses import dataclass

from softphone.media import pulse
from softphone.media._portaudio import load_sounddevice
from softphone.media.errors import MediaUnavailable


@dataclass(frozen=True)
class AudioDevice:
    index: int
    name: str
    max_input_channels: int
    max_output_channels: int
    default_input: bool
    default_output: bool
    host_api: str
    # The spec that opens it when its index does not ("pulse:VFar"); "" for PortAudio's own.
    spec: str = ""

    @property
    def choice(self) -> str:
        """What --audio-in/--audio-out (and the engine) take for this device."""
        return self.spec or str(self.index)


_last_problem = ""


def portaudio_available() -> tuple[bool, str]:
    """(True, version text) when PortAudio loads, else (False, the reason)."""
    try:
        sd = load_sounddevice()
    except MediaUnavailable as exc:
        return False, str(exc)
    return True, str(sd.get_portaudio_version()[1])


def last_device_problem() -> str:
    """Why the last list_audio_devices() call came back empty ("" if it did not)."""
    return _last_problem


def rescan_audio_devices() -> None:
    """Make PortAudio enumerate devices again.

    PortAudio lists devices once, when sounddevice initialises it; a sound server started
    later (PulseAudio in tests, a hot-plugged headset) is invisible until it re-initialises.
    This uses sounddevice's private _terminate/_initialize (sounddevice is pinned). It must not
    run while streams are open.
    """
    try:
        sd = load_sounddevice()
    except MediaUnavailable:
        return
    sd._terminate()
    sd._initialize()


def list_audio_devices() -> list[AudioDevice]:
    """All PortAudio devices; [] (see last_device_problem) when there is no library or device."""
    global _last_problem
    _last_problem = ""
    try:
        sd = load_sounddevice()
        raw = list(sd.query_devices())
        apis = [str(api["name"]) for api in sd.query_hostapis()]
        default_in, default_out = (int(x) for x in sd.default.device)
    except MediaUnavailable as exc:
        _last_problem = str(exc)
        return []
    except Exception as exc:  # PortAudioError and friends: report, never crash a UI
        _last_problem = f"PortAudio could not list devices: {exc}."
        return []
    devices = [
        AudioDevice(
            index=int(d["index"]),
            name=str(d["name"]),
            max_input_channels=int(d["max_input_channels"]),
            max_output_channels=int(d["max_output_channels"]),
            default_input=int(d["index"]) == default_in,
            default_output=int(d["index"]) == default_out,
            host_api=apis[int(d["hostapi"])] if 0 <= int(d["hostapi"]) < len(apis) else "",
        )
        for d in raw
    ]
    if not devices:
        _last_problem = "PortAudio found no audio devices (is a sound server running?)."
        return devices
    return devices + _pulse_devices()


def _pulse_devices() -> list[AudioDevice]:
    """The sound server's sinks and sources, when PortAudio reaches one through its "pulse"
    device (they are opened through it)."""
    named, _ = pulse.list_pulse_devices()
    return [
        AudioDevice(
            index=-1,
            name=d.description,
            max_input_channels=1 if d.kind == "input" else 0,
            max_output_channels=1 if d.kind == "output" else 0,
            default_input=d.default and d.kind == "input",
            default_output=d.default and d.kind == "output",
            host_api="PulseAudio",
            spec=d.spec,
        )
        for d in named
    ]


def list_video_devices() -> list[str]:
    """V4L2 device nodes, sorted (/dev/video0, /dev/video1, ...)."""
    return sorted(glob.glob("/dev/video*"), key=lambda p: (len(p), p))
