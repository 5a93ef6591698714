"""The dial pane: who to call, with or without video, and the Call button."""

from __future__ import annotations

from dataclasses import dataclass

from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.message import Message
from textual.widgets import Button, Checkbox, Input


class DialPane(Horizontal):
    DEFAULT_CSS = """
    DialPane { height: 1; margin: 0 0 1 0; }
    DialPane Input { width: 1fr; }
    DialPane Checkbox { width: auto; border: none; padding: 0 1; height: 1; }
    DialPane Button { width: auto; min-width: 8; }
    """

    @dataclass
    class DialRequested(Message):
        target: str
        video: bool

    def __init__(self, video: bool = False) -> None:
        super().__init__(id="dial")
        self._video = video

    def compose(self) -> ComposeResult:
        yield Input(placeholder="who to call (e.g. echo), Enter to dial", id="target", compact=True)
        yield Checkbox("video", self._video, id="with-video", compact=True)
        yield Button("Call", id="call", variant="success", compact=True)

    @on(Input.Submitted, "#target")
    @on(Button.Pressed, "#call")
    def _dial(self, event: Message) -> None:
        event.stop()
        target = self.query_one("#target", Input).value.strip()
        if target:
            video = self.query_one("#with-video", Checkbox).value
            self.post_message(self.DialRequested(target, video))

    def clear(self) -> None:
        self.query_one("#target", Input).value = ""


__all__ = ["DialPane"]
