"""The installed `softphone` in a real terminal: tmux at 80x24, the embedded default, keys only.

One test drives `.venv/bin/softphone --audio-in tone --audio-out null` (the console script, not
the package in-process) inside a private tmux server, with HOME and XDG_* in a temporary
directory so the config, the embedded server's database and the log file are fresh. It reads
the screen with `tmux capture-pane -p` (polling), types `echo` Enter in the dial box, waits for
the call to be in call with audio coming back (the status line's `lost ↑N ↓N`, shown once RTP
has been received), presses `e`, sees the call end. Then a second user rings the first: `softphone
user add bob` on the embedded server's database, and bob (tests/tui/_second_party.py, another
process, in the softphone's network namespace) calls `me`; the screen shows him ringing, `a`
answers, `e` hangs up, and bob saw ringing, connected, ended. Last, ctrl+q and exit status 0.

Stray output (`STRAY`: tracebacks, warnings, logging records, ALSA/PortAudio/JACK/PulseAudio,
FFmpeg, Qt, OpenCV, GLib lines) must appear nowhere: not on any screen captured, not on the
terminal after the exit (scrollback included), and not in the raw byte stream the program wrote
to the terminal (`tmux pipe-pane`, recorded from before the program starts), which also catches
a line that a later repaint covered before a capture saw it. What goes to the log file (the app
sends fd 2 there on purpose) is not checked.

Network: the product runs in the host's namespace, also as root under CI. Nothing it sends
leaves the machine: the embedded server listens on 127.0.0.1, it hands out no STUN/TURN servers,
and the ICE host candidates are this machine's own addresses, which the kernel delivers locally.
(A namespace with only `lo` does not work: aioice never offers loopback candidates, so the call
would show Connected with no media.)

tmux missing: a failure under CI (CI=true), a skip otherwise. The tmux server has its own socket
name (`-L`) and config; only that server is killed.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

COLUMNS, ROWS = 80, 24
SOFTPHONE = Path(sys.executable).with_name("softphone")  # the installed console script

# What counts as stray output: text that is not the softphone's own UI, written over the screen
# by the interpreter or a native library (fd 1/2), before, during or after the TUI. One pattern
# per source; all case-sensitive unless marked.
STRAY: dict[str, re.Pattern[str]] = {
    "Python traceback": re.compile(
        r"Traceback \(most recent call last\)|^\s*File \".*\", line \d+"
    ),
    "Python exception line": re.compile(r"(^|[\s│])[A-Za-z_.]*(Error|Exception): "),
    "Python warning": re.compile(r"\b[A-Za-z]*Warning\b"),
    "asyncio/interpreter noise": re.compile(
        r"Task was destroyed but it is pending|Exception ignored in|Event loop is closed"
        r"|Fatal Python error|Segmentation fault|core dumped|Aborted"
    ),
    "logging record": re.compile(
        r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} |^(DEBUG|INFO|WARNING|ERROR|CRITICAL):[\w.]*:"
    ),
    "aiortc/aioice": re.compile(r"\baioice\.|\baiortc\.|CandidatePair\("),
    "ALSA": re.compile(r"ALSA lib |\bsnd_pcm_\w+|\bsnd_\w+_open\b|(?i:\bunderrun\b|\boverrun\b)"),
    # PortAudio's own lines, not the app's words about it ("PortAudio found no audio devices").
    "PortAudio": re.compile(
        r"PortAudio V\d|PortAudio library not found|PaAlsa|\bPa_\w+|paInternalError"
        r"|Expression '.*' failed in"
    ),
    "JACK": re.compile(
        r"(?i:jack server)|Cannot connect to server (socket|request channel)|JackShm"
    ),
    "PulseAudio": re.compile(r"\bpa_\w+\(\)|pulseaudio|(?i:pulse audio)"),
    "FFmpeg/libav": re.compile(r"\[[\w:-]+ @ 0x[0-9a-f]+\]|\blibav\w+\b|\bswscale\b"),
    "Qt": re.compile(
        r"\bqt\.[a-z]+\.|QStandardPaths|Qt platform plugin|\bQObject::|\bQWidget|QThread"
        r"|XDG_RUNTIME_DIR"
    ),
    "OpenCV": re.compile(r"\[ ?(WARN|ERROR|INFO):\d|\bVIDEOIO\b|\bcv2\.|OpenCV"),
    "GLib/GStreamer": re.compile(r"\(\S+:\d+\): [\w-]+-(WARNING|CRITICAL|ERROR)\b|GStreamer"),
}

STARTUP_TIMEOUT = 15.0
CALL_TIMEOUT = 10.0
MEDIA_TIMEOUT = 10.0
END_TIMEOUT = 6.0
EXIT_TIMEOUT = 8.0
POLL = 0.1

LOGGED_IN = re.compile(r"Logged in as me\b")
CONNECTED = re.compile(r"│ echo +out +in call\b")
# The status line's `lost ↑N ↓N` comes from aiortc's inbound-rtp stats, which exist only once
# RTP has been received from the far end.
MEDIA = re.compile(r"^ *echo\b.*\blost ↑\S+ ↓\d+", re.MULTILINE)
ENDED = re.compile(r"│ echo +out +you hung up\b")
URL = re.compile(r"Embedded server on (http://127\.0\.0\.1:\d+)")
BOB_RINGS = re.compile(r"RINGING: bob is calling")
BOB_CONNECTED = re.compile(r"│ bob +in +in call\b")
BOB_ENDED = re.compile(r"│ bob +in +you hung up\b")
QUIT_QUESTION = re.compile(r"still live\. End and quit\?")


def stray_lines(text: str) -> list[str]:
    """`source: line` for every line of `text` that looks like stray output."""
    found = []
    for line in text.splitlines():
        if line.startswith("Pane is dead"):  # tmux's own remain-on-exit notice
            continue
        for source, pattern in STRAY.items():
            if pattern.search(line):
                found.append(f"{source}: {line.strip()}")
    return found


def test_stray_patterns_match_known_noise_and_not_the_ui() -> None:
    noise = [
        "ALSA lib pcm.c:2664:(snd_pcm_open_noupdate) Unknown PCM cards.pcm.rear",
        "Expression 'ret' failed in 'src/hostapi/alsa/pa_linux_alsa.c', line: 1736",
        "Cannot connect to server socket err = No such file or directory",
        "jack server is not running or cannot be started",
        "[opus @ 0x55d0c1a2b3c0] Error parsing Opus packet header.",
        "qt.qpa.xcb: could not connect to display",
        "QStandardPaths: XDG_RUNTIME_DIR not set, defaulting to '/tmp/runtime-root'",
        "[ WARN:0@0.012] global cap_v4l.cpp:914 open VIDEOIO(V4L2:/dev/video0): can't open",
        "Traceback (most recent call last):",
        '  File "/x/softphone/tui/app.py", line 12, in on_mount',
        "RuntimeError: no running event loop",
        "│ValueError: boom                 │",
        "/x/aiortc/codecs/vpx.py:1: DeprecationWarning: thing",
        "Task was destroyed but it is pending!",
        "2026-01-01 10:00:00,123 INFO aioice.ice: Connection(0) ICE completed",
        "(python3:123): GLib-GIO-WARNING **: 10:00:00.000: oops",
    ]
    for line in noise:
        assert stray_lines(line), line
    ui = """\
 ● connected  me @ embedded server  │ echo: opus 41 kb/s loss 0 jitter 2 ms RTT 1
 echo: opus loss 0 jitter 58000 ms RTT 1 ms  │ mic tone 440 Hz · spk null
│07:24:07 Audio devices: PortAudio found no audio devices (is a sound server ▂▂│
who to call (e.g. echo), Enter to dial                        ▐X▌ video   Call
│ echo              out  Connected       0:02                                  │
│07:03:03 Call with echo: state changed from Ringing to Connected              │
│07:03:03 Call with echo: receiving audio                                      │
│07:03:36 Call with echo: state changed from Connected to Ended (ended locall  │
│07:03:01 Embedded server on http://127.0.0.1:42619: you are 'me'; the echo b  │
 e End  h Hold  m Mute  v Video  d Dial  0-9*# DTMF                 ▏^p palette
Pane is dead (status 0, Thu Dec  3 07:03:40 2026)"""
    assert stray_lines(ui) == []


def require_tmux() -> str:
    path = shutil.which("tmux")
    if path is not None:
        return path
    reason = "tmux is not installed (apt-get install tmux; scripts/install.sh --test)"
    if os.environ.get("CI") == "true":
        pytest.fail(f"the real-terminal test cannot run in CI: {reason}", pytrace=False)
    pytest.skip(reason)


# Escape sequences in what the program wrote (CSI, OSC, DCS/APC/PM strings, two-byte ESC x).
_ESCAPES = re.compile(
    r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)"
    r"|\x1b[P_^][^\x1b]*\x1b\\|\x1b[ -/]*[0-~]"
)


def plain_runs(raw: bytes) -> str:
    """The text runs of a terminal byte stream, one per line: every escape sequence becomes a
    line break, so the UI's fragments stay apart and anything written as plain text (a
    library's message, a traceback) stays whole, even if the next repaint covered it."""
    text = raw.decode("utf-8", errors="replace")
    return _ESCAPES.sub("\n", text).replace("\r", "\n")


@dataclass
class Terminal:
    """A private tmux server (own socket name and config) with one 80x24 pane running one
    command. Everything the command writes to the terminal is also recorded raw."""

    tmux: str
    home: Path
    socket: str = field(default_factory=lambda: f"softphone-test-{os.getpid()}-{uuid.uuid4().hex}")
    screens: list[str] = field(default_factory=list)
    started: bool = False

    def run_tmux(self, *args: str, check: bool = True) -> str:
        env = {k: v for k, v in os.environ.items() if k not in ("TMUX", "TMUX_PANE")}
        done = subprocess.run(
            [self.tmux, "-L", self.socket, *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
        if check and done.returncode != 0:
            raise AssertionError(f"tmux {' '.join(args)} failed: {done.stderr.strip()}")
        return done.stdout

    def start(self, command: list[str], env: dict[str, str]) -> None:
        """Run `command` with `env` added, once the raw recording is on; its exit status goes to
        a file (tmux's #{pane_dead_status} came back empty in about half of the runs started
        from Python)."""
        conf = self.home / "tmux.conf"
        conf.write_text(
            "set -g status off\n"  # all 24 rows for the app
            "set -g remain-on-exit on\n"  # keep the last screen after the exit
            "set -g history-limit 5000\n"
            "set -g default-terminal screen-256color\n"
        )
        go, status = self.home / "go", self.status_file
        assigns = " ".join(f"{k}={shlex.quote(v)}" for k, v in env.items())
        line = (
            f"while [ ! -e {shlex.quote(str(go))} ]; do sleep 0.02; done; "
            f"env {assigns} {shlex.join(command)}; "
            f"echo $? > {shlex.quote(str(status))}.tmp; "
            f"mv {shlex.quote(str(status))}.tmp {shlex.quote(str(status))}"
        )
        self.run_tmux(
            "-f", str(conf), "new-session", "-d", "-s", "t", "-x", str(COLUMNS),
            "-y", str(ROWS), "-c", str(self.home), line,
        )  # fmt: skip
        self.started = True
        self.run_tmux("pipe-pane", "-o", "-t", "t", f"cat >> {shlex.quote(str(self.raw_file))}")
        go.touch()

    @property
    def raw_file(self) -> Path:
        return self.home / "terminal.raw"

    @property
    def status_file(self) -> Path:
        return self.home / "exit-status"

    @property
    def exit_status(self) -> int | None:
        """The command's exit status once it has exited, else None."""
        try:
            return int(self.status_file.read_text())
        except (OSError, ValueError):
            return None

    def raw_text(self) -> str:
        try:
            return plain_runs(self.raw_file.read_bytes())
        except FileNotFoundError:
            return ""

    def kill(self) -> None:
        """Kill this tmux server (only this one) and remove its socket file."""
        if self.started:
            socket = self.run_tmux("display-message", "-p", "#{socket_path}", check=False).strip()
            self.run_tmux("kill-server", check=False)
            self.started = False
            if socket.endswith(self.socket):
                Path(socket).unlink(missing_ok=True)

    def pane(self, fmt: str) -> str:
        return self.run_tmux("display-message", "-p", "-t", "t", fmt).strip()

    def capture(self, history: bool = False) -> str:
        args = ["capture-pane", "-p", "-t", "t"]
        if history:
            args += ["-S", "-", "-E", "-"]
        text = self.run_tmux(*args)
        if not self.screens or self.screens[-1] != text:
            self.screens.append(text)
        return text

    def send(self, *keys: str, literal: bool = False) -> None:
        self.run_tmux("send-keys", "-t", "t", *(["-l"] if literal else []), *keys)

    @property
    def dead(self) -> bool:
        return self.exit_status is not None

    def wait(self, what: str, found: Callable[[str], bool], timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while True:
            screen = self.capture()
            if found(screen):
                return screen
            if self.dead:
                raise AssertionError(f"softphone exited while waiting for {what}")
            if time.monotonic() > deadline:
                raise AssertionError(f"no {what} on the screen after {timeout:.0f} s")
            time.sleep(POLL)


@pytest.fixture
def terminal(tmp_path: Path) -> Iterator[Terminal]:
    term = Terminal(require_tmux(), tmp_path)
    try:
        yield term
    finally:
        term.kill()


def isolated_env(root: Path) -> dict[str, str]:
    env = {
        "HOME": root / "home",
        "XDG_CONFIG_HOME": root / "config",
        "XDG_DATA_HOME": root / "data",
        "XDG_STATE_HOME": root / "state",
        "XDG_CACHE_HOME": root / "cache",
        "XDG_RUNTIME_DIR": root / "runtime",
    }
    for path in env.values():
        path.mkdir(mode=0o700)
    return {k: str(v) for k, v in env.items()} | {"LANG": "C.UTF-8", "LC_ALL": "C.UTF-8"}


def diagnostics(term: Terminal, root: Path) -> str:
    last = term.screens[-1] if term.screens else "(no screen captured)"
    if term.screens and not any(screen.strip() for screen in term.screens):
        last = "(every screen captured was blank: did the TUI paint somewhere else?)"
    logs = sorted(root.glob("state/**/*.log"))
    tail = ""
    if logs:
        lines = logs[0].read_text(errors="replace").splitlines()
        # Escape sequences shown, not played (the TUI's own output ends up here if misrouted).
        tail = "\n".join(line[:200].replace("\x1b", "\\e") for line in lines[-25:])
    return f"last screen:\n{last}\nlog tail ({logs[0] if logs else 'no log file'}):\n{tail}"


def second_user_calls(
    terminal: Terminal, root: Path, env: dict[str, str], namespace: Path
) -> subprocess.Popen[str]:
    """Add bob to the embedded server's database (`softphone user add`, as a person would)
    and start him calling `me` from another process, in the softphone's network namespace when
    it has one."""
    found = URL.search(terminal.raw_text())
    assert found, "the embedded server's address was never shown"
    data = Path(env["XDG_DATA_HOME"]) / "softphone" / "embedded"
    secret = {"SOFTPHONE_PASSWORD": "bob's password 123"}
    added = subprocess.run(
        [str(SOFTPHONE), "user", "--data-dir", str(data), "add", "bob"],
        env={**os.environ, **env, **secret},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert added.returncode == 0, added.stderr
    command = [sys.executable, "-m", "tests.tui._second_party", found[1], "bob", "me"]
    if namespace.exists():
        pid = namespace.read_text().strip()
        command = ["nsenter", f"--net=/proc/{pid}/ns/net", *command]
    return subprocess.Popen(
        command,
        env={**os.environ, **secret},
        cwd=Path(__file__).parents[2],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )


def test_echo_call_in_a_real_terminal(terminal: Terminal, tmp_path: Path) -> None:
    if not SOFTPHONE.exists():
        pytest.fail(f"{SOFTPHONE} is missing: install the package (pip install -e .)")
    env = isolated_env(tmp_path)
    command = [str(SOFTPHONE), "--audio-in", "tone", "--audio-out", "null"]
    # Whatever the outer environment says, the run is the embedded default.
    unset = ("SOFTPHONE_CONFIG", "SOFTPHONE_PASSWORD", "PYTHONWARNINGS")
    full = ["env", *(f"-u{name}" for name in unset), *command]
    namespace = tmp_path / "netns-pid"
    if os.geteuid() == 0:
        # As root (CI), run it where only loopback exists: nothing can leave the machine, and
        # the call to echo must work on a box with no other interface (127.0.0.1 candidate).
        # The pid file lets the second user join that namespace.
        up = f'ip link set lo up && echo $$ > {shlex.quote(str(namespace))} && exec "$@"'
        full = ["unshare", "-n", "sh", "-c", up, "sh", *full]
    terminal.start(full, env)
    try:
        assert terminal.pane("#{pane_width}x#{pane_height}") == f"{COLUMNS}x{ROWS}"
        terminal.wait("login", lambda s: bool(LOGGED_IN.search(s)), STARTUP_TIMEOUT)
        terminal.send("echo", literal=True)
        terminal.send("Enter")
        terminal.wait("Connected call to echo", lambda s: bool(CONNECTED.search(s)), CALL_TIMEOUT)
        terminal.wait(
            "received audio (status line: loss N)", lambda s: bool(MEDIA.search(s)), MEDIA_TIMEOUT
        )
        terminal.send("e")
        terminal.wait("the ended call", lambda s: bool(ENDED.search(s)), END_TIMEOUT)
        bob = second_user_calls(terminal, tmp_path, env, namespace)
        try:
            terminal.wait("bob ringing", lambda s: bool(BOB_RINGS.search(s)), CALL_TIMEOUT)
            terminal.send("a")  # the Answer button has the focus, and a is its key
            terminal.wait("bob connected", lambda s: bool(BOB_CONNECTED.search(s)), CALL_TIMEOUT)
            terminal.send("e")
            terminal.wait("bob's call ended", lambda s: bool(BOB_ENDED.search(s)), END_TIMEOUT)
            said, _ = bob.communicate(timeout=EXIT_TIMEOUT)
        finally:
            if bob.poll() is None:
                bob.kill()
                bob.wait()
        assert said.split() == ["ringing", "connected", "ended"], said
        terminal.send("C-q")
        deadline = time.monotonic() + EXIT_TIMEOUT
        while not terminal.dead:
            screen = terminal.capture()
            assert not QUIT_QUESTION.search(screen), "ctrl+q asked although no call was live"
            if time.monotonic() > deadline:
                raise AssertionError(f"softphone still running {EXIT_TIMEOUT:.0f} s after ctrl+q")
            time.sleep(POLL)
        status = terminal.exit_status
        after = terminal.capture(history=True)
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{diagnostics(terminal, tmp_path)}") from None
    assert status == 0, f"exit status {status}\n{diagnostics(terminal, tmp_path)}"
    raw = terminal.raw_text()
    assert "Connected to echo." in raw  # the recording holds the UI's text
    stray = sorted({line for text in [*terminal.screens, raw] for line in stray_lines(text)})
    assert stray == [], "stray output on the terminal:\n" + "\n".join(stray)
    # The alternate screen is gone: what is left is the (empty) normal screen.
    assert not CONNECTED.search(after) and not ENDED.search(after), after
