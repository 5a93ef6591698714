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
Python's bytecode cache is on for every program measured, as for an installed program (a
PYTHONDONTWRITEBYTECODE=1 around the benchmark is cleared).

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

This module is the plan, the order of the phases (`PHASES`) and the JSON. One module per
phase: `_tui_phase_imports`, `_tui_phase_first_paint`, `_tui_phase_keys`, `_tui_phase_cpu`;
shared by them: `_tui_terminal` (`Pane`, `Stream`: the tmux harness), `_tui_apps` (the
softphone wrapper, the reference apps, the no-UI reference) and `_tui_common` (`Plan`,
statistics). A phase is `phase(work, env, plan) -> section`; to add one, write its module and
list it in `PHASES` under its report key.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import platform
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks._calls_common import top_other_processes
from benchmarks._tui_apps import PY, SOFTPHONE
from benchmarks._tui_common import Phase, Plan
from benchmarks._tui_phase_cpu import phase_cpu
from benchmarks._tui_phase_first_paint import phase_first_paint
from benchmarks._tui_phase_imports import phase_imports
from benchmarks._tui_phase_keys import phase_keys
from benchmarks._tui_terminal import COLUMNS, ROWS, isolated_env

ROOT = Path(__file__).resolve().parent.parent
REFERENCE = {
    "source": "/work/shared/reference/stack-probe.md §5 (same machine class, earlier run)",
    "four_pane_tmux_120x40_first_refresh_ms": [355, 523],
    "four_pane_tmux_imports_ms": [246, 357],
    "import_textual_app_s": 0.28,
    "import_textual_aiortc_av_s": 0.57,
    "textual_with_loopback_call_cpu_percent": 51,
    "bare_aiortc_audio_call_both_ends_cpu_percent": 21.6,
}

FULL = Plan(mode="full", paint_rounds=5, presses=50, cpu_window_s=10.0)
QUICK = Plan(mode="quick", paint_rounds=7, presses=20, cpu_window_s=4.0)

# The phases in the order they run, by report key.
PHASES: dict[str, Phase] = {
    "imports": phase_imports,
    "first_paint": phase_first_paint,
    "key_latency": phase_keys,
    "cpu": phase_cpu,
}


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


def run(plan: Plan) -> dict[str, Any]:
    if shutil.which("tmux") is None:
        raise SystemExit("benchmarks.tui needs tmux (apt-get install tmux)")
    if not SOFTPHONE.exists():
        raise SystemExit(f"{SOFTPHONE} is missing: pip install -e .")
    t_start = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="sp-tui-bench-") as tmp:
        work = Path(tmp)
        env = isolated_env(work / "user")
        version = subprocess.run(["tmux", "-V"], capture_output=True, text=True).stdout.strip()
        report: dict[str, Any] = {
            "benchmark": "tui",
            "mode": plan.mode,
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
        for key, phase in PHASES.items():
            report[key] = phase(work, env, plan)
    report["loadavg_at_end"] = [round(x, 2) for x in os.getloadavg()]
    report["busiest_other_processes_at_end"] = top_other_processes()
    report["total_s"] = round(time.monotonic() - t_start, 1)
    return report


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    ap.add_argument("--quick", action="store_true", help="fewer runs and presses, 4 s windows")
    args = ap.parse_args()
    print(json.dumps(run(QUICK if args.quick else FULL), indent=1), flush=True)


if __name__ == "__main__":
    main()
