"""Recent calls: ended calls stay visible here, collapsed to one title line until opened,
newest first (until a history view exists)."""

from __future__ import annotations

from textual.widgets import Collapsible, Static

KEEP = 20


class RecentCalls(Collapsible):
    DEFAULT_CSS = """
    RecentCalls { height: auto; max-height: 12; border: none; padding: 0; margin: 0; }
    RecentCalls > Contents { padding: 0 0 0 2; height: auto; }
    RecentCalls #recent-list { color: $text-muted; }
    """

    def __init__(self) -> None:
        # Born with the class Collapsible sets on mount: its styles are right from the start
        # and the mount does not restyle it (and its children) before the first frame.
        super().__init__(
            Static(id="recent-list"),
            title="Recent calls (none yet)",
            collapsed=True,
            id="recent",
            classes="-collapsed",
        )
        self.entries: list[str] = []

    def add(self, line: str) -> None:
        self.entries.insert(0, line)
        del self.entries[KEEP:]
        self.title = f"Recent calls ({len(self.entries)}): {self.entries[0]}"
        self.query_one("#recent-list", Static).update("\n".join(self.entries))


__all__ = ["RecentCalls"]
