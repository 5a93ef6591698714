"""Snapshots of the whole screen in each pane state, at 80x24 and 120x40.

States: idle (logged in, no call), ringing (bob rings, carol queued behind him), two calls with
one on hold (bob answered, then carol answered, which holds bob), reconnecting (a call with
bob, then the server drops our websocket: the banner is up), muted (a call muted by `m`),
recent (an ended call kept in Recent calls, opened) and login (a refused password: the log-in
screen, a password typed). Each runs against the real
in-process server and real engines, driven by keys, like the other TUI tests.

A snapshot is the screen as plain text (one line per row, trailing blanks cut), then a map of
the cells drawn bold (b), red (r) or bold red (R), for the rows that have any. What varies
between runs is normalised first: log time stamps, the server's port, call durations and the
retry countdown in the text; the stats numbers on the status line are pinned at the source
(their widths would move what follows them; the bitrate is always shown), and the audio
device listing is pinned to "no problem" (the host's sound server must not change the
screen).

Stored in tests/tui/snapshots/<state>-<cols>x<rows>.txt. `SNAPSHOT_UPDATE=1` (re)writes them;
without it a missing snapshot fails. On a mismatch the failure shows a unified diff and where
the actual screen was written (under pytest's tmp_path).
"""

from __future__ import annotations

import asyncio
import difflib
import os
import re
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from rich.style import Style

import softphone.engine.devices
import softphone.tui.presenter
import softphone.tui.widgets.log
from softphone.client import Backoff
from softphone.server.passwords import token_hash
from softphone.server.runner import RunningServer
from softphone.server.services import SERVICES
from softphone.tui.app import SoftphoneApp
from softphone.tui.presenter import describe_stats
from tests.tui.conftest import Far, app_for, row_states, until
from tests.tui.test_app import logged

SNAPSHOTS = Path(__file__).with_name("snapshots")
UPDATE = os.environ.get("SNAPSHOT_UPDATE", "") not in ("", "0")
SIZES = [(80, 24), (120, 40)]
CLOCK = "12:00:00"

# Applied to the plain text, in order; each digit becomes "#" so nothing moves sideways.
NORMALISE = [
    re.compile(r"(?<!\d)\d\d:\d\d:\d\d(?!\d)"),  # log time stamps (before the clock is set)
    re.compile(r"(?<=127\.0\.0\.1:)\d+"),  # the server's random port
    re.compile(r"(?<![\d:])\d{1,3}:\d\d(?![\d:])"),  # call durations (Time)
    re.compile(r"(?<=retry in )\d+(?= s)"),  # reconnect countdown
    re.compile(r"(?<=reconnecting in )\d+(?= s)"),
]

# The stats on the status line, pinned: the numbers, and the bitrate always shown (the app
# measures it between the far end's reports, which come about once a second, or later).
# Which other fields are there still comes from the engine.
PINNED_AUDIO: dict[str, Any] = {
    "packets_lost": 0,
    "remote_packets_lost": 0,
    "jitter": 0.002,
    "round_trip_time": 0.001,
}
PINNED_KBPS = (48.0, 48.0)


def pinned_stats(stats: dict[str, Any], kbps: tuple[float | None, float | None]) -> str:
    audio = dict(stats.get("audio") or {})
    audio.update({k: v for k, v in PINNED_AUDIO.items() if k in audio})
    return describe_stats({**stats, "audio": audio}, PINNED_KBPS)


def pinned_meter(level: float, width: int = 8) -> str:
    return ("▮" if level > 0 else "▯") * width


class PinnedClock:
    @staticmethod
    def strftime(fmt: str) -> str:
        return CLOCK


@pytest.fixture(autouse=True)
def steady_screen(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(softphone.tui.presenter, "describe_stats", pinned_stats)
    # Meters: full for any sound, empty for none (a muted microphone stays empty).
    monkeypatch.setattr(softphone.tui.presenter, "meter", pinned_meter)
    # Every log line at the pinned time, from the first ("Starting…", before the test can
    # set the log's clock; a modal screen can hide part of its stamp from the normalising).
    monkeypatch.setattr(softphone.tui.widgets.log, "time", PinnedClock())
    # As on a machine whose sound server is up (the engines here use tone/null anyway).
    monkeypatch.setattr(softphone.engine.devices, "list_audio_devices", lambda: [])
    monkeypatch.setattr(softphone.engine.devices, "last_device_problem", lambda: "")


# -- capture -----------------------------------------------------------------------------------


def _mark(style: Style | None) -> str:
    if style is None:
        return " "
    bold = bool(style.bold)
    red = False
    if style.color is not None and not style.color.is_default:
        r, g, _ = style.color.get_truecolor()
        red = r >= 150 and g <= 100
    return "R" if bold and red else "b" if bold else "r" if red else " "


def screen_text(app: SoftphoneApp) -> str:
    """The screen as the user sees it: plain text, normalised, then the bold/red map."""
    # Textual has no public "characters on screen" API; export_screenshot() gives SVG only.
    strips = app.screen._compositor.render_strips()
    rows, marks = [], []
    for y, strip in enumerate(strips):
        text = strip.text
        for pattern in NORMALISE:
            text = pattern.sub(lambda m: re.sub(r"\d", "#", m[0]), text)
        rows.append(text.rstrip())
        mask = "".join(_mark(seg.style) * seg.cell_length for seg in strip).rstrip()
        if mask:
            marks.append(f"{y:2d}|{mask}")
    legend = "-- cells: b bold, r red, R bold red (rows without any left out) --"
    return "\n".join([*rows, legend, *marks]) + "\n"


async def settled(pilot: Any, app: SoftphoneApp, timeout: float = 10) -> str:
    """The screen once three captures in a row, 0.1 s apart, are the same."""
    deadline = time.monotonic() + timeout
    last, same = "", 0
    while same < 3:
        if time.monotonic() > deadline:
            raise AssertionError(f"the screen did not settle:\n{last}")
        await pilot.pause(0.1)
        now = screen_text(app)
        # The footer is recomposed when the keys change: blank for a moment, not settled.
        footer = now.split("\n-- cells")[0].rstrip("\n").rsplit("\n", 1)[-1]
        same = same + 1 if now == last and "palette" in footer else 0
        last = now
    return last


def check_snapshot(name: str, actual: str, tmp_path: Path) -> None:
    path = SNAPSHOTS / f"{name}.txt"
    if UPDATE:
        SNAPSHOTS.mkdir(exist_ok=True)
        path.write_text(actual, encoding="utf-8")
        return
    if not path.exists():
        pytest.fail(
            f"no snapshot {path}: run with SNAPSHOT_UPDATE=1 to write it, then review it.\n"
            f"The screen was:\n{actual}",
            pytrace=False,
        )
    expected = path.read_text(encoding="utf-8")
    if actual != expected:
        out = tmp_path / f"{name}.actual.txt"
        out.write_text(actual, encoding="utf-8")
        diff = "".join(
            difflib.unified_diff(
                expected.splitlines(keepends=True),
                actual.splitlines(keepends=True),
                str(path),
                str(out),
            )
        )
        pytest.fail(
            f"{name}: the screen differs from {path}\nactual screen: {out}\n"
            f"(SNAPSHOT_UPDATE=1 rewrites the snapshots)\n{diff}",
            pytrace=False,
        )


# -- the states --------------------------------------------------------------------------------

Scenario = Callable[[Any, SoftphoneApp, RunningServer, Callable[[], Far]], Awaitable[None]]


async def stats_shown(pilot: Any, app: SoftphoneApp, steady: float = 1.2) -> None:
    """The selected call's numbers are on the status line, all of them: RTT needs the far
    end's first report, so wait for it, then for the line to stay the same over more than one
    poll (the numbers are pinned, see `pinned_stats`)."""
    await until(pilot, lambda: "RTT" in app.status.call_info, what="the stats line")
    deadline = time.monotonic() + 15
    shown, since = app.status.call_info, time.monotonic()
    while time.monotonic() - since < steady:
        if time.monotonic() > deadline:
            raise AssertionError(f"the stats line keeps changing: {shown!r}")
        await pilot.pause(0.1)
        if app.status.call_info != shown:
            shown, since = app.status.call_info, time.monotonic()


async def rings(pilot: Any, app: SoftphoneApp, party: Far, name: str) -> None:
    """`party` calls us; wait until it rings here, so that a key pressed next cannot come
    between its events."""
    await party.call(party.thread.make, "alice")
    await until(
        pilot,
        lambda: (
            logged(app, f"{name} is calling")
            and any(
                v.call.remote_participant == name and v.call.state.value == "Ringing"
                for v in app.views.values()
            )
        ),
        what=f"{name} rings",
    )


def hears(app: SoftphoneApp, name: str, audio: bool = True) -> bool:
    """Whether the call with `name` has (or, `audio` False, no longer has) their audio."""
    return any(
        v.call.remote_participant == name and bool(v.call.remote_tracks) == audio
        for v in app.views.values()
    )


async def idle(
    pilot: Any, app: SoftphoneApp, server: RunningServer, far: Callable[[], Far]
) -> None:
    """Logged in, the devices in use listed, nobody calling."""


async def ringing(
    pilot: Any, app: SoftphoneApp, server: RunningServer, far: Callable[[], Far]
) -> None:
    bob, carol = far(), far()
    await bob.start(server, "bob")
    await carol.start(server, "carol")
    await rings(pilot, app, bob, "bob")
    await rings(pilot, app, carol, "carol")
    await until(pilot, lambda: len(app.incoming_pane.calls) == 2, what="carol queued")


async def one_on_hold(
    pilot: Any, app: SoftphoneApp, server: RunningServer, far: Callable[[], Far]
) -> None:
    bob, carol = far(), far()
    await bob.start(server, "bob")
    await carol.start(server, "carol")
    await rings(pilot, app, bob, "bob")
    await pilot.press("a")
    await until(pilot, lambda: hears(app, "bob"), what="bob up")
    await rings(pilot, app, carol, "carol")
    await pilot.press("a")  # answering carol holds bob first
    await until(
        pilot,
        lambda: row_states(app) == {"bob": "on hold", "carol": "in call"},
        what="bob held, carol connected",
    )
    await until(pilot, lambda: hears(app, "carol"), what="carol up")
    await until(pilot, lambda: hears(app, "bob", audio=False), what="bob quiet")
    await stats_shown(pilot, app)


async def reconnecting(
    pilot: Any, app: SoftphoneApp, server: RunningServer, far: Callable[[], Far]
) -> None:
    bob = far()
    await bob.start(server, "bob")
    await rings(pilot, app, bob, "bob")
    await pilot.press("a")
    await until(pilot, lambda: hears(app, "bob"), what="bob up")
    await stats_shown(pilot, app)
    engine = app.engine
    assert engine is not None and engine.engine.client is not None
    token = engine.engine.client.rest.token
    assert token is not None
    sub = server.app[SERVICES].hub.for_session(token_hash(token))
    assert sub is not None and sub.connection is not None
    sub.connection.close_after_flush(1001)
    await until(pilot, lambda: app.banner.has_class("-reconnecting"), what="the banner")
    await until(
        pilot, lambda: logged(app, "Lost the connection to the server"), what="the log line"
    )
    await stats_shown(pilot, app)


async def muted(
    pilot: Any, app: SoftphoneApp, server: RunningServer, far: Callable[[], Far]
) -> None:
    """A call with bob, muted by `m`: the row and the status line say so."""
    bob = far()
    await bob.start(server, "bob")
    await rings(pilot, app, bob, "bob")
    await pilot.press("a")
    await until(pilot, lambda: hears(app, "bob"), what="bob up")
    await pilot.press("m")
    await until(pilot, lambda: "MUTED" in app.status.plain, what="muted")
    await stats_shown(pilot, app)


async def recent(
    pilot: Any, app: SoftphoneApp, server: RunningServer, far: Callable[[], Far]
) -> None:
    """bob called and hung up: the call is kept in Recent calls, opened here."""
    bob = far()
    await bob.start(server, "bob")
    await rings(pilot, app, bob, "bob")
    call_id = next(v.call.id for v in app.views.values())
    bob_call = next(iter(c.id for c in await bob.call(bob.thread.get_all)))
    await pilot.press("a")
    await until(pilot, lambda: hears(app, "bob"), what="bob up")
    await bob.call(bob.thread.end, bob_call)
    await until(pilot, lambda: call_id not in app.views, what="moved to Recent calls")
    app.recent.collapsed = False  # its start time is normalised like a duration


async def login(
    pilot: Any, app: SoftphoneApp, server: RunningServer, far: Callable[[], Far]
) -> None:
    """A refused password: the log-in screen asks for another (typed, never shown)."""
    from softphone.tui.screens import LoginScreen

    await until(pilot, lambda: isinstance(app.screen, LoginScreen), what="the log-in screen")
    await pilot.press(*"secret")


STATES: dict[str, Scenario] = {
    "idle": idle,
    "ringing": ringing,
    "one-on-hold": one_on_hold,
    "reconnecting": reconnecting,
    "muted": muted,
    "recent": recent,
    "login": login,
}


@pytest.mark.parametrize("size", SIZES, ids=[f"{w}x{h}" for w, h in SIZES])
@pytest.mark.parametrize("state", list(STATES))
async def test_snapshot(
    state: str,
    size: tuple[int, int],
    server: RunningServer,
    far: Callable[[], Far],
    tmp_path: Path,
) -> None:
    parties: list[Far] = []

    def party() -> Far:
        parties.append(far())
        return parties[-1]

    app = app_for(server, "alice")
    if state == "reconnecting":  # the retry far enough away that the banner stays up
        app.options.client_options = {"backoff": Backoff(base=30, cap=30, jitter=0.0)}
    if state == "login":
        app.options.password = "not the password"
    async with app.run_test(size=size) as pilot:
        app.log_pane.clock = lambda: CLOCK
        if state != "login":
            await until(pilot, lambda: app.engine is not None, what="login")
            await until(pilot, lambda: logged(app, "Logged in as alice"), what="the login line")
            await until(pilot, lambda: app.status.devices != "", what="the devices in use")
        await STATES[state](pilot, app, server, party)
        screen = await settled(pilot, app)
        # Far parties closed while we are still up hang up at once (after we left, ~6 s each).
        await asyncio.gather(*(asyncio.to_thread(p.thread.close) for p in parties))
    check_snapshot(f"{state}-{size[0]}x{size[1]}", screen, tmp_path)
