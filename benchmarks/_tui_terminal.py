"""The terminal harness of `benchmarks.tui`: a private tmux server with one 80x24 pane per
program (`Pane`, `pane`), the reader that timestamps everything the program writes to the
terminal (`Stream`), and the isolated HOME/XDG environment.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import shlex
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

COLUMNS, ROWS = 80, 24


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


# Python's bytecode cache on, as for an installed program (pip compiles at install; an editable
# checkout writes __pycache__ at its first start, which the benchmark's first start is): a
# PYTHONDONTWRITEBYTECODE=1 in the caller's environment would otherwise have the softphone's
# own modules compiled from source at every start, and not Textual's (installed, compiled).
BYTECODE = {"PYTHONDONTWRITEBYTECODE": ""}


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
    return {k: str(v) for k, v in env.items()} | {"LANG": "C.UTF-8", "LC_ALL": "C.UTF-8"} | BYTECODE
