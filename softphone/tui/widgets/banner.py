"""A one-line banner across the top while the server connection is down: calls keep their
media meanwhile, but nothing new can be signaled, and the user should know that at a glance."""

from __future__ import annotations

from textual.widgets import Static


class Banner(Static):
    DEFAULT_CSS = """
    Banner { height: 1; display: none; padding: 0 1; text-style: bold; }
    Banner.-reconnecting { display: block; background: $warning; color: $text; }
    Banner.-offline { display: block; background: $error; color: $text; }
    """

    def __init__(self) -> None:
        super().__init__(id="banner")

    def show_state(self, state: str, detail: str = "") -> None:
        """`reconnecting`/`offline` show the banner with `detail`; anything else hides it."""
        self.set_class(state == "reconnecting", "-reconnecting")
        self.set_class(state == "offline", "-offline")
        if state == "reconnecting":
            self.update(f"Reconnecting to the server… {detail}".rstrip())
        elif state == "offline":
            self.update(f"Offline: {detail or 'not connected to the server'}")
        else:
            self.update("")


__all__ = ["Banner"]
