"""Real speech for audio tests and benchmarks: espeak-ng (Debian) synthesised, at 48 kHz mono.

Echo cancellers and intelligibility measures are built for speech; the synthetic test signals
(tones, chirps) are stationary in ways speech never is and mislead them.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile

import numpy as np
import numpy.typing as npt
import pytest

from softphone.media.audio import read_audio_file

TEXT = (
    "Hello, this is a test call from the softphone. The quick brown fox jumps over the lazy "
    "dog. Please call me back when you get this message; my number is five five five, one "
    "two three four. Thank you, and have a good afternoon."
)


def espeak_speech(seconds: float, text: str = TEXT) -> npt.NDArray[np.int16]:
    """`seconds` of espeak-ng speaking `text` (repeated as needed), 48 kHz mono int16. Skips
    the test (fails it in CI) when espeak-ng is not installed."""
    once = espeak_once(text)
    reps = int(np.ceil(seconds * 48000 / once.size))
    return np.tile(once, reps)[: int(seconds * 48000)]


def espeak_once(text: str = TEXT) -> npt.NDArray[np.int16]:
    """espeak-ng speaking `text` once, 48 kHz mono int16 (skips as `espeak_speech` does)."""
    exe = shutil.which("espeak-ng")
    if exe is None:
        message = "espeak-ng not installed (scripts/install.sh installs it)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "speech.wav")
        subprocess.run([exe, "-s", "160", "-w", path, text], check=True, capture_output=True)
        return read_audio_file(path)
