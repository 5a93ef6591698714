"""softphone: a terminal softphone and its signaling server."""

__version__ = "0.1.0"
