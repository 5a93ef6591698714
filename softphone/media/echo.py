"""Echo cancellation, noise suppression and gain control for the microphone: WebRTC's audio
processing module (AEC3, NS, AGC2, high-pass filter) through the `livekit` package.

Wiring, for a call with a sound device (off for files, tones and bots):

    apm = EchoCanceller()                       # one per call (or per device pair)
    apm.set_delay_ms(output_latency_ms + input_latency_ms)   # what PortAudio reports
    # output callback, right after `block = stream.pull(frames)` is written to the device:
    apm.far_end(block)
    # input callback, before the block goes to the encoder:
    block = apm.near_end(block)

The far-end reference must be what is actually played (the pulled block as it goes to the
device, after any mixing or volume), and the delay is the device round trip (PortAudio's
`outputBufferDacTime - currentTime` plus the input's latency); AEC3 estimates the rest itself.
`enabled = False` passes audio through untouched (and stops feeding the reference). Blocks of
any size work; 10 ms multiples (480 samples at 48 kHz) add no delay, other sizes add up to
10 ms on the near end. `far_end` and `near_end` may be called from different threads:
`far_end` only queues (the output callback must stay quick: a late one underruns, and the
sound server then raises its latency, which moves the echo and makes AEC3 start over), and
`near_end` hands the queued reference to the APM before each microphone frame, so every APM
call runs on the input's thread with render and capture in the order they happened.

livekit is imported when the first canceller is made: it costs ~0.3 s and a native library
that nothing else needs.
"""

from __future__ import annotations

import collections
import threading
from typing import Any

import numpy as np
import numpy.typing as npt

from softphone.media.constants import SAMPLE_RATE

Pcm = npt.NDArray[np.int16]

FRAME = SAMPLE_RATE // 100  # the APM works on 10 ms frames
# Reference frames waiting for the microphone: a second. More means the input stalled; the
# oldest are dropped (AEC3 re-aligns by itself).
MAX_FAR_FRAMES = 100


class EchoCanceller:
    """Near-end (microphone) processing with the far end (what was played) as reference."""

    def __init__(
        self,
        *,
        echo_cancellation: bool = True,
        noise_suppression: bool = True,
        auto_gain_control: bool = True,
        high_pass_filter: bool = True,
        enabled: bool = True,
    ) -> None:
        from livekit import rtc

        self._rtc: Any = rtc
        self._apm = rtc.AudioProcessingModule(
            echo_cancellation=echo_cancellation,
            noise_suppression=noise_suppression,
            high_pass_filter=high_pass_filter,
            auto_gain_control=auto_gain_control,
        )
        self.enabled = enabled
        self.flags = (echo_cancellation, noise_suppression, auto_gain_control)
        self._lock = threading.Lock()  # the APM and the near-end buffers
        self._far_lock = threading.Lock()  # the reference queue only: held for microseconds
        self._delay_ms = 0
        self._far: Pcm = np.zeros(0, np.int16)  # less than a frame, waiting for the rest
        self._far_frames: collections.deque[Pcm] = collections.deque()
        self.far_dropped = 0
        self._near_in: Pcm = np.zeros(0, np.int16)
        self._near_out: Pcm = np.zeros(0, np.int16)
        self.frames = 0

    def set_delay_ms(self, delay_ms: float) -> None:
        """Device round trip: from a far-end sample given to `far_end` to its echo arriving
        in `near_end`."""
        self._delay_ms = max(0, round(delay_ms))

    def far_end(self, pcm: Pcm) -> None:
        """Audio just played on the speaker (48 kHz mono int16)."""
        if not self.enabled:
            return
        with self._far_lock:
            far = np.concatenate([self._far, pcm.astype(np.int16, copy=False)])
            whole = far.size - far.size % FRAME
            for i in range(0, whole, FRAME):
                self._far_frames.append(far[i : i + FRAME])
            self._far = far[whole:]
            while len(self._far_frames) > MAX_FAR_FRAMES:
                self._far_frames.popleft()
                self.far_dropped += 1

    def _feed_reference(self) -> None:
        """Everything played so far goes to the APM before the next microphone frame."""
        with self._far_lock:
            frames = list(self._far_frames)
            self._far_frames.clear()
        for frame in frames:
            self._apm.process_reverse_stream(self._frame(frame))

    def near_end(self, pcm: Pcm) -> Pcm:
        """Microphone audio in, processed audio out (same length)."""
        if not self.enabled:
            return pcm
        with self._lock:
            self._near_in = np.concatenate([self._near_in, pcm.astype(np.int16, copy=False)])
            done = []
            while self._near_in.size >= FRAME:
                chunk, self._near_in = self._near_in[:FRAME], self._near_in[FRAME:]
                self._feed_reference()
                frame = self._frame(chunk)
                self._apm.set_stream_delay_ms(self._delay_ms)
                self._apm.process_stream(frame)
                done.append(np.frombuffer(frame.data, dtype=np.int16).copy())
                self.frames += 1
            out = np.concatenate([self._near_out, *done]) if done else self._near_out
            if out.size < pcm.size:  # a block that is not a 10 ms multiple: wait 10 ms once
                out = np.concatenate([np.zeros(pcm.size - out.size, np.int16), out])
            result, self._near_out = out[: pcm.size], out[pcm.size :]
            return result

    def _frame(self, pcm: Pcm) -> Any:
        return self._rtc.AudioFrame(pcm.tobytes(), SAMPLE_RATE, 1, FRAME)
