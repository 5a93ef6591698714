"""The dial pane: who to call, with or without video, and the Call button. While the box has
the focus letters are text, so the footer says how to get out of it (Escape)."""

from __future__ import annotations

from dataclasses import dataclass

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.message import Message
from textual.widgets import Button, Input

from softphone.tui.widgets.button import KeyButton


class DialBox(Input):
    """The text box: Escape leaves it for the calls, where the call keys work."""

    BINDINGS = [Binding("escape", "app.focus_calls", "Leave the box")]


class VideoToggle(KeyButton):
    """Says what it is set to in words ("video: off"), not only in colour."""

    def __init__(self, value: bool) -> None:
        super().__init__("", id="with-video", compact=True)
        self.value = value
        self._show()

    def toggle(self) -> None:
        self.value = not self.value
        self._show()

    def _show(self) -> None:
        self.label = "video: on" if self.value else "video: off"
        self.variant = "primary" if self.value else "default"


class DialPane(Horizontal):
    DEFAULT_CSS = """
    DialPane { height: 1; margin: 0 0 1 0; }
    DialPane Input { width: 1fr; }
    DialPane KeyButton { width: auto; min-width: 8; margin-left: 1; }
    """
    BINDINGS = [Binding("escape", "app.focus_calls", "Leave the box")]

    @dataclass
    class DialRequested(Message):
        target: str
        video: bool

    def __init__(self, video: bool = False) -> None:
        super().__init__(id="dial")
        self._video = video

    def compose(self) -> ComposeResult:
        yield DialBox(
            placeholder="who to call (d; e.g. echo), Enter dials", id="target", compact=True
        )
        yield VideoToggle(self._video)
        yield KeyButton("Call", id="call", variant="success", compact=True)

    @on(Button.Pressed, "#with-video")
    def _toggle(self, event: Button.Pressed) -> None:
        event.stop()
        self.query_one(VideoToggle).toggle()

    @on(Input.Submitted, "#target")
    @on(Button.Pressed, "#call")
    def _dial(self, event: Message) -> None:
        event.stop()
        target = self.query_one("#target", Input).value.strip()
        if target:
            video = self.query_one(VideoToggle).value
            self.post_message(self.DialRequested(target, video))

    def clear(self) -> None:
        self.query_one("#target", Input).value = ""


__all__ = ["DialBox", "DialPane", "VideoToggle"]
