"""PulseAudio (and PipeWire's pulse server): sinks and sources by their description, and our
streams routed to the chosen one.

Listing uses pulsectl (ctypes over libpulse, the client library every desktop has; kept since
2014): PortAudio alone sees only its ALSA plugin's "pulse" and "default" devices, not the
speakers and microphones behind them. Routing needs no PulseAudio call of ours: a stream still
opens PortAudio's "pulse" device, and libpulse sends it to the sink or source named in
$PULSE_SINK / $PULSE_SOURCE, which it reads when the stream opens (set for that moment only:
switching a device opens a new stream). A spec names one as "pulse:DESCRIPTION" (or
"pulse:NAME"), e.g. "pulse:Built-in Audio Analog Stereo".

Nothing here raises for a missing library or server: listing comes back empty with the reason.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal

Kind = Literal["input", "output"]
PREFIX = "pulse:"
PORTAUDIO_DEVICE = "pulse"  # the ALSA plugin's device, as PortAudio lists it
_ENV = {"input": "PULSE_SOURCE", "output": "PULSE_SINK"}
CONNECT_TIMEOUT = 2.0


@dataclass(frozen=True, slots=True)
class PulseDevice:
    name: str  # the server's name: "alsa_output.pci-0000_00_1f.3.analog-stereo", "vfar"
    description: str  # what people read: "Built-in Audio Analog Stereo", "VFar"
    kind: Kind
    default: bool

    @property
    def spec(self) -> str:
        return f"{PREFIX}{self.description}"


def list_pulse_devices() -> tuple[list[PulseDevice], str]:
    """The server's sinks (outputs) and sources (inputs, monitors left out), and "" or why
    there are none."""
    try:
        import pulsectl  # type: ignore[import-untyped]
    except ImportError:
        return [], "pulsectl is not installed"
    except OSError as exc:  # it loads libpulse at import: no library, no sound server
        return [], f"no libpulse ({exc})"
    try:
        with connect(pulsectl, "softphone-devices") as pulse:
            return read_devices(pulse), ""
    except Exception as exc:  # PulseError and friends: no server is not an error here
        return [], f"no PulseAudio or PipeWire server ({exc})"


def connect(pulsectl: Any, name: str) -> Any:
    """A `pulsectl.Pulse` connected to the server (no autospawn), within CONNECT_TIMEOUT.

    pulsectl 24.12's `connect(timeout=...)` waits out the whole timeout even when the server
    answers at once (its poll loop clears the stop flag and the state callback never sets
    it): 2 s for every listing, on whatever loop asked. The subclass stops the poll as soon as
    the connection is up or has failed; without a timeout a server that accepts and never
    answers would hang us."""
    global _client_class
    if _client_class is None:

        class Client(pulsectl.Pulse):  # type: ignore[misc]
            def _pulse_state_cb(self, ctx: Any, userdata: Any) -> None:
                super()._pulse_state_cb(ctx, userdata)
                if self.connected is not None:
                    self._loop_stop = True

        _client_class = Client
    pulse = _client_class(name, connect=False)
    try:
        pulse.connect(autospawn=False, timeout=CONNECT_TIMEOUT)
    except BaseException:
        pulse.close()
        raise
    return pulse


_client_class: Any = None


def read_devices(pulse: Any) -> list[PulseDevice]:
    """The sinks and sources (monitors left out) of a connected `pulsectl.Pulse`."""
    info = pulse.server_info()
    sinks, sources = pulse.sink_list(), pulse.source_list()
    devices = [
        PulseDevice(s.name, s.description, "output", s.name == info.default_sink_name)
        for s in sinks
    ]
    devices += [
        PulseDevice(s.name, s.description, "input", s.name == info.default_source_name)
        for s in sources
        if not s.name.endswith(".monitor")
    ]
    return devices


def is_pulse(spec: str) -> bool:
    return spec.strip().startswith(PREFIX)


def resolve(spec: str, kind: Kind) -> PulseDevice:
    """The device a "pulse:..." spec names (its description, or the server's name), or
    ValueError listing the ones there are."""
    wanted = spec.strip().removeprefix(PREFIX)
    devices, problem = list_pulse_devices()
    mine = [d for d in devices if d.kind == kind]
    # The description as written, the server's name, then the description in any case.
    for found in (
        [d for d in mine if d.description == wanted],
        [d for d in mine if d.name == wanted],
        [d for d in mine if d.description.casefold() == wanted.casefold()],
    ):
        if found:
            return found[0]
    what = "source (microphone)" if kind == "input" else "sink (speaker)"
    if problem:
        raise ValueError(f"no PulseAudio {what} {wanted!r}: {problem}")
    there = ", ".join(repr(d.description) for d in mine) or "none"
    raise ValueError(f"no PulseAudio {what} {wanted!r}; there are: {there}")


@contextlib.contextmanager
def routed(device: PulseDevice) -> Iterator[str]:
    """Within the block, a stream opened on the PortAudio device yielded goes to `device`.
    The variable is put back after: a later stream on "default" must go where the system (or
    the caller's own $PULSE_SINK) says, not here."""
    name = _ENV[device.kind]
    before = os.environ.get(name)
    os.environ[name] = device.name
    try:
        yield PORTAUDIO_DEVICE
    finally:
        if before is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = before


__all__ = [
    "CONNECT_TIMEOUT",
    "PORTAUDIO_DEVICE",
    "PREFIX",
    "PulseDevice",
    "connect",
    "is_pulse",
    "list_pulse_devices",
    "read_devices",
    "resolve",
    "routed",
]
