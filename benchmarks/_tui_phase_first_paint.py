"""First-paint phase of `benchmarks.tui` (report section `first_paint`): release of the pane's
program → the first terminal output with visible text, → `Logged in as`, and ctrl+q → exit;
for the softphone, the softphone through the timestamping wrapper (interpreter start, imports,
the rest), a Textual hello world and the stack probe's 4-pane app.
"""

from __future__ import annotations

import re
import statistics
import time
from pathlib import Path
from typing import Any

from benchmarks._tui_apps import (
    APP_ARGS,
    FOUR_PANE,
    HELLO,
    LOGGED_IN,
    PY,
    SOFTPHONE,
    SOFTPHONE_WRAPPER,
    write_script,
)
from benchmarks._tui_common import Plan, log, ratio, summary_ms
from benchmarks._tui_terminal import pane

TARGET_FIRST_PAINT_S = 0.6


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


def phase_first_paint(work: Path, env: dict[str, str], plan: Plan) -> dict[str, Any]:
    runs = plan.paint_rounds
    hello = write_script(work, "hello.py", HELLO)
    four_pane = write_script(work, "four_pane.py", FOUR_PANE)
    apps: dict[str, tuple[list[str], bool, str]] = {
        "softphone": ([str(SOFTPHONE), *APP_ARGS], True, "Messages"),
        "softphone_wrapped": ([PY, "-c", SOFTPHONE_WRAPPER, *APP_ARGS], True, "Messages"),
        "hello_world": ([PY, str(hello)], False, "Hello, World!"),
        "four_pane_probe": ([PY, str(four_pane)], False, "Video preview"),
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
