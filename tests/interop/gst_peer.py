"""A GStreamer webrtcbin peer for tests/interop, run by Debian's /usr/bin/python3 (python3-gi).

An independent WebRTC stack (libnice ICE, OpenSSL DTLS with webrtcbin's default RSA-2048
certificate, libsrtp): it sends `audiotestsrc` at a known frequency and measures what it
receives. It never imports numpy or softphone: it runs outside the project's venv.

Protocol, one JSON object a line (requests on stdin, replies on stdout):
  {"op": "offer"}                  -> {"ok": true, "sdp": ...}  (gathering complete)
  {"op": "apply_answer", "sdp": s} -> {"ok": true}
  {"op": "answer", "sdp": offer}   -> {"ok": true, "sdp": ...}  (gathering complete)
  {"op": "heard", "seconds": 0.6}  -> {"ok": true, "rms": r, "frequency": f, "samples": n}
      over the last `seconds` of received audio (rms of s16 samples in [0, 1]; frequency
      from zero crossings, good for a pure tone)
  {"op": "state"}                  -> {"ok": true, "ice": ..., "connection": ...}
  {"op": "quit"}
Errors: {"ok": false, "error": ...}. Usage: gst_peer.py FREQUENCY_HZ
"""

from __future__ import annotations

import itertools
import json
import math
import re
import sys
import threading
import time
from array import array
from typing import Any

import gi  # type: ignore[import-not-found]  # Debian's python3-gi, not in the venv

gi.require_version("Gst", "1.0")
gi.require_version("GstWebRTC", "1.0")
gi.require_version("GstSdp", "1.0")
gi.require_version("Nice", "0.1")
from gi.repository import GLib, Gst, GstSdp, GstWebRTC, Nice  # type: ignore[import-not-found]  # noqa: E402

RATE = 48000
KEEP_SECONDS = 5


class GstPeer:
    def __init__(self, frequency: float) -> None:
        self.frequency = frequency
        self.pipeline = Gst.Pipeline.new("peer")
        self.webrtc = Gst.ElementFactory.make("webrtcbin", "webrtc")
        self.webrtc.set_property("bundle-policy", GstWebRTC.WebRTCBundlePolicy.MAX_BUNDLE)
        self.webrtc.set_property("latency", 50)
        self.pipeline.add(self.webrtc)
        # libnice never offers loopback addresses by itself. The agent must stay referenced
        # from Python, or the wrapper is freed and the address list with it.
        self.ice = self.webrtc.get_property("ice-agent")
        self.agent = self.ice.get_property("agent")
        address = Nice.Address()
        address.set_from_string("127.0.0.1")
        self.agent.add_local_address(address)
        self.webrtc.connect("pad-added", self._pad_added)
        self.samples = array("h")
        self.lock = threading.Lock()
        # time.monotonic() (CLOCK_MONOTONIC: the same clock in every process) of the first
        # loud block decoded since the last `first_audio` reset, for the benchmarks
        self.first_loud: float | None = None
        self.pipeline.set_state(Gst.State.PLAYING)

    def _send_tone(self, payload_type: int) -> None:
        """Link the sine source to webrtcbin's first m-line with this Opus payload type
        (webrtcbin holds the data until the description is negotiated)."""
        source = Gst.parse_bin_from_description(
            f"audiotestsrc is-live=true wave=sine freq={self.frequency} volume=0.3 "
            "! audioconvert ! audioresample ! audio/x-raw,rate=48000,channels=1 "
            f"! opusenc ! rtpopuspay pt={payload_type} "
            '! capsfilter caps="application/x-rtp,media=audio,encoding-name=OPUS,'
            f'payload={payload_type},clock-rate=48000"',
            True,
        )
        self.pipeline.add(source)
        source.get_static_pad("src").link(self.webrtc.request_pad_simple("sink_0"))
        source.sync_state_with_parent()

    # -- receiving ---------------------------------------------------------------------------

    def _pad_added(self, _element: Any, pad: Any) -> None:
        if pad.direction != Gst.PadDirection.SRC:
            return
        sink = Gst.parse_bin_from_description(
            "queue ! rtpopusdepay ! opusdec ! audioconvert ! audioresample "
            "! audio/x-raw,format=S16LE,rate=48000,channels=1 "
            "! appsink name=ears emit-signals=true sync=false",
            True,
        )
        self.pipeline.add(sink)
        sink.sync_state_with_parent()
        sink.get_by_name("ears").connect("new-sample", self._new_sample)
        linked = pad.link(sink.get_static_pad("sink"))
        if linked != Gst.PadLinkReturn.OK:
            caps = pad.get_current_caps() or pad.query_caps(None)
            print(f"gst_peer: cannot receive {caps.to_string()}: {linked}", file=sys.stderr)

    def _new_sample(self, appsink: Any) -> Any:
        sample = appsink.emit("pull-sample")
        buffer = sample.get_buffer()
        ok, info = buffer.map(Gst.MapFlags.READ)
        if ok:
            block = array("h")
            block.frombytes(bytes(info.data))
            buffer.unmap(info)
            if self.first_loud is None and block and max(abs(min(block)), max(block)) > 2000:
                self.first_loud = time.monotonic()
            with self.lock:
                self.samples.extend(block)
                excess = len(self.samples) - KEEP_SECONDS * RATE
                if excess > 0:
                    del self.samples[:excess]
        return Gst.FlowReturn.OK

    def heard(self, seconds: float) -> dict[str, Any]:
        with self.lock:
            tail = self.samples[-int(seconds * RATE) :]
        n = len(tail)
        if n == 0:
            return {"rms": 0.0, "frequency": 0.0, "samples": 0}
        rms = math.sqrt(sum(s * s for s in tail) / n) / 32768
        crossings = sum(1 for a, b in itertools.pairwise(tail) if (a < 0) != (b < 0))
        return {"rms": rms, "frequency": crossings / 2 / (n / RATE), "samples": n}

    # -- negotiation (called on the GLib loop) -----------------------------------------------

    def _gathered(self) -> str:
        """The local description once gathering is complete (no trickle in protocol v1)."""
        complete = GstWebRTC.WebRTCICEGatheringState.COMPLETE
        deadline = time.monotonic() + 10
        # webrtcbin gathers on its own threads: polling here blocks nothing it needs.
        while self.webrtc.get_property("ice-gathering-state") != complete:
            if time.monotonic() > deadline:
                raise TimeoutError("ICE gathering did not complete")
            time.sleep(0.02)
        text: str = self.webrtc.get_property("local-description").sdp.as_text()
        return text

    def _promise(self, signal: str, *args: Any) -> Any:
        promise = Gst.Promise.new()
        self.webrtc.emit(signal, *args, promise)
        promise.wait()
        return promise.get_reply()

    def offer(self) -> str:
        self._send_tone(111)
        reply = self._promise("create-offer", None)
        offer = reply.get_value("offer")
        self._promise("set-local-description", offer)
        return self._gathered()

    def _description(self, kind: Any, sdp: str) -> Any:
        _, message = GstSdp.SDPMessage.new_from_text(sdp)
        return GstWebRTC.WebRTCSessionDescription.new(kind, message)

    def apply_answer(self, sdp: str) -> None:
        answer = self._description(GstWebRTC.WebRTCSDPType.ANSWER, sdp)
        self._promise("set-remote-description", answer)

    def answer(self, sdp: str) -> str:
        # The offer's own Opus payload type: webrtcbin pairs our sending transceiver with the
        # offer's m-line only if the caps match it.
        match = re.search(r"a=rtpmap:(\d+) opus/48000", sdp, re.IGNORECASE)
        self._send_tone(int(match.group(1)) if match else 111)
        offer = self._description(GstWebRTC.WebRTCSDPType.OFFER, sdp)
        self._promise("set-remote-description", offer)
        reply = self._promise("create-answer", None)
        answer = reply.get_value("answer")
        self._promise("set-local-description", answer)
        return self._gathered()

    def reanswer(self, sdp: str) -> str:
        """Answer a re-offer (hold, media restart) on the same webrtcbin."""
        offer = self._description(GstWebRTC.WebRTCSDPType.OFFER, sdp)
        self._promise("set-remote-description", offer)
        reply = self._promise("create-answer", None)
        answer = reply.get_value("answer")
        self._promise("set-local-description", answer)
        return self._gathered()

    def state(self) -> dict[str, Any]:
        return {
            "ice": self.webrtc.get_property("ice-connection-state").value_nick,
            "connection": self.webrtc.get_property("connection-state").value_nick,
        }


def main() -> None:
    Gst.init(None)
    peer = GstPeer(float(sys.argv[1]))
    loop = GLib.MainLoop()

    def reply(payload: dict[str, Any]) -> None:
        sys.stdout.write(json.dumps(payload) + "\n")
        sys.stdout.flush()

    def handle(request: dict[str, Any]) -> bool:
        try:
            op = request["op"]
            if op == "offer":
                reply({"ok": True, "sdp": peer.offer()})
            elif op == "apply_answer":
                peer.apply_answer(request["sdp"])
                reply({"ok": True})
            elif op == "answer":
                reply({"ok": True, "sdp": peer.answer(request["sdp"])})
            elif op == "reanswer":
                reply({"ok": True, "sdp": peer.reanswer(request["sdp"])})
            elif op == "heard":
                reply({"ok": True, **peer.heard(float(request.get("seconds", 0.6)))})
            elif op == "state":
                reply({"ok": True, **peer.state()})
            elif op == "first_audio":
                reply({"ok": True, "at": peer.first_loud})
                if request.get("reset"):
                    peer.first_loud = None
            elif op == "quit":
                peer.pipeline.set_state(Gst.State.NULL)
                loop.quit()
            else:
                reply({"ok": False, "error": f"unknown op {op}"})
        except Exception as exc:  # the test reads the reason
            reply({"ok": False, "error": repr(exc)})
        return False

    def read_stdin() -> None:
        for line in sys.stdin:
            if line.strip():
                GLib.idle_add(handle, json.loads(line))
        GLib.idle_add(handle, {"op": "quit"})

    threading.Thread(target=read_stdin, daemon=True).start()
    reply({"ok": True, "ready": True})
    loop.run()


if __name__ == "__main__":
    main()
