"""The incoming-call pane: who calls, with what media, and Answer / Reject. Several incoming
calls queue here; the first one is the one the buttons and keys act on."""

from __future__ import annotations

from dataclasses import dataclass

from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.widgets import Button, Static

from softphone.tui.widgets.button import KeyButton


@dataclass(frozen=True)
class IncomingCall:
    call_id: str
    caller: str
    audio: bool
    video: bool

    @property
    def media(self) -> str:
        kinds = [k for k, on_ in (("audio", self.audio), ("video", self.video)) if on_]
        return " and ".join(kinds) or "no media"


class IncomingPane(Vertical):
    DEFAULT_CSS = """
    IncomingPane { height: auto; display: none; border: heavy $warning; padding: 0 1;
                   border-title-color: $warning; border-title-style: bold; }
    IncomingPane.-ringing { display: block; }
    IncomingPane.-off { display: block; border: round $panel-lighten-2;
                        border-title-color: $text-muted; }
    IncomingPane.-off Horizontal { display: none; }
    IncomingPane.-off #queue { display: none; }
    IncomingPane #ring { text-style: bold; color: $text; background: $warning 40%; }
    IncomingPane #queue { color: $text-muted; }
    IncomingPane Horizontal { height: 1; }
    IncomingPane KeyButton { margin: 0 1 0 0; width: auto; }
    """

    @dataclass
    class Action(Message):
        action: str  # "answer_audio", "answer_video" or "reject"
        call_id: str

    def __init__(self) -> None:
        super().__init__(id="incoming")
        self.border_title = "Incoming call"
        self._calls: list[IncomingCall] = []
        self.off_reason = ""

    def compose(self) -> ComposeResult:
        # Empty until a call rings or the pane is turned off (`_content`): hidden until then,
        # its six widgets would only add to the work before the first frame.
        yield from ()

    def _content(self) -> None:
        if self.children:
            return
        buttons = Horizontal()
        self.mount(Static(id="ring"), Static(id="queue"), buttons)
        # Mounted one by one (not as the row's children) so that they are there at once for
        # `query_one` and the focus, as composed widgets are.
        buttons.mount(
            KeyButton("Answer audio \\[a]", id="answer_audio", variant="success", compact=True),
            KeyButton("Answer video \\[A]", id="answer_video", variant="primary", compact=True),
            KeyButton("Reject \\[r]", id="reject", variant="error", compact=True),
        )

    @property
    def calls(self) -> list[IncomingCall]:
        return list(self._calls)

    @property
    def first(self) -> IncomingCall | None:
        return self._calls[0] if self._calls else None

    def add(self, call: IncomingCall) -> None:
        if all(c.call_id != call.call_id for c in self._calls):
            self._calls.append(call)
            self._show()

    def drop(self, call_id: str) -> None:
        self._calls = [c for c in self._calls if c.call_id != call_id]
        self._show()

    def turn_off(self, reason: str) -> None:
        """No incoming calls in this mode (anonymous): say why instead of ringing."""
        self.off_reason = reason
        self.border_title = "Incoming calls: off"
        self.set_class(True, "-off")
        self._content()
        self.query_one("#ring", Static).update(reason)

    def _show(self) -> None:
        if self.off_reason:
            return
        first = self.first
        self.set_class(first is not None, "-ringing")
        if first is None:
            return
        self._content()
        self.query_one("#ring", Static).update(
            f"RINGING: {first.caller} is calling ({first.media})"
        )
        waiting = [f"{c.caller} ({c.media})" for c in self._calls[1:]]
        queue = self.query_one("#queue", Static)
        queue.update(f"also waiting: {', '.join(waiting)}" if waiting else "")
        queue.display = bool(waiting)
        self.query_one("#answer_video", Button).display = first.video

    @on(Button.Pressed)
    def _pressed(self, event: Button.Pressed) -> None:
        event.stop()
        first = self.first
        if first is not None and event.button.id:
            self.post_message(self.Action(event.button.id, first.call_id))


__all__ = ["IncomingCall", "IncomingPane"]
