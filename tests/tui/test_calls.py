"""Juggling calls from the keyboard, and what the UI shows while the server is unreachable."""

from __future__ import annotations

import asyncio
import time

from textual.widgets import OptionList

from softphone.client import Backoff
from softphone.engine.events import CallStateChange
from softphone.engine.states import CallState
from softphone.server.passwords import token_hash
from softphone.server.runner import RunningServer
from softphone.server.services import SERVICES
from tests.tui.conftest import Far, answered_by_key, app_for, row_states, until
from tests.tui.test_app import SIZE, logged


def held_by_remote(party: Far, call_id: str, held: bool) -> bool:
    """Whether `party` last saw `call_id` with remote hold == `held`."""
    changes = [e for e in party.of(CallStateChange) if e.call_id == call_id]
    return bool(changes) and party.thread.get(call_id).remote_hold == held


async def test_second_call_holds_the_first_and_switching_swaps(
    server: RunningServer, far: type[Far]
) -> None:
    app = app_for(server, "alice")
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: app.engine is not None, what="login")
        bob, carol = far(), far()
        await bob.start(server, "bob")
        await carol.start(server, "carol")
        bob_call = await bob.call(bob.thread.make, "alice")
        await until(pilot, lambda: app.incoming_pane.first is not None, what="bob rings")
        await pilot.press("a")
        await until(pilot, lambda: row_states(app).get("bob") == "in call", what="bob up")

        carol_call = await carol.call(carol.thread.make, "alice")
        await until(pilot, lambda: app.incoming_pane.first is not None, what="carol rings")
        await pilot.press("a")  # answering carol puts bob on hold first
        await until(
            pilot,
            lambda: row_states(app) == {"bob": "on hold", "carol": "in call"},
            what="bob held, carol connected",
        )
        await until(pilot, lambda: held_by_remote(bob, bob_call, True), what="bob sees hold")
        assert app.selected_view is not None
        assert app.selected_view.call.remote_participant == "carol"

        await pilot.press("s")  # select bob
        assert app.selected_view is not None
        assert app.selected_view.call.remote_participant == "bob"
        await pilot.press("h")  # resume bob: carol goes on hold
        await until(
            pilot,
            lambda: row_states(app) == {"bob": "in call", "carol": "on hold"},
            what="swapped",
        )
        await until(pilot, lambda: held_by_remote(bob, bob_call, False), what="bob resumed")
        await until(pilot, lambda: held_by_remote(carol, carol_call, True), what="carol held")
        assert logged(app, "Resumed the call with bob.")

        await pilot.press("m")  # mute the selected call (bob)
        mine = next(i for i, v in app.views.items() if v.call.remote_participant == "bob")
        assert app.engine is not None
        engine = app.engine
        await until(pilot, lambda: engine.get(mine).muted, what="muted")
        await pilot.press("e")  # end bob; carol stays held
        await bob.wait(
            CallStateChange, lambda e: e.call_id == bob_call and e.state == CallState.ENDED
        )
        await until(pilot, lambda: row_states(app).get("carol") == "on hold", what="carol kept")


async def test_reconnecting_banner_while_the_websocket_is_down(
    server: RunningServer, far: type[Far]
) -> None:
    app = app_for(server, "alice")
    app.options.client_options = {"backoff": Backoff(base=1.5, cap=1.5, jitter=0.0)}
    async with app.run_test(size=SIZE) as pilot:
        bob, call_id = await answered_by_key(pilot, app, server, far())
        assert not app.banner.display or not app.banner.has_class("-reconnecting")

        engine = app.engine
        assert engine is not None and engine.engine.client is not None
        token = engine.engine.client.rest.token
        assert token is not None
        sub = server.app[SERVICES].hub.for_session(token_hash(token))
        assert sub is not None and sub.connection is not None
        sub.connection.close_after_flush(1001)
        dropped = time.monotonic()
        await until(pilot, lambda: app.banner.has_class("-reconnecting"), what="the banner")
        banner = str(app.banner.render())
        assert "Reconnecting to the server" in banner and "the call keeps its media" in banner
        assert app.status.connection == "reconnecting"
        assert time.monotonic() - dropped < 1.5, "the banner came after the reconnect"

        await until(pilot, lambda: app.status.connection == "connected", what="back")
        assert not app.banner.has_class("-reconnecting") and not app.banner.display
        assert logged(app, "Connected to the server again.")
        assert row_states(app).get("bob") == "in call"
        await asyncio.sleep(0.2)
        assert bob.thread.get(call_id).state == CallState.CONNECTED


async def test_switching_the_microphone_mid_call_from_the_devices_screen(
    server: RunningServer, far: type[Far]
) -> None:
    app = app_for(server, "alice")
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: app.engine is not None, what="login")
        await until(pilot, lambda: "mic tone 440 Hz" in app.status.plain, what="devices shown")
        bob = far()
        await bob.start(server, "bob")
        await bob.call(bob.thread.make, "alice")
        await until(pilot, lambda: app.incoming_pane.first is not None, what="incoming")
        await pilot.press("a")
        await until(pilot, lambda: row_states(app).get("bob") == "in call", what="in call")

        app.action_devices()
        await until(pilot, lambda: type(app.screen).__name__ == "DevicesScreen", what="screen")
        microphones = app.screen.query_one("#audio_in", OptionList)
        microphones.focus()
        await pilot.pause()
        silence = next(
            i
            for i in range(microphones.option_count)
            if microphones.get_option_at_index(i).id == "silence"
        )
        microphones.highlighted = silence
        await pilot.press("enter")
        await until(
            pilot,
            lambda: logged(app, "Microphone: now silence (1 live call moved)"),
            what="the switch",
        )
        assert type(app.screen).__name__ != "DevicesScreen"
        assert "mic silence" in app.status.plain
        assert row_states(app).get("bob") == "in call"
