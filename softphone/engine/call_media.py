"""One call's media resources: what it sends, what it plays, and what it notices in them.

A `CallMedia` belongs to one `CallSession`. It holds the outgoing audio and video (switchable
sources, so devices change without renegotiation), the sink on the remote audio track, the
video sink and its viewer window, in-band DTMF detection and the watch for remote audio that
stops arriving. The session decides when things happen (after each negotiation it hands over
the remote tracks); this class does the plumbing and releases everything at the end.

Received Opus goes through our jitter buffer (`AudioReceiveStream`), pulled by whoever plays
it: a sound device from its output callback, any other sink on a timer (`play_stream`). A call
whose input is a microphone gets echo cancellation, noise suppression and gain control (an
`EchoCanceller` run in the input callback, fed with what the speaker played, with both
devices' latency as its delay); `MediaLevels` reports what is sent and played for meters.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import numpy as np
from aiortc import MediaStreamTrack, RTCRtpReceiver

from softphone.engine.context import CallContext
from softphone.engine.errors import EngineError, EngineErrorCode, ErrorInfo
from softphone.engine.events import (
    CallDtmfReceived,
    MediaError,
    MediaLevels,
    MediaSourceMuted,
    MediaSourceUnmuted,
)
from softphone.media.audio_device import DeviceSink, DeviceSource
from softphone.media.audio_receive import AudioReceiveStream
from softphone.media.audio_sink import AudioSink
from softphone.media.audio_switch import SwitchableSource
from softphone.media.dtmf import DtmfDetector
from softphone.media.echo import EchoCanceller
from softphone.media.levels import LevelMeter
from softphone.media.video import SwitchableVideo, VideoSink

log = logging.getLogger("softphone.engine")

# Remote audio that stops arriving for this long while the call should hear it is reported as
# `media:sourceMuted`; the next audio block reports `media:sourceUnmuted`.
AUDIO_GAP = 1.0
_GAP_CHECK = 0.2
LEVELS_EVERY = 0.2  # seconds between media:levels events of a call with audio

RemoteTracks = Mapping[str, tuple[str, MediaStreamTrack]]  # track id -> (kind, track)


class CallMedia:
    """Sources, sinks, window and watches of one call (`call_id`, talking to `party`)."""

    def __init__(self, call_id: str, party: str, ctx: CallContext) -> None:
        self.call_id = call_id
        self.party = party
        self._ctx = ctx
        self.source: SwitchableSource | None = None
        self.video: SwitchableVideo | None = None
        self.sink: AudioSink | None = None
        self.sink_track: MediaStreamTrack | None = None
        self.video_sink: VideoSink | None = None
        self.video_track: MediaStreamTrack | None = None
        self.window: Any = None  # the remote video's viewer window, when shown
        self._window_noticed = False
        self._detector: DtmfDetector | None = None
        self._last_audio = 0.0  # monotonic time of the last remote audio block (0: none yet)
        self._audio_gap = False  # media:sourceMuted was reported and no audio came since
        self._gap_watch: asyncio.Task[None] | None = None
        self._audio_id = "remote:audio"  # the remote audio's track id, once there is one
        self.receive: AudioReceiveStream | None = None  # our receive path of the remote audio
        self._played = 0  # frames the stream had decoded at the last block
        self.apm: EchoCanceller | None = None  # processing of the microphone, when it runs
        self._sent_level = LevelMeter()
        self._played_level = LevelMeter()
        self._levels: asyncio.Task[None] | None = None

    # -- sending -----------------------------------------------------------------------------

    def open_audio(self) -> SwitchableSource:
        self.source = self._ctx.media.open_source(self.call_id)
        self.source.meter = self._sent_level
        self._process()
        self._watch_levels()
        return self.source

    def open_video(self, size: tuple[int, int], fps: int = 15) -> SwitchableVideo:
        """A new outgoing video source; the caller makes it `video` once negotiated."""
        return self._ctx.media.open_video(self.call_id, size, fps)

    def set_silent(self, silent: bool) -> None:
        """Mute or hold: the tracks keep running and send silence and black."""
        for source in (self.source, self.video):
            if source is not None:
                source.muted = silent

    # -- receiving ---------------------------------------------------------------------------

    async def follow(
        self,
        remote: RemoteTracks,
        receivers: Callable[[MediaStreamTrack], RTCRtpReceiver | None],
        listening: Callable[[], bool],
    ) -> None:
        """Keep the sinks on the remote tracks after a negotiation: a new remote audio track
        gets a new receive stream and sink, a new video track a new video sink and window.
        `receivers` finds the RTP receiver of a remote track; `listening` says when a gap in
        remote audio is worth reporting (connected, nobody holding)."""
        audio_id, audio = next(
            ((tid, t) for tid, (k, t) in remote.items() if k == "audio"), (None, None)
        )
        if audio_id is not None:
            self._audio_id = audio_id
        if audio is not None and audio is not self.sink_track:  # a new track, not (un)hold
            await self._play(audio, receivers(audio), listening)
        video = next((t for k, t in remote.values() if k == "video"), None)
        if video is not self.video_track and self._ctx.media.kit.video_sink is not None:
            await self._show(video)
        if self._last_audio:
            self._last_audio = time.monotonic()  # a fresh grace period after (un)hold, restart

    async def _play(
        self,
        track: MediaStreamTrack,
        receiver: RTCRtpReceiver | None,
        listening: Callable[[], bool],
    ) -> None:
        """Play a new remote audio track: its Opus packets go through our own jitter buffer
        (`AudioReceiveStream`), pulled by the sink's clock; a track with no receiver of its
        own (tests, relays) is played as aiortc decodes it."""
        old, self.sink = self.sink, None  # no sink to switch while this one stops
        if old is not None:
            await _quietly(old.stop())
        self._detach_stream()
        sink = self._ctx.media.open_sink(self.call_id)
        if self._detector is None and self._ctx.options.inband_dtmf:
            self._detector = self._ctx.media.dtmf_detector()
        sink.on_pcm = self._heard
        self._played = 0
        if receiver is not None:
            self.receive = AudioReceiveStream()
            self.receive.attach(receiver)
            sink.play_stream(self.receive)
        else:
            sink.start(track)
        self.sink, self.sink_track = sink, track
        self._process()
        self._last_audio = 0.0  # a gap is only reported once this track has delivered
        if self._gap_watch is None:
            self._gap_watch = self._ctx.spawn(
                self._watch_gaps(listening), f"audio gaps {self.call_id}"
            )
        self._watch_levels()

    async def _show(self, track: MediaStreamTrack | None) -> None:
        if self.video_sink is not None:
            await _quietly(self.video_sink.stop())
            self.video_sink = None
        make = self._ctx.media.kit.video_sink
        if track is not None and make is not None:
            viewer = make()
            viewer.on_frame = self._seen
            viewer.start(track)
            self.video_sink = viewer
            self._open_window()
        else:
            await self._close_window()
        self.video_track = track

    def _heard(self, pcm: np.ndarray[Any, Any]) -> None:
        self._played_level.feed(pcm)
        if self.receive is not None:
            # The stream always delivers (concealment, silence): only decoded packets count
            # as the other party's audio arriving.
            stats = self.receive.stats()
            decoded = stats.played + stats.fec
            arrived, self._played = decoded > self._played, decoded
            if not arrived:
                self._ctx.heard(self.call_id, pcm)
                return
        self._last_audio = time.monotonic()
        if self._audio_gap:
            self._audio_gap = False
            self._ctx.emit(MediaSourceUnmuted(self.call_id, self.remote_audio_id, False))
        self._ctx.heard(self.call_id, pcm)
        # Listeners (recorders, the benchmarks' click detector) first: detection is slower.
        if self._detector is not None:
            try:
                digits = self._detector.feed(pcm)
            except Exception:
                log.exception("DTMF detection failed")
                digits = []
            for digit in digits:
                self._ctx.emit(CallDtmfReceived(self.call_id, digit, "inband"))

    def _seen(self, frame: Any) -> None:
        self._ctx.seen(self.call_id, frame)
        window = self.window
        if window is not None:
            window.show(frame)  # never blocks: a frame the window is not ready for is dropped
            if window.notice and not self._window_noticed:
                self._window_noticed = True  # no display, no GUI: say it once; the call goes on
                info = ErrorInfo(EngineErrorCode.MEDIA_UNAVAILABLE, window.notice)
                self._ctx.emit(MediaError(info, self.call_id))

    def _open_window(self) -> None:
        if not self._ctx.options.show_video or self.window is not None:
            return
        self.window = self._ctx.media.window(f"softphone: {self.party}")
        if self.window is not None:
            self.window.start()

    async def show_window(self) -> None:
        """Show the remote video in a new window when none shows it (the user closed it, or
        it failed): a new viewer fed from the next frame on. Raises EngineError when the call
        has no remote video or this kit has no windows."""
        if self.video_sink is None or self.video_track is None:
            raise EngineError(EngineErrorCode.INVALID_STATE, f"{self.party} sends no video to show")
        if self._ctx.media.kit.window is None:
            raise EngineError(EngineErrorCode.NOT_SUPPORTED, "no video windows here")
        window = self.window
        if window is not None and not window.notice and not window.window_closed:
            return  # it shows already
        await self._close_window()
        self._window_noticed = False  # a new window: its own trouble is news again
        self.window = self._ctx.media.window(f"softphone: {self.party}")
        if self.window is not None:
            self.window.start()

    async def _close_window(self) -> None:
        window, self.window = self.window, None
        if window is not None:  # close() waits for the viewer process: not on this loop
            await _quietly(asyncio.get_running_loop().run_in_executor(None, window.close))

    @property
    def remote_audio_id(self) -> str:
        return self._audio_id

    async def _watch_gaps(self, listening: Callable[[], bool]) -> None:
        """Report remote audio that stops arriving (debounced by AUDIO_GAP); `_heard` reports
        it back."""
        while True:
            await asyncio.sleep(_GAP_CHECK)
            if not listening() or self._audio_gap or not self._last_audio:
                continue
            if time.monotonic() - self._last_audio > AUDIO_GAP:
                self._audio_gap = True
                self._ctx.emit(MediaSourceMuted(self.call_id, self.remote_audio_id, False))

    # -- audio processing and levels ---------------------------------------------------------

    def _process(self) -> None:
        """Put echo cancellation & co. on the microphone (or take it off), as the settings say
        for the input this call has now; the speaker, if a device, feeds its reference."""
        if self.source is None:
            return
        inner = self.source.inner
        mic = inner if isinstance(inner, DeviceSource) else None
        apm = self._ctx.media.echo_canceller(mic is not None, self.apm)
        speaker = self.sink if isinstance(self.sink, DeviceSink) else None
        if speaker is not None:
            speaker.reference = apm
        if mic is not None:
            mic.canceller = apm  # in the input callback, before the block is queued
        # Not a microphone (echo_cancellation "on"): processed as the track sends it.
        self.source.processor = apm.near_end if apm is not None and mic is None else None
        self.apm = apm
        self._refresh_delay()

    def reprocess(self) -> None:
        """The processing settings changed (`Engine.set_audio_processing`): apply them now."""
        self._process()

    @property
    def processing(self) -> dict[str, bool]:
        """What runs on this call's microphone now."""
        echo, noise, gain = self.apm.flags if self.apm is not None else (False, False, False)
        return {"echo_cancellation": echo, "noise_suppression": noise, "auto_gain": gain}

    def _watch_levels(self) -> None:
        if self._levels is None:
            self._levels = self._ctx.spawn(self._report_levels(), f"audio levels {self.call_id}")

    async def _report_levels(self) -> None:
        """`media:levels` every LEVELS_EVERY while audio is sent or played; the echo
        canceller's delay follows the devices' latency as PortAudio measures it."""
        while True:
            await asyncio.sleep(LEVELS_EVERY)
            sent, played = self._sent_level, self._played_level
            if sent.fed or played.fed:
                out, back = sent.take(), played.take()
                self._ctx.emit(MediaLevels(self.call_id, out.peak, out.rms, back.peak, back.rms))
            self._refresh_delay()

    def _refresh_delay(self) -> None:
        apm = self.apm
        source = self.source.inner if self.source is not None else None
        if apm is not None and isinstance(source, DeviceSource):
            out = self.sink.latency_ms if isinstance(self.sink, DeviceSink) else 0.0
            apm.set_delay_ms(source.latency_ms + out)

    def audio_stats(self) -> dict[str, Any]:
        """Our audio path's figures for `get_stats`: the jitter buffer, the devices' latency
        and underruns, and what processing runs."""
        out: dict[str, Any] = {"processing": self.processing}
        if self.receive is not None:
            st = self.receive.stats()
            out["jitter_buffer"] = {
                "target_delay_ms": round(st.target_delay_ms, 1),
                "current_delay_ms": round(st.current_delay_ms, 1),
                "buffered_ms": round(st.buffered_ms, 1),
                "played": st.played,
                "fec": st.fec,
                "concealed": st.concealed,
                "dropped": st.dropped,
                "late": st.late,
                "duplicates": st.duplicates,
                "resets": st.resets,
            }
        if isinstance(self.sink, DeviceSink):
            out["output_latency_ms"] = round(self.sink.latency_ms, 1)
            out["output_underruns"] = self.sink.underruns
        source = self.source.inner if self.source is not None else None
        if isinstance(source, DeviceSource):
            out["input_latency_ms"] = round(source.latency_ms, 1)
            out["input_drops"] = source.stats.drops
            out["input_overflows"] = source.overflows
        return out

    # -- switching devices (softphone.engine.devices) ------------------------------------------

    def switch_input(self, source: MediaStreamTrack) -> None:
        assert self.source is not None
        self.source.switch(source)
        self.reprocess()

    def switch_camera(self, source: MediaStreamTrack) -> None:
        assert self.video is not None
        self.video.switch(source)

    def switch_output(self, sink: AudioSink) -> AudioSink:
        """Play on `sink` from now on; returns the old sink, to be stopped by the caller."""
        old, track = self.sink, self.sink_track
        assert old is not None and track is not None
        old.detach()  # it stops reading before the new sink starts on the same track
        if isinstance(old, DeviceSink):
            old.reference = None
        sink.on_pcm = old.on_pcm
        if self.receive is not None:
            sink.play_stream(self.receive)
        else:
            sink.start(track)
        self.sink = sink
        self._process()
        return old

    def _detach_stream(self) -> None:
        stream, self.receive = self.receive, None
        if stream is not None:
            stream.detach()

    # -- the end -----------------------------------------------------------------------------

    async def release(self) -> None:
        """Stop sources, sinks, window and watches (never raises)."""
        for source in (self.source, self.video):
            if source is not None:
                with contextlib.suppress(Exception):
                    source.stop()
        sink, self.sink = self.sink, None
        if sink is not None:
            await _quietly(sink.stop())
        self.sink_track = None
        self._detach_stream()
        if self.video_sink is not None:
            await _quietly(self.video_sink.stop())
        self.video_sink = self.video_track = None
        await self._close_window()
        for watch in (self._gap_watch, self._levels):
            if watch is not None and watch is not asyncio.current_task():
                watch.cancel()
        self._gap_watch = self._levels = None
        self.apm = None


async def _quietly(awaitable: Awaitable[Any]) -> None:
    try:
        await awaitable
    except Exception:
        log.exception("cleanup step failed")


__all__ = ["AUDIO_GAP", "CallMedia", "RemoteTracks"]
