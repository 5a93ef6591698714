"""Import-cost phase of `benchmarks.tui` (report section `imports`): what the app imports
before its first paint, by `-X importtime` and by best-of-5 wall clock, beside bare Python and
`textual.app`, and which heavy modules are already loaded by then.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from pathlib import Path
from typing import Any

from benchmarks._tui_apps import PY
from benchmarks._tui_common import Plan, log
from benchmarks._tui_terminal import BYTECODE

HEAVY = ("aiortc", "av", "numpy", "cv2", "sounddevice", "aiohttp", "softphone.engine")


def phase_imports(work: Path, env: dict[str, str], plan: Plan) -> dict[str, Any]:
    log("imports: -X importtime and wall clock")
    return import_costs(work)


def import_costs(cwd: Path) -> dict[str, Any]:
    """What the app imports before its first paint (softphone.cli, softphone.tui.app), by
    -X importtime and by wall clock (best of 5), beside bare Python and textual.app."""

    def best(code: str, runs: int = 5) -> float:
        times = []
        for _ in range(runs):
            t0 = time.monotonic()
            subprocess.run([PY, "-c", code], check=True, capture_output=True, cwd=cwd, env=env)
            times.append(time.monotonic() - t0)
        return min(times)

    pre = "import softphone.cli, softphone.tui.app"
    env = os.environ | BYTECODE
    subprocess.run([PY, "-c", pre], check=True, cwd=cwd, env=env)  # writes the cache if due
    done = subprocess.run(
        [PY, "-X", "importtime", "-c", pre],
        capture_output=True,
        text=True,
        cwd=cwd,
        check=True,
        env=env,
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
        capture_output=True, text=True, cwd=cwd, check=True, env=env,
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
        "bytecode_cache": "on (PYTHONDONTWRITEBYTECODE cleared for every program measured)",
        "note": "-X importtime runs high (stack-probe §5); wall times include interpreter start",
    }
