"""The status line, three rows: the connection (a state a person can read: connecting,
connected, reconnecting in N s, offline because …) and who you are; the selected call with
what you asked for (MUTED, ON HOLD, …) and its numbers; the devices in use with their level
meters."""

from __future__ import annotations

import time

from rich.text import Text
from textual.widgets import Static

_COLORS = {
    "connected": "green",
    "anonymous": "green",
    "connecting": "cyan",
    "reconnecting": "yellow",
    "offline": "red",
    "starting": "cyan",
}


class StatusLine(Static):
    DEFAULT_CSS = """
    StatusLine { height: 3; background: $panel; padding: 0 1;
                 text-wrap: nowrap; text-overflow: ellipsis; }
    """

    def __init__(self) -> None:
        super().__init__(id="status")
        self.connection = "starting"
        self.reason = ""
        self.retry_at: float | None = None  # monotonic time of the next connection attempt
        self.identity = ""
        self.settings = ""  # "do not disturb · auto-answer"
        self.call_party = ""
        self.call_flags: list[str] = []
        self.call_info = ""
        self.devices = ""
        self.meters = ("", "")
        self.devices_in_use = ("", "")

    def on_mount(self) -> None:
        self._render_line()

    def set_connection(self, state: str, reason: str = "", retry_in: float | None = None) -> None:
        self.connection, self.reason = state, reason
        self.retry_at = time.monotonic() + retry_in if retry_in else None
        self._render_line()

    def set_identity(self, identity: str) -> None:
        self.identity = identity
        self._render_line()

    def set_settings(self, settings: str) -> None:
        self.settings = settings
        self._render_line()

    def set_devices(self, microphone: str, speaker: str, text: str = "") -> None:
        self.devices_in_use = (microphone, speaker)
        self.devices = text or f"mic {microphone or '?'} · spk {speaker or '?'}"
        self._render_line()

    def set_meters(self, microphone: str, speaker: str) -> None:
        if (microphone, speaker) != self.meters:
            self.meters = (microphone, speaker)
            self._render_line()

    def set_call(self, party: str, flags: list[str]) -> None:
        """The selected call and what is on for it (shown at once, before any number)."""
        if (party, flags) != (self.call_party, self.call_flags):
            self.call_party, self.call_flags = party, list(flags)
            self._render_line()

    def set_call_info(self, info: str) -> None:
        if info != self.call_info:
            self.call_info = info
            self._render_line()

    def tick(self) -> None:
        """Once a second: the reconnect countdown moves."""
        if self.retry_at is not None:
            self._render_line()

    @property
    def plain(self) -> str:
        return self._line().plain

    def connection_text(self) -> str:
        state = self.connection
        if state == "reconnecting" and self.retry_at is not None:
            seconds = max(0, round(self.retry_at - time.monotonic()))
            text = f"reconnecting in {seconds} s" if seconds else "reconnecting now"
        elif state == "offline":
            text = f"offline because {self.reason}" if self.reason else "offline"
            return text
        else:
            text = state
        return f"{text} ({self.reason})" if self.reason else text

    def _line(self) -> Text:
        text = Text()
        text.append("● ", style=_COLORS.get(self.connection, "white"))
        text.append(self.connection_text(), style="bold")
        if self.identity:
            text.append(f"  {self.identity}", style="dim")
        if self.settings:
            text.append(f"  [{self.settings}]", style="bold")
        text.append("\n")
        if self.call_party:
            text.append(self.call_party)
            for flag in self.call_flags:
                text.append(" · ")
                text.append(flag.upper(), style="bold reverse")
            if self.call_info:
                text.append("  " + self.call_info)
        text.append("\n")
        mic_meter, spk_meter = self.meters
        if self.devices:
            text.append(self.devices, style="dim")
        if mic_meter or spk_meter:
            text.append(f"  in {mic_meter} out {spk_meter}")
        text.no_wrap, text.overflow = True, "ellipsis"
        return text

    def _render_line(self) -> None:
        self.update(self._line())


__all__ = ["StatusLine"]
