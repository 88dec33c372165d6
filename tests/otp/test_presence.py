import asyncio
import itertools
from collections.abc import AsyncIterator, Hashable
from contextlib import asynccontextmanager
from typing import Any

import pytest
from pubsub_conformance import next_message, probe

from trunkline import otp
from trunkline.otp import MockClock, Presence, PresenceDiff, PubSub
from trunkline.otp.pubsub_adapters import MemoryAdapter, MemoryBus
from trunkline.otp.testing import wait_until

INTERVAL_S = 1.0
HEARTBEAT_S = 2.0
DOWN_S = 5.0
TIMINGS = {
    "broadcast_interval_s": INTERVAL_S,
    "heartbeat_interval_s": HEARTBEAT_S,
    "down_period_s": DOWN_S,
}


async def _forever() -> None:
    await otp.receive(lambda _: False)


def member() -> otp.Pid:
    """A process to track: it lives until killed."""
    return otp.spawn(_forever)


async def started(pubsub: PubSub) -> Presence:
    presence = Presence("presence", pubsub, **TIMINGS)
    await presence.start()
    return presence


class Cluster:
    """Nodes on one bus that pickles every message, as a network would."""

    def __init__(self) -> None:
        self.bus = MemoryBus(pickle_messages=True)
        self.presences: list[Presence] = []

    async def node(self, name: str, *, start: bool = True) -> Presence:
        pubsub = PubSub("app", adapter=MemoryAdapter(self.bus, name))
        await pubsub.start()
        presence = Presence("presence", pubsub, **TIMINGS)
        if start:
            await presence.start()
        self.presences.append(presence)
        return presence


@asynccontextmanager
async def cluster() -> AsyncIterator[Cluster]:
    nodes = Cluster()
    try:
        yield nodes
    finally:
        for presence in nodes.presences:
            await presence.stop()
            await presence.pubsub.stop()


# -- options ---------------------------------------------------------------------------------------


def test_options_are_validated() -> None:
    pubsub = PubSub("app")
    with pytest.raises(ValueError, match="non-empty string"):
        Presence("", pubsub)
    with pytest.raises(TypeError, match="must be a PubSub"):
        Presence("p", "app")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="broadcast_interval_s"):
        Presence("p", pubsub, broadcast_interval_s=0)
    with pytest.raises(ValueError, match="heartbeat_interval_s"):
        Presence("p", pubsub, broadcast_interval_s=2, heartbeat_interval_s=1)
    with pytest.raises(ValueError, match="down_period_s"):
        Presence("p", pubsub, heartbeat_interval_s=10, down_period_s=15)


async def test_starting_twice_is_refused() -> None:
    presence = await started(PubSub("app"))
    first = presence.pid
    with pytest.raises(otp.AlreadyStarted):
        await presence.start()
    assert presence.pid is first
    await presence.stop()
    assert presence.pid is None
    await presence.stop()  # not running: nothing to do


# -- tracking and reading --------------------------------------------------------------------------


async def test_track_list_and_get() -> None:
    presence = Presence("p", PubSub("app"))
    ada, bob = member(), member()
    presence.track(ada, "lobby", "ada", {"device": "phone"})
    presence.track(bob, "lobby", "bob", {"device": "laptop"})
    presence.track(ada, "kitchen", "ada", {"device": "phone"})
    assert presence.list("lobby") == {"ada": [{"device": "phone"}], "bob": [{"device": "laptop"}]}
    assert presence.get("lobby", "ada") == [{"device": "phone"}]
    assert presence.keys("lobby") == ["ada", "bob"]
    assert presence.key_count("lobby") == 2
    assert presence.key_count("kitchen") == 1
    assert presence.list("nowhere") == {}
    assert presence.get("nowhere", "ada") == []
    assert presence.get("lobby", "nobody") == []
    assert presence.keys("nowhere") == []
    assert presence.key_count("nowhere") == 0
    # Results are copies: changing them changes nothing.
    presence.list("lobby")["ada"].append("junk")
    presence.get("lobby", "bob").clear()
    assert presence.list("lobby") == {"ada": [{"device": "phone"}], "bob": [{"device": "laptop"}]}


async def test_a_key_gathers_one_meta_per_process_that_tracks_it() -> None:
    presence = Presence("p", PubSub("app"))
    phone, laptop = member(), member()
    presence.track(phone, "lobby", 12, {"device": "phone"})
    presence.track(laptop, "lobby", 12, {"device": "laptop"})
    presence.track(phone, "lobby", "bot", "beep")  # one process, two keys
    assert presence.get("lobby", 12) == [{"device": "phone"}, {"device": "laptop"}]
    assert presence.key_count("lobby") == 2
    presence.untrack(phone, "lobby", 12)
    assert presence.get("lobby", 12) == [{"device": "laptop"}]
    assert presence.get("lobby", "bot") == ["beep"]


async def test_a_process_that_ends_leaves_everywhere_at_once() -> None:
    presence = Presence("p", PubSub("app"))
    doomed, survivor = member(), member()
    presence.track(doomed, "lobby", "ada", 1)
    presence.track(doomed, "kitchen", "ada", 1)
    presence.track(survivor, "lobby", "bob", 2)
    otp.exit(doomed, otp.KILL)
    assert presence.list("lobby") == {"bob": [2]}
    assert presence.list("kitchen") == {}

    async def brief() -> None:
        presence.track(otp.self(), "lobby", "cy", 3)

    _, ref = otp.spawn_monitor(brief)
    await otp.receive(lambda m: isinstance(m, otp.Down) and m.ref is ref, timeout=1)
    assert presence.get("lobby", "cy") == []


async def test_untrack_update_and_their_errors() -> None:
    presence = Presence("p", PubSub("app"))
    pid = member()
    presence.track(pid, "lobby", "ada", {"status": "away"})
    presence.update(pid, "lobby", "ada", {"status": "here"})
    assert presence.get("lobby", "ada") == [{"status": "here"}]
    with pytest.raises(ValueError, match="already tracked"):
        presence.track(pid, "lobby", "ada", {"status": "twice"})
    with pytest.raises(ValueError, match="not tracked"):
        presence.update(pid, "lobby", "bob", {})
    assert presence.list("lobby") == {"ada": [{"status": "here"}]}
    presence.untrack(pid, "lobby", "bob")  # not tracked: nothing happens
    presence.untrack(member(), "lobby", "ada")
    presence.untrack(pid, "lobby", "ada")
    assert presence.list("lobby") == {}

    presence.track(pid, "lobby", "ada", 1)
    presence.track(pid, "kitchen", "ada", 2)
    presence.untrack_all(pid)
    presence.untrack_all(pid)
    assert presence.list("lobby") == presence.list("kitchen") == {}
    presence.track(pid, "lobby", "ada", 3)  # tracked again: cleaned up again when it ends
    otp.exit(pid, otp.KILL)
    assert presence.list("lobby") == {}


async def test_tracking_a_dead_process_does_nothing() -> None:
    presence = Presence("p", PubSub("app"))
    pid = member()
    otp.exit(pid, otp.KILL)
    presence.track(pid, "lobby", "ghost", 1)
    assert presence.list("lobby") == {}


async def test_bad_input_is_refused_and_changes_nothing() -> None:
    pubsub = PubSub("app")
    presence = await started(pubsub)
    lobby = await probe(pubsub, "lobby")
    pid = member()
    presence.track(pid, "lobby", "ada", 1)
    assert await next_message(lobby) == PresenceDiff("lobby", {"ada": [1]}, {})
    with pytest.raises(TypeError, match="pid must be a Pid"):
        presence.track("not a pid", "lobby", "bob", 2)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="key must be hashable"):
        presence.track(pid, "lobby", ["unhashable"], 2)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="topic must be a string"):
        presence.track(pid, 42, "bob", 2)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="key must be hashable"):
        presence.update(pid, "lobby", {"un": "hashable"}, 2)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="pid must be a Pid"):
        presence.untrack(None, "lobby", "ada")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="pid must be a Pid"):
        presence.untrack_all("ada")  # type: ignore[arg-type]
    otp.send(presence.pid, ("unexpected", "message"))
    assert presence.list("lobby") == {"ada": [1]}

    presence.track(member(), "lobby", "bob", 2)
    assert await next_message(lobby) == PresenceDiff("lobby", {"bob": [2]}, {})
    assert presence.pid is not None


# -- diffs -----------------------------------------------------------------------------------------


async def test_changes_in_one_interval_make_one_net_diff() -> None:
    pubsub = PubSub("app")
    presence = await started(pubsub)
    lobby = await probe(pubsub, "lobby")
    # No await below, so no tick can fall between the changes.
    members = [member() for _ in range(100)]
    for i, pid in enumerate(members):
        presence.track(pid, "lobby", i, {"n": i})
    for pid in members[50:]:
        otp.exit(pid, otp.KILL)  # came and went within the interval: not in the diff
    presence.update(members[0], "lobby", 0, {"n": "changed"})
    expected: dict[Hashable, list[Any]] = {i: [{"n": i}] for i in range(1, 50)}
    expected[0] = [{"n": "changed"}]
    assert await next_message(lobby) == PresenceDiff("lobby", expected, {})

    # A thousand reconnects with the same metas are no change at all.
    for i in range(1, 50):
        otp.exit(members[i], otp.KILL)
        members[i] = member()
        presence.track(members[i], "lobby", i, {"n": i})
    presence.track(member(), "lobby", "marker", None)
    assert await next_message(lobby) == PresenceDiff("lobby", {"marker": [None]}, {})

    for pid in members[1:50]:
        otp.exit(pid, otp.KILL)
    expected = {i: [{"n": i}] for i in range(1, 50)}
    assert await next_message(lobby) == PresenceDiff("lobby", {}, expected)
    assert presence.keys("lobby") == [0, "marker"]


async def test_a_topic_gets_at_most_one_diff_per_interval(clock: MockClock) -> None:
    pubsub = PubSub("app")
    presence = await started(pubsub)

    async def churn() -> None:
        for i in range(30):
            presence.track(member(), "lobby", i, None)
            await asyncio.sleep(INTERVAL_S / 10)

    pubsub.subscribe("lobby")
    otp.spawn(churn)
    seen: set[Any] = set()
    times_s = []
    while len(seen) < 30:
        diff = await otp.receive(timeout=5 * INTERVAL_S)
        times_s.append(clock.monotonic())
        assert not diff.joins.keys() & seen
        seen |= diff.joins.keys()
    assert 3 <= len(times_s) <= 4
    assert all(b - a >= INTERVAL_S - 1e-9 for a, b in itertools.pairwise(times_s))


async def test_diffs_are_per_key_with_the_full_metas() -> None:
    pubsub = PubSub("app")
    presence = await started(pubsub)
    lobby = await probe(pubsub, "lobby")
    phone, laptop = member(), member()
    presence.track(phone, "lobby", 12, "phone")
    assert await next_message(lobby) == PresenceDiff("lobby", {12: ["phone"]}, {})
    presence.track(laptop, "lobby", 12, "laptop")  # a second device: a change, not a leave
    assert await next_message(lobby) == PresenceDiff("lobby", {12: ["phone", "laptop"]}, {})
    presence.untrack(phone, "lobby", 12)
    assert await next_message(lobby) == PresenceDiff("lobby", {12: ["laptop"]}, {})
    presence.update(laptop, "lobby", 12, "laptop, away")
    assert await next_message(lobby) == PresenceDiff("lobby", {12: ["laptop, away"]}, {})
    otp.exit(laptop, otp.KILL)  # the last device: the key leaves
    assert await next_message(lobby) == PresenceDiff("lobby", {}, {12: ["laptop, away"]})


async def test_diffs_go_only_to_the_topics_subscribers_as_one_object() -> None:
    pubsub = PubSub("app")
    presence = await started(pubsub)
    lobby, lobby_too = await probe(pubsub, "lobby"), await probe(pubsub, "lobby")
    kitchen = await probe(pubsub, "kitchen")
    presence.track(member(), "lobby", "ada", 1)
    diff = await next_message(lobby)
    assert diff == PresenceDiff("lobby", {"ada": [1]}, {})
    assert await next_message(lobby_too) is diff
    presence.track(member(), "kitchen", "bob", 2)
    # The kitchen's first message is its own diff: it never got the lobby's.
    assert await next_message(kitchen) == PresenceDiff("kitchen", {"bob": [2]}, {})


# -- across nodes ----------------------------------------------------------------------------------


async def test_other_nodes_see_this_nodes_presences_and_their_diffs() -> None:
    async with cluster() as nodes:
        a = await nodes.node("a@test")
        b = await nodes.node("b@test")
        on_b = await probe(b.pubsub, "lobby")
        ada = member()
        a.track(ada, "lobby", "ada", {"on": "a"})
        assert await next_message(on_b) == PresenceDiff("lobby", {"ada": [{"on": "a"}]}, {})
        assert b.list("lobby") == {"ada": [{"on": "a"}]}
        assert b.nodes() == ["a@test"]

        b.track(member(), "lobby", "ada", {"on": "b"})  # the same user on both nodes
        joined = PresenceDiff("lobby", {"ada": [{"on": "a"}, {"on": "b"}]}, {})
        assert await next_message(on_b) == joined
        await wait_until(lambda: len(a.get("lobby", "ada")) == 2, interval_s=INTERVAL_S)

        a.update(ada, "lobby", "ada", {"on": "a", "away": True})
        updated = PresenceDiff("lobby", {"ada": [{"on": "a", "away": True}, {"on": "b"}]}, {})
        assert await next_message(on_b) == updated
        otp.exit(ada, otp.KILL)
        assert await next_message(on_b) == PresenceDiff("lobby", {"ada": [{"on": "b"}]}, {})
        assert a.list("lobby") == b.list("lobby") == {"ada": [{"on": "b"}]}


async def test_a_node_not_heard_from_leaves_after_the_down_period(clock: MockClock) -> None:
    async with cluster() as nodes:
        a = await nodes.node("a@test")
        b = await nodes.node("b@test")
        on_b = await probe(b.pubsub, "lobby")
        a.track(member(), "lobby", "ada", 1)
        assert await next_message(on_b) == PresenceDiff("lobby", {"ada": [1]}, {})

        await a.pubsub.stop()  # cut off: nothing from a reaches b any more
        cut_s = clock.monotonic()
        diff = await next_message(on_b, timeout_s=3 * DOWN_S)
        assert diff == PresenceDiff("lobby", {}, {"ada": [1]})
        assert clock.monotonic() - cut_s >= DOWN_S - HEARTBEAT_S
        assert b.list("lobby") == {}
        assert b.nodes() == []
        assert a.list("lobby") == {"ada": [1]}  # a still knows its own
        assert a.pid is not None

        await a.pubsub.start()  # back: b asks for its state and the entries return
        assert await next_message(on_b, timeout_s=3 * DOWN_S) == PresenceDiff(
            "lobby", {"ada": [1]}, {}
        )
        await wait_until(lambda: a.nodes() == ["b@test"], interval_s=INTERVAL_S)


async def test_a_stopped_presence_says_goodbye(clock: MockClock) -> None:
    async with cluster() as nodes:
        a = await nodes.node("a@test")
        b = await nodes.node("b@test")
        on_b = await probe(b.pubsub, "lobby")
        a.track(member(), "lobby", "ada", 1)
        assert await next_message(on_b) == PresenceDiff("lobby", {"ada": [1]}, {})
        stopped_s = clock.monotonic()
        await a.stop()
        assert await next_message(on_b) == PresenceDiff("lobby", {}, {"ada": [1]})
        assert clock.monotonic() - stopped_s <= INTERVAL_S  # not the down period
        await a.start()
        assert await next_message(on_b) == PresenceDiff("lobby", {"ada": [1]}, {})


async def test_a_node_that_joins_late_gets_the_existing_state() -> None:
    async with cluster() as nodes:
        a = await nodes.node("a@test")
        b = await nodes.node("b@test")
        a.track(member(), "lobby", "ada", 1)
        b.track(member(), "lobby", "bob", 2)
        b.track(member(), "kitchen", "cy", 3)
        await wait_until(lambda: a.key_count("lobby") == 2, interval_s=INTERVAL_S)

        c = await nodes.node("c@test")
        await wait_until(lambda: c.key_count("lobby") == 2, interval_s=INTERVAL_S)
        assert c.list("lobby") == {"ada": [1], "bob": [2]}
        assert c.list("kitchen") == {"cy": [3]}
        assert c.nodes() == ["a@test", "b@test"]

        c.track(member(), "lobby", "dee", 4)
        await wait_until(lambda: a.key_count("lobby") == b.key_count("lobby") == 3)
        assert a.nodes() == ["b@test", "c@test"]


async def test_a_restarted_presence_process_keeps_its_entries() -> None:
    async with cluster() as nodes:
        a = await nodes.node("a@test", start=False)
        b = await nodes.node("b@test")
        await otp.Supervisor.start_link([a.child_spec()])
        first = a.pid
        on_b = await probe(b.pubsub, "lobby")
        a.track(member(), "lobby", "ada", 1)
        assert await next_message(on_b) == PresenceDiff("lobby", {"ada": [1]}, {})

        assert first is not None
        otp.exit(first, otp.KILL)
        await wait_until(lambda: a.pid not in (None, first))
        assert a.list("lobby") == {"ada": [1]}
        a.track(member(), "lobby", "bob", 2)
        # b never saw ada leave: the next diff is bob's join alone.
        assert await next_message(on_b) == PresenceDiff("lobby", {"bob": [2]}, {})


async def test_a_meta_that_cannot_cross_nodes_does_not_stop_the_presence() -> None:
    async with cluster() as nodes:
        a = await nodes.node("a@test")
        b = await nodes.node("b@test")
        bad = member()
        a.track(bad, "lobby", "bad", lambda: "a function is not data")
        await asyncio.sleep(3 * HEARTBEAT_S)
        assert a.pid is not None
        assert b.list("lobby") == {}

        a.untrack(bad, "lobby", "bad")
        a.track(member(), "lobby", "ada", 1)
        await wait_until(lambda: b.list("lobby") == {"ada": [1]}, interval_s=INTERVAL_S)


async def test_a_node_restarted_under_its_old_name_replaces_its_presences() -> None:
    async with cluster() as nodes:
        old_a = await nodes.node("a@test")
        b = await nodes.node("b@test")
        on_b = await probe(b.pubsub, "lobby")
        old_a.track(member(), "lobby", "ada", 1)
        assert await next_message(on_b) == PresenceDiff("lobby", {"ada": [1]}, {})

        # The node dies without a goodbye, and is back before b would take it for down.
        assert old_a.pid is not None
        otp.exit(old_a.pid, otp.KILL)
        await old_a.pubsub.stop()
        new_a = await nodes.node("a@test", start=False)
        new_a.track(member(), "lobby", "bob", 2)
        await new_a.start()
        joins: dict[Any, list[Any]] = {}
        leaves: dict[Any, list[Any]] = {}
        while "bob" not in joins:
            diff = await next_message(on_b)
            joins |= diff.joins
            leaves |= diff.leaves
        assert (joins, leaves) == ({"bob": [2]}, {"ada": [1]})
        assert b.list("lobby") == {"bob": [2]}
        assert b.nodes() == ["a@test"]


async def test_diffs_go_through_the_dispatcher_given() -> None:
    pubsub = PubSub("dispatched")
    seen: list[tuple[int, Any]] = []

    def dispatcher(subscribers: Any, from_pid: Any, message: Any) -> None:
        seen.append((len(subscribers), message))

    presence = Presence("people", pubsub, broadcast_interval_s=1.0, dispatcher=dispatcher)
    await presence.start_link()
    pubsub.subscribe("room")
    presence.track(otp.self(), "room", "ada", {"device": 1})
    await asyncio.sleep(1.5)
    assert [(count, diff.joins) for count, diff in seen] == [(1, {"ada": [{"device": 1}]})]
    with pytest.raises(TimeoutError):
        await otp.receive(timeout=0)  # not in the mailbox: the dispatcher had it
    await presence.stop()
