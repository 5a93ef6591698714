"""Modal screens: confirm quitting while calls are live."""

from __future__ import annotations

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Label


class QuitScreen(ModalScreen[bool]):
    """Dismisses with True to end the calls and quit."""

    DEFAULT_CSS = """
    QuitScreen { align: center middle; }
    QuitScreen > Vertical { width: 52; height: auto; border: thick $error; padding: 1 2;
                            background: $surface; }
    QuitScreen Horizontal { height: auto; margin-top: 1; }
    QuitScreen Button { margin-right: 2; }
    """
    BINDINGS = [
        Binding("y", "answer(True)", "End calls and quit"),
        Binding("n,escape", "answer(False)", "Stay"),
    ]

    def __init__(self, live: int) -> None:
        super().__init__()
        self._live = live

    def compose(self) -> ComposeResult:
        calls = "1 call is" if self._live == 1 else f"{self._live} calls are"
        with Vertical():
            yield Label(f"{calls} still live. End and quit?")
            with Horizontal():
                yield Button("End calls and quit [y]", id="yes", variant="error")
                yield Button("Stay [n]", id="no", variant="primary")

    def action_answer(self, yes: bool) -> None:
        self.dismiss(yes)

    @on(Button.Pressed)
    def _pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.dismiss(event.button.id == "yes")


__all__ = ["QuitScreen"]
