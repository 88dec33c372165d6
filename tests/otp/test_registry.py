from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trunkline import otp
from trunkline.otp import testing
from trunkline.otp.exceptions import AlreadyRegistered
from trunkline.otp.registry import Registry

# -- a process that runs what it is sent, so tests can act as several processes --------------------


async def _agent(owner: otp.Pid) -> None:
    while True:
        fn = await otp.receive()
        if fn == "crash":
            raise RuntimeError("agent crashed on purpose")
        try:
            result: Any = ("ok", fn())
        except Exception as e:
            result = ("error", e)
        otp.send(owner, (otp.self(), result))


def agent() -> otp.Pid:
    return otp.spawn(_agent, otp.self())


async def run_in(pid: otp.Pid, fn: Callable[[], Any]) -> Any:
    """Run ``fn`` inside process ``pid``; return its result or raise its exception."""
    otp.send(pid, fn)
    _, (status, value) = await otp.receive(lambda m: type(m) is tuple and m[0] is pid, timeout=1)
    if status == "error":
        raise value
    return value


async def crash(pid: otp.Pid) -> None:
    ref = otp.monitor(pid)
    otp.send(pid, "crash")
    down = await otp.receive(lambda m: isinstance(m, otp.Down) and m.ref is ref, timeout=1)
    assert isinstance(down.reason, RuntimeError)


# -- construction ----------------------------------------------------------------------------------


def test_keys_option_is_validated() -> None:
    with pytest.raises(ValueError, match="'unique' or 'duplicate'"):
        Registry("uniq")  # type: ignore[arg-type]


async def test_repr_names_the_registry_and_counts_entries() -> None:
    registry = Registry("unique", name="workers")
    registry.register("a")
    assert repr(registry) == "<Registry 'workers' unique, 1 entries>"
    assert registry.kind == "unique"


# -- unique keys -----------------------------------------------------------------------------------


async def test_unique_register_and_lookup() -> None:
    registry = Registry("unique")
    registry.register("alice", {"role": "admin"})
    assert registry.lookup("alice") == [(otp.self(), {"role": "admin"})]
    assert registry.lookup("bob") == []
    assert registry.keys(otp.self()) == ["alice"]
    assert registry.values("alice", otp.self()) == [{"role": "admin"}]


async def test_unique_conflict_names_the_holder() -> None:
    registry = Registry("unique", name="r")
    other = agent()
    await run_in(other, lambda: registry.register("alice", 1))
    with pytest.raises(AlreadyRegistered) as info:
        registry.register("alice", 2)
    assert info.value.pid is other
    assert info.value.registry is registry
    assert "'alice'" in str(info.value)
    assert registry.lookup("alice") == [(other, 1)]


async def test_registering_a_key_one_already_holds_is_a_conflict_too() -> None:
    registry = Registry("unique")
    registry.register("alice", 1)
    with pytest.raises(otp.NameTaken) as info:  # AlreadyRegistered is a NameTaken
        registry.register("alice", 2)
    assert info.value.pid is otp.self()
    assert registry.values("alice", otp.self()) == [1]


async def test_unregister_only_touches_the_callers_entry() -> None:
    registry = Registry("unique")
    other = agent()
    await run_in(other, lambda: registry.register("alice"))
    registry.unregister("alice")  # held by another process: no effect
    assert registry.lookup("alice") == [(other, None)]
    await run_in(other, lambda: registry.unregister("alice"))
    assert registry.lookup("alice") == []
    assert registry.keys(other) == []
    registry.register("alice")  # free again
    assert registry.lookup("alice") == [(otp.self(), None)]


async def test_update_value() -> None:
    registry = Registry("unique")
    registry.register("n", 1)
    assert registry.update_value("n", lambda v: v + 10) == (11, 1)
    assert registry.lookup("n") == [(otp.self(), 11)]
    assert registry.update_value("missing", lambda v: v) is None
    other = agent()
    assert await run_in(other, lambda: registry.update_value("n", lambda v: 0)) is None
    assert registry.values("n", otp.self()) == [11]


async def test_update_value_needs_a_unique_registry() -> None:
    registry = Registry("duplicate", name="d")
    registry.register("n", 1)
    with pytest.raises(ValueError, match="unique registry"):
        registry.update_value("n", lambda v: v)


# -- duplicate keys --------------------------------------------------------------------------------


async def test_duplicate_keys_gather_processes_and_repeat_registrations() -> None:
    registry = Registry("duplicate")
    me = otp.self()
    other = agent()
    registry.register("room", "a")
    await run_in(other, lambda: registry.register("room", "b"))
    registry.register("room", "c")
    assert registry.lookup("room") == [(me, "a"), (me, "c"), (other, "b")]
    assert registry.keys(me) == ["room", "room"]
    assert registry.keys(other) == ["room"]
    assert registry.values("room", me) == ["a", "c"]
    assert registry.count() == 3


async def test_duplicate_unregister_removes_all_of_the_callers_entries_only() -> None:
    registry = Registry("duplicate")
    other = agent()
    registry.register("room", 1)
    registry.register("room", 2)
    await run_in(other, lambda: registry.register("room", 3))
    registry.unregister("room")
    assert registry.lookup("room") == [(other, 3)]
    assert registry.keys(otp.self()) == []
    assert registry.count() == 1


async def test_unregister_match() -> None:
    registry = Registry("duplicate")
    other = agent()
    for value in (1, 2, 3, 4):
        registry.register("n", value)
    await run_in(other, lambda: registry.register("n", 2))
    registry.unregister_match("n", lambda v: v % 2 == 0)
    assert registry.values("n", otp.self()) == [1, 3]
    assert registry.values("n", other) == [2]
    assert registry.count() == 3
    registry.unregister_match("n", lambda v: True)
    assert registry.keys(otp.self()) == []

    unique = Registry("unique")
    unique.register("k", "keep")
    unique.unregister_match("k", lambda v: v == "drop")
    assert unique.lookup("k") == [(otp.self(), "keep")]
    unique.unregister_match("k", lambda v: v == "keep")
    assert unique.lookup("k") == []


async def test_dispatch_match_count_and_select() -> None:
    registry = Registry("duplicate")
    me = otp.self()
    other = agent()
    registry.register("room", {"role": "admin"})
    await run_in(other, lambda: registry.register("room", {"role": "guest"}))
    await run_in(other, lambda: registry.register("hall", {"role": "admin"}))

    seen: list[list[tuple[otp.Pid, Any]]] = []
    registry.dispatch("room", seen.append)
    registry.dispatch("nobody", seen.append)  # no entries: not called
    assert seen == [[(me, {"role": "admin"}), (other, {"role": "guest"})]]

    def is_admin(value: Any) -> bool:
        return bool(value["role"] == "admin")

    assert registry.match("room", is_admin) == [(me, {"role": "admin"})]
    assert registry.count() == 3
    assert registry.count_match("room", is_admin) == 1
    assert registry.count_match("hall", is_admin) == 1
    assert registry.select(lambda key, pid, value: pid is other) == [
        ("room", other, {"role": "guest"}),
        ("hall", other, {"role": "admin"}),
    ]
    assert len(registry.select()) == 3


async def test_dispatch_gets_a_snapshot_it_may_act_on() -> None:
    registry = Registry("duplicate")
    members = [agent() for _ in range(3)]
    for pid in members:
        await run_in(pid, lambda: registry.register("group"))

    def kill_all(entries: list[tuple[otp.Pid, Any]]) -> None:
        for pid, _ in entries:
            otp.exit(pid, otp.KILL)

    registry.dispatch("group", kill_all)
    assert registry.lookup("group") == []
    assert not any(otp.is_alive(pid) for pid in members)


async def test_meta() -> None:
    registry = Registry("unique", meta={"shard": 1})
    assert registry.meta("shard") == 1
    registry.put_meta(("limits", "max"), 10)
    assert registry.meta(("limits", "max")) == 10
    registry.delete_meta("shard")
    assert registry.meta("shard", "none") == "none"


# -- entries vanish with their process -------------------------------------------------------------


@pytest.mark.parametrize("kind", ["unique", "duplicate"])
async def test_entries_vanish_when_the_process_is_killed(kind: Any) -> None:
    registry = Registry(kind)
    pid = agent()
    await run_in(pid, lambda: (registry.register("a", 1), registry.register("b", 2)))
    registry.register("c", 3)
    otp.exit(pid, otp.KILL)
    # Dead as soon as exit returns, and so are its entries.
    assert registry.lookup("a") == []
    assert registry.lookup("b") == []
    assert registry.keys(pid) == []
    assert registry.count() == 1
    assert registry.select() == [("c", otp.self(), 3)]


@pytest.mark.parametrize("kind", ["unique", "duplicate"])
async def test_entries_vanish_when_the_process_crashes(kind: Any) -> None:
    registry = Registry(kind)
    pid = agent()
    await run_in(pid, lambda: registry.register("a", 1))
    await crash(pid)
    assert registry.lookup("a") == []
    assert registry.count() == 0


async def test_entries_vanish_when_the_process_returns() -> None:
    registry = Registry("unique")

    async def brief() -> None:
        registry.register("brief")

    _, ref = otp.spawn_monitor(brief)
    down = await otp.receive(lambda m: isinstance(m, otp.Down) and m.ref is ref, timeout=1)
    assert down.reason == otp.NORMAL
    assert registry.lookup("brief") == []


async def test_a_freed_key_can_be_taken_by_another_process() -> None:
    registry = Registry("unique")
    first = agent()
    await run_in(first, lambda: registry.register("job", "first"))
    otp.exit(first, otp.KILL)
    second = agent()
    await run_in(second, lambda: registry.register("job", "second"))
    assert registry.lookup("job") == [(second, "second")]


async def test_a_process_can_leave_a_registry_and_rejoin() -> None:
    # Unregistering its last key drops the process's exit hook; joining again must re-add it.
    registry = Registry("unique")
    pid = agent()
    await run_in(pid, lambda: registry.register("a"))
    await run_in(pid, lambda: registry.unregister("a"))
    await run_in(pid, lambda: registry.register("b"))
    otp.exit(pid, otp.KILL)
    assert registry.lookup("b") == []


async def test_registries_are_independent() -> None:
    first, second = Registry("unique"), Registry("duplicate")
    pid = agent()
    await run_in(pid, lambda: (first.register("k", 1), second.register("k", 2)))
    await run_in(pid, lambda: first.unregister("k"))  # must not drop its hook in `second`
    otp.exit(pid, otp.KILL)
    assert first.lookup("k") == []
    assert second.lookup("k") == []
    assert second.count() == 0


# -- Via names -------------------------------------------------------------------------------------


class Named(otp.GenServer):
    def init(self, label: str) -> None:
        self.label = label
        self.infos: list[Any] = []

    def handle_call(self, request: Any, from_: otp.From) -> Any:
        if request == "crash":
            raise RuntimeError("server crashed on purpose")
        if request == "infos":
            return self.infos
        return (self.label, request)

    def handle_cast(self, request: Any) -> None:
        self.infos.append(("cast", request))

    def handle_info(self, message: Any) -> None:
        self.infos.append(message)


async def test_via_name_starts_calls_sends_and_casts() -> None:
    registry = Registry("unique")
    name = otp.Via(registry, ("account", 7))
    pid = await Named.start("first", name=name)
    assert registry.lookup(("account", 7)) == [(pid, None)]
    assert otp.resolve(name) is pid
    assert await otp.call(name, "ping") == ("first", "ping")
    otp.send(name, "hello")
    otp.cast(name, "world")
    assert await otp.call(name, "infos") == ["hello", ("cast", "world")]


async def test_via_name_taken_raises_already_started() -> None:
    registry = Registry("unique")
    name = otp.Via(registry, "k")
    pid = await Named.start("first", name=name)
    with pytest.raises(otp.AlreadyStarted) as info:
        await Named.start("second", name=name)
    assert info.value.pid is pid
    assert await otp.call(name, "ping") == ("first", "ping")
    assert registry.count() == 1


async def test_via_name_is_freed_on_crash_and_reusable() -> None:
    registry = Registry("unique")
    name = otp.Via(registry, "k")
    first = await Named.start("first", name=name)
    with pytest.raises(otp.CallError) as info:
        await otp.call(name, "crash")
    assert isinstance(info.value.reason, RuntimeError)
    assert registry.whereis_name("k") is None
    with pytest.raises(otp.NoProcess):
        otp.send(name, "anyone?")
    second = await Named.start("second", name=name)
    assert second is not first
    assert await otp.call(name, "ping") == ("second", "ping")


async def test_via_name_is_freed_on_kill() -> None:
    registry = Registry("unique")
    pid = await Named.start("first", name=otp.Via(registry, "k"))
    otp.exit(pid, otp.KILL)
    assert registry.whereis_name("k") is None
    with pytest.raises(otp.CallError) as info:
        await otp.call(otp.Via(registry, "k"), "ping")
    assert info.value.reason == otp.NOPROC


async def test_register_name_and_unregister_name() -> None:
    registry = Registry("unique")
    pid = agent()
    assert registry.register_name("k", pid) is True
    assert registry.register_name("k", otp.self()) is False
    assert registry.whereis_name("k") is pid
    registry.unregister_name("k")  # whoever holds it
    assert registry.whereis_name("k") is None
    assert registry.keys(pid) == []
    otp.exit(pid, otp.KILL)
    assert registry.register_name("k", pid) is False  # a dead process cannot take a name


async def test_via_names_need_a_unique_registry() -> None:
    registry = Registry("duplicate", name="d")
    with pytest.raises(ValueError, match="unique registry"):
        registry.whereis_name("k")
    with pytest.raises(otp.StartError) as info:
        await Named.start("x", name=otp.Via(registry, "k"))
    assert isinstance(info.value.reason, ValueError)


# -- against a model -------------------------------------------------------------------------------

_WORKERS = 3
_KEYS = "abc"

_operation = st.one_of(
    st.tuples(
        st.just("register"),
        st.integers(0, _WORKERS - 1),
        st.sampled_from(_KEYS),
        st.integers(0, 2),
    ),
    st.tuples(st.just("unregister"), st.integers(0, _WORKERS - 1), st.sampled_from(_KEYS)),
    st.tuples(st.just("kill"), st.integers(0, _WORKERS - 1)),
)


@settings(max_examples=75, deadline=None)
@given(kind=st.sampled_from(["unique", "duplicate"]), operations=st.lists(_operation, max_size=25))
def test_registry_agrees_with_a_model(kind: Any, operations: list[tuple[Any, ...]]) -> None:
    async def main() -> None:
        registry = Registry(kind)
        workers = [agent() for _ in range(_WORKERS)]
        dead: list[otp.Pid] = []
        model: list[tuple[otp.Pid, str, int]] = []  # (pid, key, value), one per entry

        for operation in operations:
            match operation:
                case ("register", w, key, value):
                    pid = workers[w]
                    holder = next((p for p, k, _ in model if k == key), None)
                    if kind == "unique" and holder is not None:
                        with pytest.raises(AlreadyRegistered) as info:
                            await run_in(pid, lambda k=key, v=value: registry.register(k, v))
                        assert info.value.pid is holder
                    else:
                        await run_in(pid, lambda k=key, v=value: registry.register(k, v))
                        model.append((pid, key, value))
                case ("unregister", w, key):
                    pid = workers[w]
                    await run_in(pid, lambda k=key: registry.unregister(k))
                    model = [e for e in model if not (e[0] is pid and e[1] == key)]
                case ("kill", w):
                    pid = workers[w]
                    otp.exit(pid, otp.KILL)
                    dead.append(pid)
                    workers[w] = agent()
                    model = [e for e in model if e[0] is not pid]

            for key in _KEYS:
                expected = Counter((p, v) for p, k, v in model if k == key)
                assert Counter(registry.lookup(key)) == expected
            for pid in workers + dead:
                assert Counter(registry.keys(pid)) == Counter(k for p, k, _ in model if p is pid)
            assert registry.count() == len(model)

    testing.run(main)
