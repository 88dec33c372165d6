from typing import Any

from trunkline import otp


class Worker(otp.GenServer):
    def handle_call(self, request: Any, from_: otp.From) -> Any:
        return request

    def handle_cast(self, request: Any) -> None:
        pass


async def test_process_info_describes_a_gen_server() -> None:
    pid = await Worker.start(name="worker")
    for n in range(3):
        await otp.call(pid, n)
    info = otp.process_info(pid)
    assert info is not None
    assert info.pid is pid
    assert info.name == "worker"
    assert info.behaviour == "gen_server"
    assert info.module.endswith("test_introspection.Worker")
    assert info.messages_handled == 3
    assert info.mailbox_length == 0
    assert info.waiting


async def test_process_info_counts_queued_messages_and_links_and_monitors() -> None:
    async def sleeper() -> None:
        await otp.receive(lambda m: m == "never")

    pid = otp.spawn(sleeper)
    otp.link(pid)
    ref = otp.monitor(pid)
    for n in range(5):
        otp.send(pid, n)
    info = otp.process_info(pid)
    me = otp.self()
    assert info is not None
    assert info.behaviour == "process"
    assert "sleeper" in info.module
    assert info.mailbox_length == 5
    assert info.links == (me,)
    assert info.monitored_by == (me,)
    mine = otp.process_info(me)
    assert mine is not None
    assert mine.monitors == (pid,)
    otp.demonitor(ref)
    otp.unlink(pid)


async def test_process_info_of_a_dead_process_is_none() -> None:
    pid = await Worker.start()
    otp.exit(pid, otp.KILL)
    assert otp.process_info(pid) is None


async def test_list_processes_lists_live_processes_oldest_first() -> None:
    pids = [await Worker.start() for _ in range(3)]
    otp.exit(pids[1], otp.KILL)
    listed = [info.pid for info in otp.list_processes()]
    assert pids[0] in listed
    assert pids[2] in listed
    assert pids[1] not in listed
    assert listed == sorted(listed)


async def test_supervision_tree_walks_nested_supervisors() -> None:
    inner = otp.ChildSpec(
        "inner",
        lambda: otp.Supervisor.start_link([otp.child_spec(Worker, id="leaf", name="leaf")]),
        type="supervisor",
    )
    root = await otp.Supervisor.start([otp.child_spec(Worker, id="first"), inner], name="root")
    tree = await otp.supervision_tree("root")
    assert tree.pid is root
    assert tree.kind == "supervisor"
    assert [child.id for child in tree.children] == ["first", "inner"]
    first, sub = tree.children
    assert first.kind == "gen_server"
    assert sub.kind == "supervisor"
    assert [leaf.id for leaf in sub.children] == ["leaf"]
    assert sub.children[0].pid is otp.whereis("leaf")
    assert [node.id for node in tree.walk()] == ["root", "first", "inner", "leaf"]
    rendered = tree.render().splitlines()
    assert rendered[0].startswith("root ")
    assert rendered[3].startswith("    leaf ")
    info = otp.process_info(otp.whereis("leaf"))  # type: ignore[arg-type]
    assert info is not None
    assert info.parent is sub.pid
    root_info = otp.process_info(root)
    assert root_info is not None
    assert root_info.behaviour == "supervisor"


async def test_supervision_tree_asks_only_supervisors_for_children() -> None:
    spec = otp.ChildSpec("w", lambda: Worker.start_link(), type="supervisor")
    sup = await otp.Supervisor.start([spec], name="top")
    [child] = await otp.which_children(sup)
    tree = await otp.supervision_tree("top")
    assert child.pid is not None
    assert otp.is_alive(child.pid)
    assert tree.children[0].kind == "gen_server"
    assert tree.children[0].children == ()
