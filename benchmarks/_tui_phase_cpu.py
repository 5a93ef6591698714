"""CPU phase of `benchmarks.tui` (report section `cpu`): the UI process idle after login and
during a call to echo, whole and per thread (from /proc, named through the wrapper); beside the
bare `Input` app idle and the same embedded server + echo + `EngineThread` call without any UI.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks._calls_common import LoadWindow
from benchmarks._tui_apps import (
    APP_ARGS,
    HEADLESS,
    INPUT_APP,
    LOGGED_IN,
    PY,
    SOFTPHONE_WRAPPER,
    write_script,
)
from benchmarks._tui_common import Plan, log
from benchmarks._tui_terminal import pane

CONNECTED = re.compile(r"\bin call\b")
MEDIA = re.compile(r"\blost ↑\S+ ↓\d+")  # status line: inbound RTP stats exist
ENDED = re.compile(r"\byou hung up\b")


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


def phase_cpu(work: Path, env: dict[str, str], plan: Plan) -> dict[str, Any]:
    secs = plan.cpu_window_s
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
    input_app = write_script(work, "input_app.py", INPUT_APP)
    with pane(work, [PY, str(input_app)], env) as p:
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
