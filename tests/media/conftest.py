"""Fixtures: real aiortc peer connections over 127.0.0.1 and a private PulseAudio server."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import subprocess
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import aioice.ice
import numpy as np
import pytest
from aiortc import RTCConfiguration, RTCPeerConnection
from aiortc.mediastreams import MediaStreamTrack

Connect = Callable[[MediaStreamTrack], Awaitable[MediaStreamTrack]]


@pytest.fixture
def loopback_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """aioice skips 127.0.0.1 on its own; force it so no other interface is ever used."""

    def only_loopback(use_ipv4: bool = True, use_ipv6: bool = True) -> list[str]:
        return ["127.0.0.1"]

    monkeypatch.setattr(aioice.ice, "get_host_addresses", only_loopback)


@pytest.fixture
async def connect(loopback_only: None) -> AsyncIterator[Connect]:
    """Send a track from one RTCPeerConnection to another; return the far end's track."""
    pcs: list[RTCPeerConnection] = []

    async def _connect(track: MediaStreamTrack) -> MediaStreamTrack:
        config = RTCConfiguration(iceServers=[])
        sender, receiver = RTCPeerConnection(config), RTCPeerConnection(config)
        pcs.extend([sender, receiver])
        arrived: asyncio.Future[MediaStreamTrack] = asyncio.get_running_loop().create_future()

        @receiver.on("track")
        def _on_track(remote: MediaStreamTrack) -> None:
            if not arrived.done():
                arrived.set_result(remote)

        sender.addTrack(track)
        await sender.setLocalDescription(await sender.createOffer())
        await receiver.setRemoteDescription(sender.localDescription)
        await receiver.setLocalDescription(await receiver.createAnswer())
        await sender.setRemoteDescription(receiver.localDescription)
        return await asyncio.wait_for(arrived, 10)

    yield _connect
    for pc in pcs:
        await pc.close()


@dataclass
class Pulse:
    """A running private PulseAudio: vspk (default sink), vmic = vspk.monitor, vfar."""

    env: dict[str, str]
    pid: int

    def pactl(self, *args: str) -> str:
        return subprocess.run(
            ["pactl", *args], env=self.env, capture_output=True, text=True, check=True
        ).stdout


_PULSE_ENV = ("HOME", "XDG_RUNTIME_DIR", "PULSE_SERVER", "PULSE_SINK", "PULSE_SOURCE")


@pytest.fixture
def pulse(tmp_path: Path) -> Iterator[Pulse]:
    """PulseAudio with null sinks, as in reference/probe-scripts/pulse_null.sh.

    PortAudio reaches it through ALSA's "pulse"/"default" PCMs, which find the server through
    the environment of this process, so the test process's environment is pointed at it and
    PortAudio re-enumerates devices.
    """
    if shutil.which("pulseaudio") is None or shutil.which("pactl") is None:
        message = "pulseaudio/pactl not installed (scripts/install.sh installs them)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    from softphone.media.devices import rescan_audio_devices

    home, xdg = tmp_path / "home", tmp_path / "xdg"
    home.mkdir()
    xdg.mkdir(mode=0o700)
    env = dict(os.environ, HOME=str(home), XDG_RUNTIME_DIR=str(xdg))
    env.pop("PULSE_SERVER", None)
    log = tmp_path / "pulse.log"
    proc = subprocess.Popen(
        [
            "pulseaudio", "-n", "--daemonize=no", "--exit-idle-time=-1",
            "--use-pid-file=no", "--system=false",
            f"--log-target=file:{log}", "--log-level=notice",
            "-L", "module-native-protocol-unix auth-anonymous=1",
            "-L", "module-null-sink sink_name=vspk sink_properties=device.description=VSpk",
            "-L", "module-remap-source master=vspk.monitor source_name=vmic "
            "source_properties=device.description=VMic",
            "-L", "module-null-sink sink_name=vfar sink_properties=device.description=VFar",
            "-L", "module-always-sink",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    env["PULSE_SERVER"] = f"unix:{xdg}/pulse/native"
    server = Pulse(env=env, pid=proc.pid)
    saved = {key: os.environ.get(key) for key in _PULSE_ENV}
    try:
        deadline = time.monotonic() + 10
        while True:
            if proc.poll() is not None:
                pytest.fail(f"pulseaudio exited: {log.read_text(errors='replace')[-2000:]}")
            probe = subprocess.run(["pactl", "info"], env=env, capture_output=True)
            if probe.returncode == 0:
                break
            if time.monotonic() > deadline:
                pytest.fail("pulseaudio did not come up within 10 s")
            time.sleep(0.05)
        server.pactl("set-default-sink", "vspk")
        server.pactl("set-default-source", "vmic")
        for key in ("HOME", "XDG_RUNTIME_DIR", "PULSE_SERVER"):
            os.environ[key] = env[key]
        rescan_audio_devices()
        yield server
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        with contextlib.suppress(Exception):
            rescan_audio_devices()


def record(server: Pulse, source: str, seconds: float) -> np.ndarray:
    """What `source` carries, for `seconds` (parec, raw 16-bit mono at 48 kHz)."""
    proc = subprocess.run(
        ["timeout", str(seconds), "parec", f"--device={source}", "--format=s16le",
         "--rate=48000", "--channels=1", "--raw"],
        env=server.env, capture_output=True, check=False,
    )  # fmt: skip
    return np.frombuffer(proc.stdout, dtype=np.int16)
