"""Microphone and speaker through PortAudio callback streams.

PortAudio calls us on its own thread, with its low-latency settings (ALSA periods of ~8 ms).
Capture runs the echo canceller on each block (`canceller`) and hands it to the event loop
with call_soon_threadsafe into a bounded queue. Playback of a call's received audio
(`play_stream`) pulls the jitter buffer from the output callback for exactly the 10 ms block
it plays: the device's clock paces playout, and there is no queue of ours in between. What was
played goes to the echo canceller as its reference (`reference`) and, on the event loop, to
`on_pcm`. Any other track (`start`) still goes through a locked FIFO. Both queues drop the
oldest audio when full (latency must not grow without bound) and count what they dropped.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from softphone.media._portaudio import load_sounddevice
from softphone.media.audio_receive import AudioReceiveStream
from softphone.media.audio_sink import AudioSink, Pcm
from softphone.media.audio_source import AudioSource
from softphone.media.constants import BLOCK, SAMPLE_RATE
from softphone.media.echo import EchoCanceller
from softphone.media.errors import MediaUnavailable

QUEUE_BLOCKS = 10  # 200 ms hard bound: more buffered audio than this is latency, not smoothing
# Capture: blocks waiting beyond this when aiortc asks for one are stale (the mic ran before
# the call was answered); sending them would add their length to the call's latency for good.
MAX_CAPTURE_BACKLOG = 2
# Playback: the FIFO level is set by when the network and the device happened to start (the
# ALSA pulse plugin starts output ~1.7 s late), not by jitter. If it never fell below this for
# a whole half second, the surplus is standing latency and is dropped.
PLAYBACK_CUSHION = 2 * BLOCK
TRIM_EVERY = 25  # callbacks, i.e. half a second
# The output callback's block: 10 ms is the jitter buffer's and the echo canceller's step, and
# half the latency of a 20 ms block.
OUTPUT_BLOCK = SAMPLE_RATE // 100
# The input callback's block: 10 ms (the echo canceller's step, and ALSA buffers less); two make
# one 20 ms frame for the encoder.
INPUT_BLOCK = SAMPLE_RATE // 100
# A device that asks for audio faster than real time (PortAudio refilling after underflows, over
# and over on a starved machine) would drain the jitter buffer into concealment. Beyond this
# much ahead of the wall clock it gets silence instead; a device that stalled (behind by more
# than REBASE_BEHIND) restarts the comparison from now.
MAX_AHEAD = 0.1  # seconds
REBASE_BEHIND = 0.2

Device = str | int | None


def _check_device(sd: Any, device: Device, kind: str) -> None:
    try:
        sd.query_devices(device, kind=kind)
    except (ValueError, sd.PortAudioError) as exc:
        what = "default" if device is None else repr(device)
        raise MediaUnavailable(f"No usable audio {kind} device {what} ({exc}).") from exc


def check_device(device: Device, kind: str) -> None:
    """Raise MediaUnavailable unless PortAudio has a `kind` ("input"/"output") device
    `device` (None: the default); opens no stream."""
    _check_device(load_sounddevice(), device, kind)


def device_name(device: Device, kind: str) -> str | None:
    """The full name of the PortAudio device `device` would open, or None if there is none."""
    try:
        sd = load_sounddevice()
        return str(sd.query_devices(device, kind=kind)["name"])
    except Exception:  # MediaUnavailable, PortAudioError, ValueError: no such device
        return None


def _close(stream: Any) -> None:
    """abort(), not stop(): stop() would block the event loop until queued audio has played."""
    if stream is not None:
        with contextlib.suppress(Exception):
            stream.abort()
        with contextlib.suppress(Exception):
            stream.close()


class DeviceSource(AudioSource):
    """Microphone capture, opened and started at once (the first block takes ~1.7 s)."""

    def __init__(
        self, device: Device = None, loop: asyncio.AbstractEventLoop | None = None
    ) -> None:
        super().__init__()
        sd = load_sounddevice()
        _check_device(sd, device, "input")
        self._loop: asyncio.AbstractEventLoop = loop or asyncio.get_running_loop()
        self._queue: asyncio.Queue[Pcm] = asyncio.Queue(maxsize=QUEUE_BLOCKS)
        self.overflows = 0  # PortAudio's own input overflow flags
        # Echo cancellation, noise suppression, gain control, run on each captured block
        # before it is queued (set and cleared by the engine while the stream runs).
        self.canceller: EchoCanceller | None = None
        self.processing_errors = 0
        self._partial: Pcm = np.zeros(0, np.int16)  # captured, less than a frame (callback's)
        self._stream: Any = None
        try:
            self._stream = sd.InputStream(
                samplerate=SAMPLE_RATE,
                blocksize=INPUT_BLOCK,
                channels=1,
                dtype="int16",
                device=device,
                latency="low",
                callback=self._callback,
            )
            self._stream.start()
        except (ValueError, sd.PortAudioError) as exc:
            _close(self._stream)
            raise MediaUnavailable(f"Cannot open the microphone {device!r}: {exc}.") from exc

    def _callback(self, indata: Any, frames: int, time_info: Any, status: Any) -> None:
        if status.input_overflow:
            self.overflows += 1
        block = np.array(indata[:, 0], dtype=np.int16)
        canceller = self.canceller
        if canceller is not None:
            try:
                block = canceller.near_end(block)
            except Exception:  # a failing canceller must not silence the microphone
                self.processing_errors += 1
        if self._partial.size + block.size < BLOCK:
            self._partial = np.concatenate([self._partial, block])
            return
        whole = np.concatenate([self._partial, block])
        block, self._partial = whole[:BLOCK], whole[BLOCK:]
        # RuntimeError: the loop is closed, the call is over and nobody reads this anyway.
        with contextlib.suppress(RuntimeError):
            self._loop.call_soon_threadsafe(self._put, block)

    @property
    def latency_ms(self) -> float:
        """PortAudio's input latency (capture to callback), ms."""
        stream = self._stream
        return float(stream.latency) * 1000 if stream is not None else 0.0

    @property
    def backlog(self) -> int:
        """Captured blocks waiting to be sent."""
        return self._queue.qsize()

    def _put(self, block: Pcm) -> None:
        if self._queue.full():
            self._queue.get_nowait()
            self.stats.drops += 1
        self._queue.put_nowait(block)

    async def _next_block(self) -> Pcm:
        # Paced by the device clock; the callback queues whole BLOCKs.
        block = await self._queue.get()
        while self._queue.qsize() > MAX_CAPTURE_BACKLOG:
            block = self._queue.get_nowait()
            self.stats.drops += 1
        if block.size != BLOCK:
            block = np.resize(block, BLOCK)
        return block

    def stop(self) -> None:
        super().stop()
        stream, self._stream = self._stream, None
        _close(stream)


class DeviceSink(AudioSink):
    """Speaker playback; plays silence when the network has nothing for it (underrun).

    `play_stream` (a call's received audio) pulls from the output callback; `start` (any
    other track) plays through a FIFO. `underruns` counts blocks the FIFO could not fill and
    PortAudio's output underflow flags (the callback came too late for the device)."""

    def __init__(
        self,
        device: Device = None,
        on_pcm: Callable[[Pcm], None] | None = None,
        block: int = OUTPUT_BLOCK,
    ) -> None:
        super().__init__(on_pcm)
        sd = load_sounddevice()
        _check_device(sd, device, "output")
        self._lock = threading.Lock()
        self._fifo: collections.deque[Pcm] = collections.deque()
        self._offset = 0  # samples of _fifo[0] already played
        self._buffered = 0  # samples in the FIFO not yet played
        self._low_water = 0  # least buffered seen since the last trim check
        self._callbacks = 0
        self.drops = 0  # blocks dropped because the FIFO was full
        self.trimmed = 0  # samples dropped as standing latency
        self.underruns = 0
        self.underflows = 0  # PortAudio's output underflow flags (also counted in underruns)
        # The echo canceller whose far-end reference is what this device plays.
        self.reference: EchoCanceller | None = None
        self.reference_errors = 0
        self._pulled: AudioReceiveStream | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._dac_ms: float | None = None  # last measured callback -> DAC time
        self._pull_start: float | None = None  # wall time the pulled samples are counted from
        self._pulled_samples = 0
        self.refused = 0  # callbacks given silence for running ahead of real time
        self._stream: Any = None
        try:
            self._stream = sd.OutputStream(
                samplerate=SAMPLE_RATE,
                blocksize=block,
                channels=1,
                dtype="int16",
                device=device,
                latency="low",
                callback=self._callback,
            )
            self._stream.start()
        except (ValueError, sd.PortAudioError) as exc:
            _close(self._stream)
            raise MediaUnavailable(f"Cannot open the speaker {device!r}: {exc}.") from exc

    # -- a call's received audio, pulled by the device clock ---------------------------------

    @property
    def running(self) -> bool:
        return self._pulled is not None or super().running

    def play_stream(self, stream: AudioReceiveStream) -> None:
        """Play `stream` from the output callback; `on_pcm` gets each block on this loop."""
        if self.running:
            raise RuntimeError("this sink is already playing")
        self._loop = asyncio.get_running_loop()
        self._pull_start = None
        self._pulled = stream

    def detach(self) -> None:
        self._pulled = None
        super().detach()

    async def stop(self) -> None:
        self._pulled = None
        await super().stop()

    @property
    def latency_ms(self) -> float:
        """From the output callback to the DAC, ms: PortAudio's `outputBufferDacTime -
        currentTime` as last measured, else the stream's nominal output latency."""
        if self._dac_ms is not None:
            return self._dac_ms
        stream = self._stream
        return float(stream.latency) * 1000 if stream is not None else 0.0

    def _deliver(self, block: Pcm) -> None:
        """On the loop: count a block the callback played and show it to on_pcm."""
        self.frames += 1
        self.samples += block.size
        self._hand_on(block)

    def write(self, pcm: Pcm) -> None:
        with self._lock:
            self._fifo.append(pcm)
            self._buffered += pcm.size
            while len(self._fifo) > QUEUE_BLOCKS:
                self._buffered -= self._fifo.popleft().size - self._offset
                self._offset = 0
                self.drops += 1

    def flush(self) -> None:
        """Forget queued audio (e.g. on hold or resume) and restart the latency watch."""
        with self._lock:
            self._fifo.clear()
            self._offset = self._buffered = self._low_water = self._callbacks = 0

    @property
    def buffered_ms(self) -> float:
        """Audio waiting in our FIFO (PortAudio's own buffer comes on top)."""
        return self._buffered * 1000 / SAMPLE_RATE

    def _skip(self, count: int) -> None:
        """Discard the oldest ``count`` samples of the FIFO (lock held)."""
        while count > 0 and self._fifo:
            head = self._fifo[0]
            take = min(count, head.size - self._offset)
            self._offset += take
            self._buffered -= take
            count -= take
            if self._offset >= head.size:
                self._fifo.popleft()
                self._offset = 0

    def _callback(self, outdata: Any, frames: int, time_info: Any, status: Any) -> None:
        if status is not None and status.output_underflow:
            self.underflows += 1
            self.underruns += 1
        if time_info is not None:
            dac = (time_info.outputBufferDacTime - time_info.currentTime) * 1000
            if 0 < dac < 2000:  # 0: the host API does not know
                self._dac_ms = dac
        out = outdata[:, 0]
        stream = self._pulled
        if stream is not None:
            if self._paced(frames):
                try:
                    block = stream.pull(frames)
                except Exception:  # never raise into PortAudio: play silence, count it
                    block = np.zeros(frames, np.int16)
                    self.underruns += 1
            else:
                block = np.zeros(frames, np.int16)
                self.refused += 1
            out[:] = block
            self._played(block, stream_fed=True)
            return
        self._play_fifo(out, frames)
        if self.reference is not None:
            self._played(np.array(out, dtype=np.int16), stream_fed=False)

    def _paced(self, frames: int) -> bool:
        """Whether pulling `frames` more keeps the device within MAX_AHEAD of real time."""
        now = time.monotonic()
        if self._pull_start is None:
            self._pull_start, self._pulled_samples = now, 0
        ahead = self._pulled_samples / SAMPLE_RATE - (now - self._pull_start)
        if ahead < -REBASE_BEHIND:
            self._pull_start, self._pulled_samples = now, 0
        elif ahead > MAX_AHEAD:
            return False
        self._pulled_samples += frames
        return True

    def _played(self, block: Pcm, *, stream_fed: bool) -> None:
        reference = self.reference
        if reference is not None:
            try:
                reference.far_end(block)
            except Exception:
                self.reference_errors += 1
        loop = self._loop
        if stream_fed and loop is not None:
            # RuntimeError: the loop is closed, the call is over and nobody listens.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(self._deliver, block)

    def _play_fifo(self, out: Any, frames: int) -> None:
        filled = 0
        with self._lock:
            self._trim_standing_latency()
            while filled < frames and self._fifo:
                head = self._fifo[0]
                take = min(frames - filled, head.size - self._offset)
                out[filled : filled + take] = head[self._offset : self._offset + take]
                filled += take
                self._offset += take
                self._buffered -= take
                if self._offset >= head.size:
                    self._fifo.popleft()
                    self._offset = 0
        if filled < frames:
            out[filled:] = 0
            if self.frames:  # silence before the first frame is not an underrun
                self.underruns += 1

    def _trim_standing_latency(self) -> None:
        """Every TRIM_EVERY callbacks, drop what the FIFO held throughout beyond the cushion."""
        if self._callbacks == 0:
            self._low_water = self._buffered
        self._low_water = min(self._low_water, self._buffered)
        self._callbacks += 1
        if self._callbacks % TRIM_EVERY == 0:
            surplus = self._low_water - PLAYBACK_CUSHION
            if surplus > 0:
                self._skip(surplus)
                self.trimmed += surplus
            self._low_water = self._buffered

    def close(self) -> None:
        stream, self._stream = self._stream, None
        _close(stream)
