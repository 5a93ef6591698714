"""The message log: what happened, in plain words, time-stamped; errors in red."""

from __future__ import annotations

import time

from rich.text import Text
from textual.widgets import RichLog


class MessageLog(RichLog):
    DEFAULT_CSS = """
    MessageLog { height: 1fr; min-height: 4; border: round $secondary;
                 border-title-color: $secondary; }
    """

    def __init__(self) -> None:
        super().__init__(id="messages", wrap=True, markup=False, max_lines=2000)
        self.border_title = "Messages"
        self.lines_text: list[str] = []  # plain copies, for tests and the log file

    def say(self, text: str, error: bool = False) -> None:
        stamp = time.strftime("%H:%M:%S")
        self.lines_text.append(text)
        line = Text(f"{stamp} ", style="dim")
        line.append(text, style="bold red" if error else "")
        self.write(line)


__all__ = ["MessageLog"]
