"""The message log: what happened, in plain words, time-stamped; errors in red."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from rich.text import Text
from textual.events import Resize
from textual.widgets import RichLog

_log = logging.getLogger("softphone.tui.messages")


class MessageLog(RichLog):
    DEFAULT_CSS = """
    MessageLog { height: 1fr; min-height: 4; border: round $secondary; scrollbar-gutter: stable;
                 border-title-color: $secondary; }
    """

    def __init__(self) -> None:
        # min_width: RichLog renders every line at least 78 wide by default, which hid the end
        # of wrapped lines under the scrollbar at 80 columns.
        super().__init__(id="messages", wrap=True, markup=False, max_lines=2000, min_width=20)
        self.border_title = "Messages"
        self.lines_text: list[str] = []  # plain copies, for tests
        self.entries: list[tuple[str, bool]] = []  # (text, is an error)
        self.clock: Callable[[], str] = lambda: time.strftime("%H:%M:%S")

    def on_resize(self, event: Resize) -> None:
        super().on_resize(event)
        # A pane above grew (a call rings, the banner shows): keep the newest line in view.
        if self.auto_scroll:
            self.scroll_end(animate=False, immediate=True)

    def detail(self, text: str) -> None:
        """The technical reason behind a line: the log file only, never the screen."""
        _log.info("detail: %s", text)

    def say(self, text: str, error: bool = False) -> None:
        stamp = self.clock()
        self.lines_text.append(text)
        self.entries.append((text, error))
        _log.log(logging.ERROR if error else logging.INFO, "%s", text)
        line = Text(f"{stamp} ", style="dim")
        line.append(text, style="bold red" if error else "")
        self.write(line)


__all__ = ["MessageLog"]
