"""The programs `benchmarks.tui` runs: the installed `softphone` (directly and through a
wrapper that timestamps its imports and names its threads), the reference apps (a Textual hello
world, the stack probe's 4-pane app, a bare `Input` app) and the no-UI reference (embedded
server + echo + `EngineThread` in a plain child process), with what the softphone shows once
its engine is ready.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

PY = sys.executable
SOFTPHONE = Path(PY).with_name("softphone")
APP_ARGS = ["--audio-in", "tone", "--audio-out", "null"]
LOGGED_IN = re.compile(r"Logged in as \w+")


def write_script(work: Path, name: str, source: str) -> Path:
    """`source` as `work/scripts/<name>`, for `python <path>`."""
    scripts = work / "scripts"
    scripts.mkdir(exist_ok=True)
    path = scripts / name
    path.write_text(source)
    return path


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
from softphone.embedded import start_embedded

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
