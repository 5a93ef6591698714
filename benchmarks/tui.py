"""TUI benchmark: start-up to the first painted frame, key-press-to-repaint latency, and CPU
of the UI process idle and during a call to the echo bot, each beside a reference measured in
the same run.

Run from the repository root (needs tmux)::

    python -m benchmarks.tui [--quick]

One JSON object goes to stdout; progress goes to stderr.

Everything runs in a real terminal: a private tmux server per run (own socket name, own config,
status bar off) with one 80x24 pane. The pane's program waits on a FIFO until the benchmark
releases it; everything it writes to the terminal comes back through `tmux pipe-pane` into a
FIFO that a reader thread here timestamps (`time.monotonic()`, system-wide, so comparable with
the child's own clock). The app is the installed `softphone` console script on the embedded
default (isolated HOME/XDG dirs, `--audio-in tone --audio-out null`); no test hook in the app.

- first_paint: release → the first chunk of terminal output with visible text (Textual writes
  a whole frame in one write; tmux passes it on in a few chunks within ~1-2 ms:
  `layout_marker_ms` is when a mid-frame text arrived). Also: → `Logged in as` (engine
  ready), and ctrl+q → exit. The
  breakdown (interpreter start, imports, the rest) comes from the same app run through a small
  wrapper (`python -c`, timestamps before and after importing `softphone.cli`,
  `softphone.tui.app` and `textual.app`, then `softphone.cli.main()`). References: a Textual
  hello world and the stack probe's 4-pane app (§5), same method. Plus `-X importtime` and
  best-of-5 wall clock of the pre-paint imports.
- key_latency: `tmux send-keys` of one letter into the focused dial box → the first chunk
  containing the box's new text (its last 6 letters; every 6-gram of the typed text is
  unique). Reference: a bare Textual app with one focused Input. Both include spawning the
  tmux client (`tmux_command_ms`).
- cpu: the UI process from /proc/<pid>/stat over a window, idle after login and during a call
  to echo (after received audio shows on the status line); per thread from
  /proc/<pid>/task/*/stat, named by the wrapper (Python thread names are not OS thread names
  on 3.11). The embedded server and the echo bot run in this process too
  (`softphone-embedded`): the call's far end is in the figure. References: the bare Input app
  idle, and the same embedded server + echo + `EngineThread` call without any UI (a child
  process, no terminal).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.metadata
import json
import math
import os
import platform
import random
import re
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from benchmarks._calls_common import LoadWindow, top_other_processes

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable
SOFTPHONE = Path(PY).with_name("softphone")
COLUMNS, ROWS = 80, 24
TARGET_FIRST_PAINT_S = 0.6
APP_ARGS = ["--audio-in", "tone", "--audio-out", "null"]
HEAVY = ("aiortc", "av", "numpy", "cv2", "sounddevice", "aiohttp", "softphone.engine")
REFERENCE = {
    "source": "/work/shared/reference/stack-probe.md §5 (same machine class, earlier run)",
    "four_pane_tmux_120x40_first_refresh_ms": [355, 523],
    "four_pane_tmux_imports_ms": [246, 357],
    "import_textual_app_s": 0.28,
    "import_textual_aiortc_av_s": 0.57,
    "textual_with_loopback_call_cpu_percent": 51,
    "bare_aiortc_audio_call_both_ends_cpu_percent": 21.6,
}

LOGGED_IN = re.compile(r"Logged in as \w+")
CONNECTED = re.compile(r"\bConnected\b")
MEDIA = re.compile(r"\bloss \d+")  # status line: inbound RTP stats exist
ENDED = re.compile(r"\bEnded\b")


def log(msg: str) -> None:
    print(f"[tui {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# -------------------------------------------------------------------------------- statistics


def pct(xs: list[float], p: float) -> float:
    s = sorted(xs)
    if not s:
        return math.nan
    k = (len(s) - 1) * p / 100
    lo, hi = math.floor(k), math.ceil(k)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


def summary_ms(seconds: list[float]) -> dict[str, Any]:
    """n, min, median, p95, max, stdev in ms."""
    xs = [x * 1000 for x in seconds]
    if not xs:
        return {"n": 0}
    return {
        "n": len(xs),
        "min": round(min(xs), 1),
        "median": round(pct(xs, 50), 1),
        "p95": round(pct(xs, 95), 1),
        "max": round(max(xs), 1),
        "stdev": round(statistics.pstdev(xs), 1),
    }


def ratio(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or not b or math.isnan(a) or math.isnan(b):
        return None
    return round(a / b, 2)


# -------------------------------------------------------------------------------- children

# The apps run in the pane. Each writes {"t_interp", "t_imports"} (monotonic) to $BENCH_OUT
# once its imports are done; the softphone wrapper also keeps $BENCH_OUT.threads up to date
# ({native thread id: Python thread name}).
THREAD_MAP = r"""
def _thread_map(path):
    import json, os, threading, time
    last = None
    while True:
        names = {str(t.native_id): t.name for t in threading.enumerate() if t.native_id}
        if names != last:
            with open(path + ".tmp", "w") as f:
                json.dump(names, f)
            os.replace(path + ".tmp", path)
            last = names
        time.sleep(0.5)
"""

SOFTPHONE_WRAPPER = (
    r"""
import json, os, sys, threading, time
T0 = time.monotonic()
import softphone.cli, softphone.tui.app, textual.app
T1 = time.monotonic()
OUT = os.environ["BENCH_OUT"]
with open(OUT, "w") as f:
    json.dump({"t_interp": T0, "t_imports": T1}, f)
"""
    + THREAD_MAP
    + r"""
threading.Thread(target=_thread_map, args=(OUT + ".threads",), daemon=True,
                 name="bench-thread-map").start()
sys.argv[0] = "softphone"
sys.exit(softphone.cli.main())
"""
)

HELLO = r"""
import json, os, time
T0 = time.monotonic()
from textual.app import App
from textual.widgets import Static
T1 = time.monotonic()

class Hello(App[None]):
    def compose(self):
        yield Static("Hello, World!")

with open(os.environ["BENCH_OUT"], "w") as f:
    json.dump({"t_interp": T0, "t_imports": T1}, f)
Hello().run()
"""

# stack-probe.md §5, textual_start.py's FourPane (the same widgets and CSS).
FOUR_PANE = r"""
import json, os, time
T0 = time.monotonic()
from textual.app import App
from textual.containers import Grid
from textual.widgets import Footer, Header, Log, Static
T1 = time.monotonic()

class FourPane(App[None]):
    CSS = '''
    Grid { grid-size: 2 2; }
    .pane { border: round $accent; height: 100%; }
    '''
    def compose(self):
        yield Header()
        with Grid():
            yield Static("Contacts\nalice\nbob", classes="pane", id="contacts")
            yield Static("Call: idle", classes="pane", id="call")
            yield Log(classes="pane", id="log")
            yield Static("Video preview", classes="pane", id="video")
        yield Footer()
    def on_mount(self):
        self.query_one(Log).write_line("ready")

with open(os.environ["BENCH_OUT"], "w") as f:
    json.dump({"t_interp": T0, "t_imports": T1}, f)
FourPane().run()
"""

INPUT_APP = r"""
import json, os, time
T0 = time.monotonic()
from textual.app import App
from textual.widgets import Footer, Input
T1 = time.monotonic()

class Typing(App[None]):
    def compose(self):
        yield Input(placeholder="type here")
        yield Footer()

with open(os.environ["BENCH_OUT"], "w") as f:
    json.dump({"t_interp": T0, "t_imports": T1}, f)
Typing().run()
"""

# No UI: the embedded server, the echo bot and an EngineThread in one process, driven by files
# in $BENCH_DIR: writes `ready` after login, calls echo when `call` appears, writes `connected`,
# quits when `stop` appears.
HEADLESS = (
    r"""
import json, logging, os, sys, threading, time
from pathlib import Path
OUT = os.environ["BENCH_OUT"]
D = Path(os.environ["BENCH_DIR"])
"""
    + THREAD_MAP
    + r"""
logging.basicConfig(filename=str(D / "headless.log"), level=logging.INFO)
threading.Thread(target=_thread_map, args=(OUT + ".threads",), daemon=True,
                 name="bench-thread-map").start()
from softphone.engine import EngineThread
from softphone.tui.embedded import start_embedded

def wait_for(name):
    while not (D / name).exists():
        time.sleep(0.05)

embedded = start_embedded("me")
engine = EngineThread(audio_in="tone", audio_out="null")
engine.start(embedded.url, embedded.user, lambda: embedded.password)
(D / "ready").touch()
wait_for("call")
call_id = engine.make("echo", audio=True, video=False)
deadline = time.monotonic() + 15
stats = {}
while time.monotonic() < deadline:
    try:  # refused until the call is established
        stats = engine.get_stats(call_id)
    except Exception:
        stats = {}
    if (stats.get("audio") or {}).get("packets_received"):
        break
    time.sleep(0.1)
(D / "connected").write_text(json.dumps({"stats": stats}, default=str))
wait_for("stop")
engine.close()
embedded.stop()
"""
)


# -------------------------------------------------------------------------------- the terminal

_ESCAPES = re.compile(
    rb"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)"
    rb"|\x1b[P_^][^\x1b]*\x1b\\|\x1b[ -/]*[0-~]"
)


def plain(raw: bytes) -> str:
    """The text runs of terminal output, each escape sequence replaced by a line break."""
    return _ESCAPES.sub(b"\n", raw).decode("utf-8", errors="replace")


class Stream:
    """Reads a FIFO (fed by `tmux pipe-pane`) in a thread; each chunk with its arrival time."""

    def __init__(self, fifo: Path) -> None:
        self.fifo = fifo
        self.chunks: list[tuple[float, bytes]] = []
        self.opened = threading.Event()
        self.cond = threading.Condition()
        self.thread = threading.Thread(target=self._read, name="stream", daemon=True)
        self.thread.start()

    def _read(self) -> None:
        fd = os.open(self.fifo, os.O_RDONLY)
        self.opened.set()
        try:
            while True:
                data = os.read(fd, 1 << 16)
                now = time.monotonic()
                with self.cond:
                    if data:
                        self.chunks.append((now, data))
                    self.cond.notify_all()
                if not data:
                    return
        finally:
            os.close(fd)

    def wait_for(self, found: Callable[[str], bool], since: float, timeout: float) -> float | None:
        """Arrival time of the first chunk after `since` with which the text that arrived
        since then satisfies `found`; None after `timeout`."""
        deadline = time.monotonic() + timeout
        with self.cond:
            start = next((i for i, (t, _) in enumerate(self.chunks) if t >= since), None)
            j = start if start is not None else len(self.chunks)
            while True:
                while j < len(self.chunks):
                    if start is None:
                        start = j
                    if found(plain(b"".join(c for _, c in self.chunks[start : j + 1]))):
                        return self.chunks[j][0]
                    j += 1
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not self.thread.is_alive():
                    return None
                self.cond.wait(remaining)

    def text(self) -> str:
        with self.cond:
            return plain(b"".join(c for _, c in self.chunks))


def children(pid: int) -> list[int]:
    found = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        if ppid == pid:
            found.append(int(d))
    return found


class Pane:
    """One program in a fresh private tmux server, 80x24, released by `go()`."""

    def __init__(self, work: Path, command: list[str], env: dict[str, str]) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="run-", dir=work))
        self.cwd = work  # not the checkout: `python -c` puts the cwd first on sys.path
        self.socket = f"softphone-bench-{os.getpid()}-{uuid.uuid4().hex}"
        self.command = command
        self.env = env | {"BENCH_OUT": str(self.dir / "times.json"), "BENCH_DIR": str(self.dir)}
        self.status = self.dir / "status"
        self.started = False
        self.stream: Stream | None = None
        self.t_go = math.nan

    def tmux(self, *args: str, check: bool = True) -> str:
        env = {k: v for k, v in os.environ.items() if k not in ("TMUX", "TMUX_PANE")}
        done = subprocess.run(
            ["tmux", "-L", self.socket, *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
        if check and done.returncode != 0:
            raise RuntimeError(f"tmux {' '.join(args)}: {done.stderr.strip()}")
        return done.stdout

    def start(self) -> None:
        go, out = self.dir / "go", self.dir / "out"
        os.mkfifo(go)
        os.mkfifo(out)
        conf = self.dir / "tmux.conf"
        conf.write_text(
            "set -g status off\nset -g remain-on-exit on\nset -g default-terminal screen-256color\n"
        )
        self.stream = Stream(out)
        assigns = " ".join(f"{k}={shlex.quote(v)}" for k, v in self.env.items())
        q = shlex.quote
        status = q(str(self.status))
        line = (
            f"read _ < {q(str(go))}; env {assigns} {shlex.join(self.command)}; "
            f"echo $? > {status}.tmp; mv {status}.tmp {status}"
        )
        self.tmux(
            "-f", str(conf), "new-session", "-d", "-s", "b", "-x", str(COLUMNS),
            "-y", str(ROWS), "-c", str(self.cwd), line,
        )  # fmt: skip
        self.started = True
        self.tmux("pipe-pane", "-o", "-t", "b", f"exec cat > {q(str(out))}")
        if not self.stream.opened.wait(5):
            raise RuntimeError("pipe-pane did not open the output FIFO")

    def go(self) -> float:
        """Release the program; returns the monotonic time of the release."""
        fd = os.open(self.dir / "go", os.O_WRONLY)
        self.t_go = time.monotonic()
        os.write(fd, b"\n")
        os.close(fd)
        return self.t_go

    def pid(self, timeout: float = 5.0) -> int | None:
        """The program's pid (the shell's child; `env` execs the program)."""
        shell = int(self.tmux("display-message", "-p", "-t", "b", "#{pane_pid}").strip())
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for pid in children(shell):
                with contextlib.suppress(OSError):
                    if Path(f"/proc/{pid}/comm").read_text().strip() != "env":
                        return pid
            time.sleep(0.01)
        return None

    def tmux_pid(self) -> int:
        return int(self.tmux("display-message", "-p", "#{pid}").strip())

    def send(self, *keys: str, literal: bool = False) -> None:
        self.tmux("send-keys", "-t", "b", *(["-l"] if literal else []), *keys)

    def wait(self, pattern: re.Pattern[str], since: float, timeout: float) -> float | None:
        assert self.stream is not None
        return self.stream.wait_for(lambda s: bool(pattern.search(s)), since, timeout)

    def first_paint(self, timeout: float) -> float | None:
        assert self.stream is not None
        return self.stream.wait_for(lambda s: bool(s.strip()), self.t_go, timeout)

    def exit_status(self) -> int | None:
        try:
            return int(self.status.read_text())
        except (OSError, ValueError):
            return None

    def quit(self, timeout: float = 5.0) -> tuple[float | None, int | None]:
        """ctrl+q; (seconds to exit, status) or (None, None) if still running."""
        t0 = time.monotonic()
        self.send("C-q")
        while time.monotonic() - t0 < timeout:
            status = self.exit_status()
            if status is not None:
                return time.monotonic() - t0, status
            time.sleep(0.01)
        return None, None

    def times(self) -> dict[str, float]:
        try:
            data = json.loads((self.dir / "times.json").read_text())
        except (OSError, ValueError):
            return {}
        return {k: float(v) for k, v in data.items()}

    def thread_names(self) -> dict[int, str]:
        try:
            data = json.loads((self.dir / "times.json.threads").read_text())
        except (OSError, ValueError):
            return {}
        return {int(k): str(v) for k, v in data.items()}

    def screen(self) -> str:
        return self.tmux("capture-pane", "-p", "-t", "b", check=False)

    def close(self) -> None:
        """Kill this tmux server (only this one) and remove its socket file."""
        if self.started:
            socket = self.tmux("display-message", "-p", "#{socket_path}", check=False).strip()
            self.tmux("kill-server", check=False)
            self.started = False
            if socket.endswith(self.socket):
                Path(socket).unlink(missing_ok=True)
        if self.stream is not None:
            self.stream.thread.join(2)


@contextlib.contextmanager
def pane(work: Path, command: list[str], env: dict[str, str]) -> Iterator[Pane]:
    p = Pane(work, command, env)
    try:
        p.start()
        yield p
    finally:
        p.close()


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
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
    return {k: str(v) for k, v in env.items()} | {"LANG": "C.UTF-8", "LC_ALL": "C.UTF-8"}


# -------------------------------------------------------------------------------- CPU


def _ticks(path: str) -> float:
    """utime+stime seconds from a /proc stat file (0 if gone)."""
    try:
        with open(path) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (float(fields[11]) + float(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


def _thread_ticks(pid: int) -> dict[int, float]:
    try:
        tids = [int(t) for t in os.listdir(f"/proc/{pid}/task")]
    except OSError:
        return {}
    return {tid: _ticks(f"/proc/{pid}/task/{tid}/stat") for tid in tids}


def _group(name: str) -> str:
    if name == "MainThread" or name.startswith("textual"):
        return "main_and_textual"  # the UI; in the no-UI reference only the idle driver
    if name == "softphone-engine":
        return "engine_loop"
    if name == "softphone-embedded":
        return "embedded_server_and_echo_loop"
    return "workers_and_codecs"


def cpu_window(
    pid: int, secs: float, names: Callable[[], dict[int, str]], extra: dict[str, int]
) -> dict[str, Any]:
    """CPU of `pid` (whole process and per thread) and of the `extra` pids over `secs`."""
    load = LoadWindow([pid, *extra.values()])
    t0 = time.monotonic()
    proc0 = _ticks(f"/proc/{pid}/stat")
    threads0 = _thread_ticks(pid)
    extra0 = {k: _ticks(f"/proc/{p}/stat") for k, p in extra.items()}
    time.sleep(secs)
    threads1 = _thread_ticks(pid)
    proc1 = _ticks(f"/proc/{pid}/stat")
    extra1 = {k: _ticks(f"/proc/{p}/stat") for k, p in extra.items()}
    wall = time.monotonic() - t0
    machine = load.done()
    named = names()
    per_name: dict[str, float] = {}
    for tid, t1 in threads1.items():
        used = t1 - threads0.get(tid, 0.0)
        name = named.get(tid, f"unnamed (tid {tid})" if tid != pid else "MainThread")
        per_name[name] = per_name.get(name, 0.0) + used
    attributed = sum(per_name.values())
    groups: dict[str, float] = {}
    for name, used in per_name.items():
        groups[_group(name)] = groups.get(_group(name), 0.0) + used
    process = proc1 - proc0
    if process - attributed >= 2 / os.sysconf("SC_CLK_TCK"):  # more than tick rounding
        groups["unattributed_exited_threads"] = process - attributed

    def percent(x: float) -> float:
        return round(x / wall * 100, 1)

    return {
        "window_s": round(wall, 1),
        "process_cpu_percent": percent(process),
        "groups_percent": {k: percent(v) for k, v in sorted(groups.items())},
        "threads_percent": {
            k: percent(v) for k, v in sorted(per_name.items(), key=lambda kv: -kv[1]) if v > 0
        },
        **{f"{k}_cpu_percent": percent(extra1[k] - extra0[k]) for k in extra},
        "machine": machine,
    }


# -------------------------------------------------------------------------------- phases


def import_costs(cwd: Path) -> dict[str, Any]:
    """What the app imports before its first paint (softphone.cli, softphone.tui.app), by
    -X importtime and by wall clock (best of 5), beside bare Python and textual.app."""

    def best(code: str, runs: int = 5) -> float:
        times = []
        for _ in range(runs):
            t0 = time.monotonic()
            subprocess.run([PY, "-c", code], check=True, capture_output=True, cwd=cwd)
            times.append(time.monotonic() - t0)
        return min(times)

    pre = "import softphone.cli, softphone.tui.app"
    done = subprocess.run(
        [PY, "-X", "importtime", "-c", pre], capture_output=True, text=True, cwd=cwd, check=True
    )
    rows = []
    for line in done.stderr.splitlines():
        m = re.match(r"import time:\s+(\d+) \|\s+(\d+) \| (\s*)(\S+)", line)
        if m:
            rows.append((int(m.group(1)), int(m.group(2)), len(m.group(3)), m.group(4)))
    top = [r for r in rows if r[2] == 0]
    heavy = subprocess.run(
        [PY, "-c", f"import json, sys; {pre}; print(json.dumps([m for m in {HEAVY!r} "
         "if m in sys.modules]))"],
        capture_output=True, text=True, cwd=cwd, check=True,
    ).stdout  # fmt: skip
    bare = best("pass")
    return {
        "pre_paint_imports": pre,
        "heavy_modules_loaded_before_paint": json.loads(heavy),
        "wall_best_of_5_ms": {
            "python_bare": round(bare * 1000, 1),
            "textual_app": round(best("import textual.app") * 1000, 1),
            "pre_paint_imports": round(best(pre) * 1000, 1),
        },
        "importtime_top_level_cumulative_ms": {
            name: round(cum / 1000, 1) for _, cum, _, name in sorted(top, key=lambda r: -r[1])[:8]
        },
        "importtime_sum_top_level_ms": round(sum(r[1] for r in top) / 1000, 1),
        "importtime_heaviest_self_ms": {
            name: round(own / 1000, 1) for own, _, _, name in sorted(rows, key=lambda r: -r[0])[:8]
        },
        "note": "-X importtime runs high (stack-probe §5); wall times include interpreter start",
    }


def _paint_run(
    work: Path, command: list[str], env: dict[str, str], login: bool, marker: str
) -> dict[str, Any]:
    with pane(work, command, env) as p:
        t_go = p.go()
        t_paint = p.first_paint(20)
        row: dict[str, Any] = {}
        if t_paint is None:
            row["error"] = "no visible output within 20 s"
            row["screen"] = p.screen()
            return row
        row["first_paint"] = t_paint - t_go
        # tmux hands a frame over in a few chunks; `marker` (mid-frame) shows it is all there.
        t_marker = p.wait(re.compile(re.escape(marker)), t_go, 5)
        if t_marker is not None:
            row["layout_marker"] = t_marker - t_go
        times = p.times()
        if times:
            row["interpreter"] = times["t_interp"] - t_go
            row["imports"] = times["t_imports"] - times["t_interp"]
            row["after_imports_to_paint"] = t_paint - times["t_imports"]
        if login:
            t_login = p.wait(LOGGED_IN, t_paint, 20)
            if t_login is None:
                row["error"] = "no 'Logged in as' within 20 s of the first paint"
                row["screen"] = p.screen()
                return row
            row["paint_to_logged_in"] = t_login - t_paint
        else:
            time.sleep(0.3)
        quit_s, status = p.quit()
        if quit_s is None:
            row["error"] = "still running 5 s after ctrl+q (killed)"
        else:
            row["quit"] = quit_s
            if status != 0:
                row["error"] = f"exit status {status}"
        return row


def _collect(rows: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {"runs": len(rows)}
    for key in ("first_paint", "layout_marker", "interpreter", "imports",
                "after_imports_to_paint", "paint_to_logged_in", "quit"):  # fmt: skip
        values = [r[key] for r in rows if key in r]
        if values:
            out[f"{key}_ms"] = summary_ms(values)
    imports = [r["imports"] / r["first_paint"] for r in rows if "imports" in r]
    if imports:
        out["import_share_of_first_paint"] = round(statistics.median(imports), 2)
    errors = [r for r in rows if "error" in r]
    if errors:
        out["errors"] = [r["error"] for r in errors]
        out["last_error_screen"] = next((r["screen"] for r in errors if "screen" in r), None)
    return out


def _median_ms(block: dict[str, Any], key: str) -> float | None:
    value = block.get(key, {}).get("median")
    return float(value) if value is not None else None


def phase_first_paint(work: Path, env: dict[str, str], runs: int) -> dict[str, Any]:
    scripts = work / "scripts"
    scripts.mkdir(exist_ok=True)
    for name, source in (("hello.py", HELLO), ("four_pane.py", FOUR_PANE)):
        (scripts / name).write_text(source)
    apps: dict[str, tuple[list[str], bool, str]] = {
        "softphone": ([str(SOFTPHONE), *APP_ARGS], True, "Messages"),
        "softphone_wrapped": ([PY, "-c", SOFTPHONE_WRAPPER, *APP_ARGS], True, "Messages"),
        "hello_world": ([PY, str(scripts / "hello.py")], False, "Hello, World!"),
        "four_pane_probe": ([PY, str(scripts / "four_pane.py")], False, "Video preview"),
    }
    log("first paint: first start of softphone (fresh data dir: creates users)")
    first = _paint_run(work, apps["softphone"][0], env, True, "Messages")
    rows: dict[str, list[dict[str, Any]]] = {name: [] for name in apps}
    for i in range(runs):
        log(f"first paint: round {i + 1}/{runs} ({', '.join(apps)})")
        for name, (command, login, marker) in apps.items():
            rows[name].append(_paint_run(work, command, env, login, marker))
    result: dict[str, Any] = {
        "method": "release of the pane's program -> first terminal output with visible text",
        "softphone_first_start": {
            k: round(v * 1000, 1) if isinstance(v, float) else v for k, v in first.items()
        },
    }
    for name in apps:
        result[name] = _collect(rows[name])
    median = _median_ms(result["softphone"], "first_paint_ms")
    result["target_s"] = TARGET_FIRST_PAINT_S
    result["met"] = median is not None and median / 1000 < TARGET_FIRST_PAINT_S
    result["softphone_vs_hello_world"] = ratio(
        median, _median_ms(result["hello_world"], "first_paint_ms")
    )
    result["softphone_vs_four_pane"] = ratio(
        median, _median_ms(result["four_pane_probe"], "first_paint_ms")
    )
    return result


def _letters(n: int, seed: int = 7) -> str:
    """n letters whose 6-grams are all distinct (so each box state is recognisable)."""
    rng = random.Random(seed)
    alphabet = "abcdfgijklnoprtuvwxyz"
    while True:
        text = "".join(rng.choice(alphabet) for _ in range(n))
        grams = [text[i : i + 6] for i in range(n - 5)]
        if len(set(grams)) == len(grams):
            return text


def _typing_run(
    work: Path, command: list[str], env: dict[str, str], login: bool, presses: int
) -> dict[str, Any]:
    text = _letters(presses + 6)
    with pane(work, command, env) as p:
        p.go()
        t_paint = p.first_paint(20)
        if t_paint is None:
            return {"error": "no visible output within 20 s", "screen": p.screen()}
        if login and p.wait(LOGGED_IN, t_paint, 20) is None:
            return {"error": "no 'Logged in as' within 20 s", "screen": p.screen()}
        time.sleep(1.0)
        latencies: list[float] = []
        missed = 0
        for i, letter in enumerate(text):
            suffix = text[max(0, i - 5) : i + 1]
            t0 = time.monotonic()
            p.send(letter, literal=True)
            seen = p.wait(re.compile(re.escape(suffix)), t0, 2.0)
            if i >= 6:  # the first 6 letters only make the suffixes unique
                if seen is None:
                    missed += 1
                else:
                    latencies.append(seen - t0)
            time.sleep(random.uniform(0.03, 0.08))
        quit_s, status = p.quit()
        out: dict[str, Any] = {"presses": len(text) - 6, "missed": missed}
        out |= summary_ms(latencies)
        if quit_s is None:
            out["error"] = "still running 5 s after ctrl+q (killed)"
        elif status != 0:
            out["error"] = f"exit status {status}"
        return out


def tmux_command_ms(work: Path) -> float:
    """Median round trip of one tmux client command (what each send-keys costs on top)."""
    with pane(work, ["sleep", "30"], {}) as p:
        p.go()
        times = []
        for _ in range(20):
            t0 = time.monotonic()
            p.tmux("display-message", "-p", "-t", "b", "x")
            times.append(time.monotonic() - t0)
    return round(statistics.median(times) * 1000, 2)


def phase_keys(work: Path, env: dict[str, str], presses: int) -> dict[str, Any]:
    scripts = work / "scripts"
    scripts.mkdir(exist_ok=True)
    (scripts / "input_app.py").write_text(INPUT_APP)
    log(f"key latency: {presses} letters into softphone's dial box")
    ours = _typing_run(work, [str(SOFTPHONE), *APP_ARGS], env, True, presses)
    log(f"key latency: {presses} letters into a bare Textual Input")
    bare = _typing_run(work, [PY, str(scripts / "input_app.py")], env, False, presses)
    return {
        "method": "tmux send-keys (client spawn included) -> first output chunk with the new text",
        "tmux_command_ms": tmux_command_ms(work),
        "softphone": ours,
        "bare_input_app": bare,
        "median_ratio": ratio(ours.get("median"), bare.get("median")),
        "p95_ratio": ratio(ours.get("p95"), bare.get("p95")),
    }


def phase_cpu(work: Path, env: dict[str, str], secs: float) -> dict[str, Any]:
    result: dict[str, Any] = {"window_s": secs}
    log(f"cpu: softphone idle {secs:.0f} s, then in a call to echo {secs:.0f} s")
    with pane(work, [PY, "-c", SOFTPHONE_WRAPPER, *APP_ARGS], env) as p:
        t_go = p.go()
        pid = p.pid()
        t_login = p.wait(LOGGED_IN, t_go, 30)
        if pid is None or t_login is None:
            return result | {"error": "softphone did not log in", "screen": p.screen()}
        time.sleep(2.0)
        extra = {"tmux_server": p.tmux_pid()}
        result["softphone_idle"] = cpu_window(pid, secs, p.thread_names, extra)
        t0 = time.monotonic()
        p.send("echo", literal=True)
        p.send("Enter")
        connected = p.wait(CONNECTED, t0, 15)
        media = p.wait(MEDIA, t0, 15)
        if connected is None or media is None:
            result["softphone_call"] = {
                "error": "no Connected call with media",
                "screen": p.screen(),
            }
        else:
            result["softphone_call_setup_ms"] = {
                "enter_to_connected": round((connected - t0) * 1000, 1),
                "enter_to_media_on_status_line": round((media - t0) * 1000, 1),
            }
            time.sleep(1.0)
            result["softphone_call"] = cpu_window(pid, secs, p.thread_names, extra)
            t1 = time.monotonic()
            p.send("e")
            if p.wait(ENDED, t1, 10) is None:
                result["softphone_call"]["end_error"] = "no Ended after e"
        quit_s, status = p.quit()
        if quit_s is None:
            result["quit_error"] = "still running 5 s after ctrl+q (killed)"
        elif status != 0:
            result["quit_error"] = f"exit status {status}"

    log(f"cpu: bare Textual Input app idle {secs:.0f} s")
    scripts = work / "scripts"
    scripts.mkdir(exist_ok=True)
    (scripts / "input_app.py").write_text(INPUT_APP)
    with pane(work, [PY, str(scripts / "input_app.py")], env) as p:
        p.go()
        pid = p.pid()
        if pid is None or p.first_paint(20) is None:
            result["bare_input_app_idle"] = {"error": "no paint", "screen": p.screen()}
        else:
            time.sleep(2.0)
            extra = {"tmux_server": p.tmux_pid()}
            result["bare_input_app_idle"] = cpu_window(pid, secs, lambda: {}, extra)
        p.quit()

    log(f"cpu: no UI (embedded server + echo + EngineThread) idle and in a call, {secs:.0f} s each")
    result |= _headless_cpu(work, env, secs)
    idle = result.get("softphone_idle", {}).get("process_cpu_percent")
    call = result.get("softphone_call", {}).get("process_cpu_percent")
    h_idle = result.get("no_ui_idle", {}).get("process_cpu_percent")
    h_call = result.get("no_ui_call", {}).get("process_cpu_percent")
    if idle is not None and h_idle is not None:
        result["ui_cost_idle_percent"] = round(idle - h_idle, 1)
    if call is not None and h_call is not None:
        result["ui_cost_call_percent"] = round(call - h_call, 1)
    return result


def _headless_cpu(work: Path, env: dict[str, str], secs: float) -> dict[str, Any]:
    d = Path(tempfile.mkdtemp(prefix="headless-", dir=work))
    out = d / "times.json"
    child_env = os.environ | env | {"BENCH_OUT": str(out), "BENCH_DIR": str(d)}
    result: dict[str, Any] = {}

    def names() -> dict[int, str]:
        try:
            return {
                int(k): str(v) for k, v in json.loads(Path(f"{out}.threads").read_text()).items()
            }
        except (OSError, ValueError):
            return {}

    def wait(name: str, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if (d / name).exists():
                return True
            if proc.poll() is not None:
                return False
            time.sleep(0.05)
        return False

    with open(d / "stdio.txt", "w") as stdio:
        proc = subprocess.Popen(
            [PY, "-c", HEADLESS], env=child_env, stdout=stdio, stderr=stdio, cwd=work
        )
        try:
            if not wait("ready", 30):
                return {"no_ui_error": "the headless engine did not log in"}
            time.sleep(2.0)
            result["no_ui_idle"] = cpu_window(proc.pid, secs, names, {})
            (d / "call").touch()
            if not wait("connected", 20):
                return result | {"no_ui_error": "the headless call did not connect"}
            time.sleep(1.0)
            result["no_ui_call"] = cpu_window(proc.pid, secs, names, {})
            (d / "stop").touch()
            proc.wait(15)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    return result


# -------------------------------------------------------------------------------- main


def _git_state() -> dict[str, Any]:
    def git(*args: str) -> str:
        try:
            done = subprocess.run(
                ["git", "-C", str(ROOT), *args], capture_output=True, text=True, timeout=5
            )
        except (OSError, subprocess.SubprocessError):
            return ""
        return done.stdout

    status = git("status", "--porcelain", "--", "softphone")
    return {
        "commit": git("rev-parse", "--short", "HEAD").strip() or None,
        "softphone_uncommitted": [line[3:] for line in status.splitlines() if line.strip()],
    }


def _imported_from(env: dict[str, str], cwd: Path) -> str:
    """Where the app's `softphone` package comes from (PYTHONPATH can override the checkout)."""
    done = subprocess.run(
        [PY, "-c", "import softphone; print(softphone.__file__)"],
        env=os.environ | env,
        cwd=cwd,
        capture_output=True,
        text=True,
        check=False,
    )
    return done.stdout.strip()


def run(quick: bool) -> dict[str, Any]:
    if shutil.which("tmux") is None:
        raise SystemExit("benchmarks.tui needs tmux (apt-get install tmux)")
    if not SOFTPHONE.exists():
        raise SystemExit(f"{SOFTPHONE} is missing: pip install -e .")
    runs, presses, secs = (3, 20, 4.0) if quick else (5, 50, 10.0)
    t_start = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="sp-tui-bench-") as tmp:
        work = Path(tmp)
        env = isolated_env(work / "user")
        version = subprocess.run(["tmux", "-V"], capture_output=True, text=True).stdout.strip()
        report: dict[str, Any] = {
            "benchmark": "tui",
            "mode": "quick" if quick else "full",
            "started_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "git": _git_state(),
            "softphone_imported_from": _imported_from(env, work),
            "python": platform.python_version(),
            "textual": importlib.metadata.version("textual"),
            "terminal": {"tmux": version, "size": f"{COLUMNS}x{ROWS}"},
            "cores": os.cpu_count(),
            "loadavg_at_start": [round(x, 2) for x in os.getloadavg()],
            "busiest_other_processes_at_start": top_other_processes(),
            "reference_probe": REFERENCE,
        }
        log("imports: -X importtime and wall clock")
        report["imports"] = import_costs(work)
        report["first_paint"] = phase_first_paint(work, env, runs)
        report["key_latency"] = phase_keys(work, env, presses)
        report["cpu"] = phase_cpu(work, env, secs)
    report["loadavg_at_end"] = [round(x, 2) for x in os.getloadavg()]
    report["busiest_other_processes_at_end"] = top_other_processes()
    report["total_s"] = round(time.monotonic() - t_start, 1)
    return report


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    ap.add_argument("--quick", action="store_true", help="fewer runs and presses, 4 s windows")
    args = ap.parse_args()
    print(json.dumps(run(args.quick), indent=1), flush=True)


if __name__ == "__main__":
    main()
