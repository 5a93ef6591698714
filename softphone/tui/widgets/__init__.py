"""The TUI's panes, one per module."""
