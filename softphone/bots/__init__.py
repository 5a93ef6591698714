"""Bots: ordinary clients that answer calls on their own (the echo bot)."""
