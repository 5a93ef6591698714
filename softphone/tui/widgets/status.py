"""The status line: connection state, who you are, and the selected call's media numbers."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static

_COLORS = {
    "connected": "green",
    "anonymous": "green",
    "reconnecting": "yellow",
    "offline": "red",
    "starting": "cyan",
}


class StatusLine(Static):
    DEFAULT_CSS = """
    StatusLine { height: 2; background: $panel; padding: 0 1;
                 text-wrap: nowrap; text-overflow: ellipsis; }
    """

    def __init__(self) -> None:
        super().__init__(id="status")
        self.connection = "starting"
        self.reason = ""
        self.identity = ""
        self.call_info = ""
        self.devices = ""
        self.devices_in_use = ("", "")

    def on_mount(self) -> None:
        self._render_line()

    def set_connection(self, state: str, reason: str = "") -> None:
        self.connection, self.reason = state, reason
        self._render_line()

    def set_identity(self, identity: str) -> None:
        self.identity = identity
        self._render_line()

    def set_devices(self, microphone: str, speaker: str) -> None:
        self.devices_in_use = (microphone, speaker)
        self.devices = f"mic {microphone or '?'} · spk {speaker or '?'}"
        self._render_line()

    def set_call_info(self, info: str) -> None:
        if info != self.call_info:
            self.call_info = info
            self._render_line()

    @property
    def plain(self) -> str:
        return self._line().plain

    def _line(self) -> Text:
        text = Text()
        text.append("● ", style=_COLORS.get(self.connection, "white"))
        text.append(self.connection, style="bold")
        if self.reason:
            text.append(f" ({self.reason})")
        if self.identity:
            text.append(f"  {self.identity}", style="dim")
        # Second line: the selected call's numbers first (they change), then the devices.
        text.append("\n")
        if self.call_info:
            text.append(self.call_info)
            if self.devices:
                text.append("  │ ", style="dim")
        if self.devices:
            text.append(self.devices, style="dim")
        text.no_wrap, text.overflow = True, "ellipsis"
        return text

    def _render_line(self) -> None:
        self.update(self._line())


__all__ = ["StatusLine"]
