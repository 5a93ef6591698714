"""The signaling server: accounts, sessions, notifications, call control, anonymous calls."""
