"""Modal screens: confirm quitting while calls are live; log in again."""

from __future__ import annotations

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label


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


class LoginScreen(ModalScreen[str | None]):
    """Ask for the password inside the TUI (never echoed: the box shows dots). Dismisses with
    the password, or None (Escape: stay offline)."""

    DEFAULT_CSS = """
    LoginScreen { align: center middle; }
    LoginScreen > Vertical { width: 64; max-width: 95%; height: auto; border: thick $warning;
                             padding: 1 2; background: $surface; }
    LoginScreen Input { margin-top: 1; }
    LoginScreen #login-why { color: $warning; }
    """
    BINDINGS = [Binding("escape", "cancel", "Stay offline")]

    def __init__(self, user: str, url: str, why: str) -> None:
        super().__init__()
        self._user, self._url, self._why = user, url, why

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(f"Log in to {self._url} as {self._user}")
            yield Label(self._why, id="login-why")
            yield Input(placeholder="password, Enter logs in", password=True, id="password")
            yield Label("Escape: stay offline (then l asks again)")

    def on_mount(self) -> None:
        self.query_one("#password", Input).focus()

    @on(Input.Submitted, "#password")
    def _submitted(self, event: Input.Submitted) -> None:
        event.stop()
        if event.value:
            self.dismiss(event.value)

    def action_cancel(self) -> None:
        self.dismiss(None)


__all__ = ["LoginScreen", "QuitScreen"]
