"""Loading sounddevice, which raises OSError (not ImportError) when libportaudio is missing."""

from __future__ import annotations

from typing import Any

from softphone.media.errors import MediaUnavailable


def load_sounddevice() -> Any:
    """Return the sounddevice module or raise MediaUnavailable saying why it cannot load."""
    try:
        import sounddevice
    except OSError as exc:
        raise MediaUnavailable(
            f"The PortAudio library is not installed ({exc}); install libportaudio2."
        ) from exc
    except ImportError as exc:
        raise MediaUnavailable(f"The sounddevice package is not installed ({exc}).") from exc
    return sounddevice
