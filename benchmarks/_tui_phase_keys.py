"""Key-latency phase of `benchmarks.tui` (report section `key_latency`): `tmux send-keys` of one
letter into the focused dial box → the first output chunk holding the box's new text; beside a
bare Textual app with one focused `Input`, and the cost of one tmux client command.
"""

from __future__ import annotations

import random
import re
import statistics
import time
from pathlib import Path
from typing import Any

from benchmarks._tui_apps import APP_ARGS, INPUT_APP, LOGGED_IN, PY, SOFTPHONE, write_script
from benchmarks._tui_common import Plan, log, ratio, summary_ms
from benchmarks._tui_terminal import pane


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


def phase_keys(work: Path, env: dict[str, str], plan: Plan) -> dict[str, Any]:
    presses = plan.presses
    input_app = write_script(work, "input_app.py", INPUT_APP)
    log(f"key latency: {presses} letters into softphone's dial box")
    ours = _typing_run(work, [str(SOFTPHONE), *APP_ARGS], env, True, presses)
    log(f"key latency: {presses} letters into a bare Textual Input")
    bare = _typing_run(work, [PY, str(input_app)], env, False, presses)
    return {
        "method": "tmux send-keys (client spawn included) -> first output chunk with the new text",
        "tmux_command_ms": tmux_command_ms(work),
        "softphone": ours,
        "bare_input_app": bare,
        "median_ratio": ratio(ours.get("median"), bare.get("median")),
        "p95_ratio": ratio(ours.get("p95"), bare.get("p95")),
    }
