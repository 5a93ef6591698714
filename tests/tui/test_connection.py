"""Friction 4: the connection is a state a person can read, and no failure is a dead end.
An unreachable server is retried until it answers (said once, counted down on the status
line); a refused password asks for another inside the TUI (never echoed)."""

from __future__ import annotations

from textual.widgets import Input

from softphone.client import Backoff
from softphone.tui.app import SoftphoneApp
from softphone.tui.options import TuiOptions
from softphone.tui.screens import LoginScreen
from tests.client.conftest import Servers
from tests.server.harness import PASSWORD
from tests.tui.conftest import MEDIA, app_for, until
from tests.tui.test_app import SIZE, logged
from tests.tui.test_snapshots import screen_text

SLOW = Backoff(base=0.5, cap=1.5, jitter=0.0)


def app_to(url: str, password: str, backoff: Backoff = SLOW) -> SoftphoneApp:
    return SoftphoneApp(
        TuiOptions(
            server_url=url,
            user="alice",
            password=password,
            engine_options=dict(MEDIA),
            client_options={"backoff": backoff},
        )
    )


async def test_an_unreachable_server_is_retried_until_it_answers(servers: Servers) -> None:
    first = await servers.start()
    port, url = first.port, first.url
    await servers.stop(first)  # nothing listens there now
    app = app_to(url, PASSWORD)
    async with app.run_test(size=SIZE) as pilot:
        await until(
            pilot, lambda: "reconnecting" in app.status.plain, what="the reconnecting state"
        )
        assert "server not reachable" in app.status.plain
        assert app.banner.has_class("-reconnecting")
        # Several attempts go by (0.5 + 1 + 1.5 s): the user is told once, not each time.
        await pilot.pause(3.5)
        said = [text for text in app.log_pane.lines_text if "reach the server" in text]
        assert said == [f"Cannot reach the server at {url}; trying again until it answers."]
        assert not any(error for _, error in app.log_pane.entries)
        assert app.engine is None and app.is_running

        await servers.start(port=port)
        await until(pilot, lambda: app.engine is not None, what="connected at last")
        assert app.status.connection == "connected"
        assert not app.banner.has_class("-reconnecting")
        assert logged(app, f"Logged in as alice on {url}.")


async def test_a_refused_password_is_asked_again_inside_the_tui(servers: Servers) -> None:
    server = await servers.start()
    app = app_to(server.url, "not the password")
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: isinstance(app.screen, LoginScreen), what="the log-in screen")
        assert "offline because the password was refused" in app.status.plain
        box = app.screen.query_one("#password", Input)
        await until(pilot, lambda: box.has_focus, what="the password box focused")
        assert box.password
        await pilot.press(*PASSWORD)
        await pilot.pause(0.2)
        shown = screen_text(app)
        assert PASSWORD not in shown and "horse" not in shown, shown  # never echoed
        await pilot.press("enter")
        await until(pilot, lambda: app.engine is not None, what="logged in")
        assert not isinstance(app.screen, LoginScreen)
        await until(pilot, lambda: app.status.connection == "connected", what="connected")
        assert logged(app, f"Logged in as alice on {server.url}.")


async def test_escape_stays_offline_and_l_asks_again(servers: Servers) -> None:
    server = await servers.start()
    app = app_to(server.url, "not the password")
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: isinstance(app.screen, LoginScreen), what="the log-in screen")
        await pilot.press("escape")
        await until(pilot, lambda: not isinstance(app.screen, LoginScreen), what="closed")
        assert app.status.connection == "offline"
        app.calls_pane.focus()
        await pilot.press("l")
        await until(pilot, lambda: isinstance(app.screen, LoginScreen), what="asked again")
        app.screen.query_one("#password", Input).value = PASSWORD
        await pilot.press("enter")
        await until(pilot, lambda: app.engine is not None, what="logged in")


async def test_the_first_connection_reads_connected_as_the_user(servers: Servers) -> None:
    server = await servers.start()
    app = app_for(server, "alice")
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: app.engine is not None, what="login")
        assert app.status.plain.startswith("● connected")
