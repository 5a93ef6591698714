"""Desktop notifications over the session D-Bus (org.freedesktop.Notifications), with jeepney:
pure Python, no compiled parts, kept by the Jupyter/SecretStorage maintainers. Where there is
no session bus (a server, SSH, CI) or no notification daemon, nothing is shown and nothing is
said: the bell and the ringing pane are the notice then."""

from __future__ import annotations

import logging
import os

_log = logging.getLogger("softphone.tui.notify")
_TIMEOUT = 3.0  # seconds to wait for the bus


def notify(summary: str, body: str) -> bool:
    """Show a notification; True if the desktop took it. Blocking (run it off the UI loop)."""
    if not os.environ.get("DBUS_SESSION_BUS_ADDRESS"):
        return False
    try:
        from jeepney import DBusAddress, new_method_call  # type: ignore[import-untyped]
        from jeepney.io.blocking import open_dbus_connection  # type: ignore[import-untyped]
    except ImportError:
        return False
    address = DBusAddress(
        "/org/freedesktop/Notifications",
        bus_name="org.freedesktop.Notifications",
        interface="org.freedesktop.Notifications",
    )
    # Notify(app_name, replaces_id, app_icon, summary, body, actions, hints, expire_timeout)
    message = new_method_call(
        address,
        "Notify",
        "susssasa{sv}i",
        ("softphone", 0, "call-start", summary, body, [], {"urgency": ("y", 2)}, -1),
    )
    try:
        with open_dbus_connection(bus="SESSION") as connection:
            connection.send_and_get_reply(message, timeout=_TIMEOUT)
    except Exception as exc:  # no daemon, a refusal, a bus that went away: not the user's care
        _log.info("desktop notification not shown: %s", exc)
        return False
    return True


__all__ = ["notify"]
