"""The Devices screen: pick the microphone, the speaker and the camera, mid-call included (the
engine moves live calls to the new device without renegotiating). Up/down and Enter pick; Tab
moves between the lists; Escape closes. Sound-server devices are listed by their description
("pulse:Built-in Audio"); the mic test calls the echo contact (speak: the in meter moves and
you hear yourself back)."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import TYPE_CHECKING

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.css.query import NoMatches
from textual.message import Message
from textual.screen import ModalScreen
from textual.widgets import Button, Label, OptionList
from textual.widgets.option_list import Option

if TYPE_CHECKING:
    from softphone.engine import DeviceList

_INPUT_EXTRAS = [("tone", "test tone (440 Hz)"), ("silence", "silence (send nothing)")]
_OUTPUT_EXTRAS = [("null", "nowhere (discard)")]
MIC_TEST = "echo"  # who the mic test calls


def _spec(spec: str, index: int) -> str:
    """A device's option id: its spec ("pulse:VFar"), or "#N" for a PortAudio index."""
    return spec or f"#{index}"


class MicTest(Message):
    """The user asked for the mic test (the app calls the echo contact)."""


@dataclass
class DevicePicked(Message):
    kind: str  # "audio_in", "audio_out" or "camera"
    spec: str


def _camera_options(cameras: tuple[str, ...], in_use: str) -> list[Option]:
    entries = [("pattern", "test pattern (no camera)"), ("default", "first camera")]
    entries += [(path, path) for path in cameras]
    return [Option(f"{'● ' if s == in_use else '  '}{label}", id=s) for s, label in entries]


def _options(
    devices: list[tuple[str, str, bool]], extras: list[tuple[str, str]], in_use: str
) -> list[Option]:
    """`devices`: (spec, name, is the default). One entry is marked in use, never two: the
    system default is "default", not also the device PortAudio happens to call "default"."""
    entries = [("default", "system default")]
    entries += [(spec, f"{name}{' (default)' if d else ''}") for spec, name, d in devices]
    entries += extras
    names = {spec: name for spec, name, _ in devices}

    def current(spec: str) -> bool:
        if in_use == "default":
            return spec == "default"
        return in_use in (spec, spec.lstrip("#")) or (
            spec != "default" and names.get(spec) == in_use
        )

    return [Option(f"{'● ' if current(s) else '  '}{label}", id=s) for s, label in entries]


class DevicesScreen(ModalScreen[None]):
    DEFAULT_CSS = """
    DevicesScreen { align: center middle; }
    DevicesScreen > Vertical { width: 90%; max-width: 100; height: auto; max-height: 90%;
                               border: thick $accent; background: $surface; padding: 0 1; }
    DevicesScreen Horizontal { height: auto; }
    DevicesScreen Vertical.list { width: 1fr; height: auto; }
    DevicesScreen OptionList { height: auto; max-height: 10; }
    DevicesScreen #problem { color: $warning; }
    """
    BINDINGS = [Binding("escape", "dismiss", "Close")]

    def __init__(self, devices: DeviceList) -> None:
        super().__init__()
        self._devices = devices

    def show_devices(self, devices: DeviceList) -> None:
        """Devices were plugged in or out while the screen is open: list them anew, with
        focus on the same list."""
        self._devices = devices
        focused = self.focused.id if self.focused is not None else None

        async def again() -> None:
            await self.recompose()
            if focused:
                with contextlib.suppress(NoMatches):
                    self.query_one(f"#{focused}").focus()

        self.call_later(again)

    def compose(self) -> ComposeResult:
        d = self._devices
        inputs = [(_spec(x.spec, x.index), x.name, x.default_input) for x in d.inputs]
        outputs = [(_spec(x.spec, x.index), x.name, x.default_output) for x in d.outputs]
        with Vertical():
            yield Label("Devices: Enter picks (live calls move at once), Escape closes")
            if d.problem:
                yield Label(d.problem, id="problem")
            with Horizontal():
                with Vertical(classes="list"):
                    yield Label(f"Microphone (now: {d.audio_in_label or d.audio_in})")
                    yield OptionList(*_options(inputs, _INPUT_EXTRAS, d.audio_in), id="audio_in")
                with Vertical(classes="list"):
                    yield Label(f"Speaker (now: {d.audio_out_label or d.audio_out})")
                    yield OptionList(
                        *_options(outputs, _OUTPUT_EXTRAS, d.audio_out), id="audio_out"
                    )
            with Vertical(classes="list"):
                yield Label(f"Camera, for video (now: {d.camera_label or d.camera})")
                yield OptionList(*_camera_options(d.cameras, d.camera), id="camera")
            yield Label(
                "Also on the command line: tone:HZ, silence, wav:PATH (--audio-in), "
                "null, wav:PATH (--audio-out)",
                id="extras",
            )
            yield Button(
                f"Mic test: call {MIC_TEST} (speak: the in meter moves, you hear yourself)",
                id="mic-test",
                compact=True,
            )

    @on(Button.Pressed, "#mic-test")
    def _mic_test(self, event: Button.Pressed) -> None:
        event.stop()
        self.app.post_message(MicTest())
        self.dismiss()

    @on(OptionList.OptionSelected)
    def _picked(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        spec = event.option.id or ""
        if spec.startswith("#"):
            spec = spec[1:]  # a PortAudio index: the engine accepts it as a spec
        if event.option_list.id in ("audio_in", "audio_out", "camera") and spec:
            self.app.post_message(DevicePicked(event.option_list.id, spec))
            self.dismiss()


__all__ = ["MIC_TEST", "DevicePicked", "DevicesScreen", "MicTest"]
