"""The calls pane: one row per call (who, direction, state, duration, what is on); what a row
says comes from `CallView.row` (tui/presenter.py). Ended calls move to the Recent section."""

from __future__ import annotations

from typing import TYPE_CHECKING

from textual.coordinate import Coordinate
from textual.widgets import DataTable

if TYPE_CHECKING:
    from softphone.tui.presenter import CallView

# Fits 78 cells (80 columns less the border) with a cell's padding: names are cut with an
# ellipsis by the presenter, states are short words ("in call", "you hung up").
COLUMNS = (
    ("party", "With", 16),
    ("dir", "Dir", 3),
    ("state", "State", 22),
    ("time", "Time", 5),
    ("flags", "On", 20),
)


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
        call_id, values = view.call.id, view.row()
        if call_id in self.rows:
            for key, value in values.items():
                self.update_cell(call_id, key, value)
        else:
            self.add_row(*(values[key] for key, _, _ in COLUMNS), key=call_id)

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


__all__ = ["CallsPane"]
