"""The one error the media layer raises for "this device or library cannot be used"."""


class MediaUnavailable(Exception):
    """A source or sink cannot be opened; the message is one sentence meant for the user.

    The engine catches it, shows the message as a notice and falls back to a null device.
    """
