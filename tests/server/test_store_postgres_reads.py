"""What a call action reads from PostgreSQL: each subscription once per action (lock_call
brings both parties' with the call row), its own writes seen at once, and nothing remembered
past the action, so another process's change counts at the next one."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from softphone.server.store_postgres import PostgresStore
from softphone.server.store_rows import CallRow, Session, SubscriptionRow
from tests.cluster.instances import Postgres


@pytest.fixture(scope="module")
def postgres() -> Iterator[Postgres]:
    instance = Postgres().start()
    yield instance
    instance.remove()


@pytest.fixture
def two(postgres: Postgres) -> Iterator[tuple[PostgresStore, PostgresStore]]:
    """Two stores on one database, as two server processes."""
    url = postgres.url(postgres.create_database())
    here, there = PostgresStore(url), PostgresStore(url, migrate=False)
    yield here, there
    here.close()
    there.close()


def _device(store: PostgresStore, sub_id: str, session_hash: str, user: str) -> SubscriptionRow:
    now = time.time()
    store.add_session(Session(session_hash, user, False, None, now, now + 600))
    row = SubscriptionRow(sub_id, session_hash, user, ["call"], now, now + 600)
    store.put_subscription(row)
    return row


def test_an_action_reads_each_subscription_once_and_sees_its_own_writes(
    two: tuple[PostgresStore, PostgresStore],
) -> None:
    here, there = two
    _device(here, "sub-a", "sess-a", "alice")
    _device(here, "sub-b", "sess-b", "bob")
    here.put_call(
        CallRow(
            id="c1",
            caller="alice",
            callee="bob",
            caller_session="sess-a",
            callee_session="sess-b",
            state="Connected",
            audio=True,
            video=False,
            anonymous=False,
            display_name=None,
            offer_sdp="v=0",
        )
    )
    with here.transaction():
        call = here.lock_call("c1")
        assert call is not None and call.callee_session == "sess-b"
        assert [r.id for r in here.subscriptions_of("bob")] == ["sub-b"]
        there.remove_subscription("sub-a")  # another process, committed meanwhile
        there.remove_subscription("sub-b")
        # Read with the locked row (caller and callee) and by user: the same within the action.
        caller_sub = here.subscription_of_session("sess-a")
        assert caller_sub is not None and caller_sub.id == "sub-a"
        assert [r.id for r in here.subscriptions_of("bob")] == ["sub-b"]
        # Its own write: seen at once.
        _device(here, "sub-b2", "sess-b2", "bob")
        assert [r.id for r in here.subscriptions_of("bob")] == ["sub-b2"]
        assert here.subscription_of_session("sess-a") is None
    # Past the action, nothing is remembered: the other process's changes count.
    there.remove_subscription("sub-b2")
    assert here.subscriptions_of("bob") == []
    now = time.time()
    there.put_subscription(SubscriptionRow("sub-a2", "sess-a", "alice", ["call"], now, now + 60))
    found = here.subscription_of_session("sess-a")
    assert found is not None and found.id == "sub-a2"


def test_a_call_whose_parties_have_no_subscription_is_still_locked(
    two: tuple[PostgresStore, PostgresStore],
) -> None:
    here, _ = two
    here.put_call(
        CallRow(
            id="c2",
            caller="alice",
            callee="bob",
            caller_session="gone",
            callee_session=None,
            state="Ringing",
            audio=True,
            video=False,
            anonymous=False,
            display_name=None,
            offer_sdp="v=0",
        )
    )
    with here.transaction():
        call = here.lock_call("c2")
        assert call is not None and call.state == "Ringing" and call.callee_session is None
        assert here.subscription_of_session("gone") is None
    assert here.lock_call("missing") is None
