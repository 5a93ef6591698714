"""The calls pane: one row per call (party, direction, state, duration, flags)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from textual.coordinate import Coordinate
from textual.widgets import DataTable

if TYPE_CHECKING:
    from softphone.engine import Call

COLUMNS = (
    ("party", "Party", 16),
    ("dir", "Dir", 3),
    ("state", "State", 14),
    ("time", "Time", 7),
    ("flags", "Flags", 18),
)


@dataclass
class CallView:
    """What the pane shows of a call: the engine's snapshot plus what the UI tracks."""

    call: Call
    sending_video: bool = False
    connected_at: float | None = None
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def live(self) -> bool:
        return self.call.state.value not in ("Ended", "Cancelled")

    def flags(self) -> str:
        c = self.call
        words = [
            word
            for word, flag in (
                ("hold", c.local_hold),
                ("held", c.remote_hold),
                ("muted", c.muted),
                ("video", self.sending_video),
            )
            if flag
        ]
        return " ".join(words)

    def duration(self, now: float | None = None) -> str:
        if self.connected_at is None:
            return ""
        end = self.call.end_time if self.call.end_time is not None else now or time.time()
        seconds = max(0, int(end - self.connected_at))
        return f"{seconds // 60}:{seconds % 60:02d}"

    def state_text(self) -> str:
        c = self.call
        if c.end_reason and not self.live:
            return f"{c.state.value} ({c.end_reason})"
        return c.state.value


class CallsPane(DataTable[str]):
    DEFAULT_CSS = """
    CallsPane { height: auto; min-height: 4; max-height: 12; border: round $primary;
                border-title-color: $primary; }
    CallsPane:focus { border: round $accent; }
    """

    def __init__(self) -> None:
        super().__init__(id="calls", cursor_type="row", zebra_stripes=True)
        self.border_title = "Calls"

    def on_mount(self) -> None:
        for key, label, width in COLUMNS:
            self.add_column(label, key=key, width=width)

    def show(self, view: CallView) -> None:
        c = view.call
        values = {
            "party": c.remote_participant,
            "dir": "out" if c.direction == "outgoing" else "in",
            "state": view.state_text(),
            "time": view.duration(),
            "flags": view.flags(),
        }
        if c.id in self.rows:
            for key, value in values.items():
                self.update_cell(c.id, key, value)
        else:
            self.add_row(*(values[key] for key, _, _ in COLUMNS), key=c.id)

    def forget(self, call_id: str) -> None:
        if call_id in self.rows:
            self.remove_row(call_id)

    @property
    def selected(self) -> str | None:
        if not self.row_count:
            return None
        row = min(max(self.cursor_row, 0), self.row_count - 1)
        key = self.coordinate_to_cell_key(Coordinate(row, 0)).row_key.value
        return key

    def select(self, call_id: str) -> None:
        if call_id in self.rows:
            self.move_cursor(row=self.get_row_index(call_id))


__all__ = ["CallView", "CallsPane"]
