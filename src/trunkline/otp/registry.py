"""Registry: a node-local store of keys to processes, as Elixir's ``Registry``.

A process registers *itself* under a key, with a value; anyone can look the key up. With
``keys="unique"`` a key names at most one process, which makes the registry a name service
(:class:`~trunkline.otp.Via` names); with ``keys="duplicate"`` a key gathers any number of
processes, which makes it a process group to dispatch to. A process may hold many keys. Its
entries vanish the moment it ends, however it ends - normally, crashed or killed.

A registry is a plain object, not a process. Lookups are dictionary reads, registrations are
made by the calling process itself, and cleanup runs in the ending process's exit hook, so no
server sits between callers and the data and nothing needs starting or supervising. (Elixir
needs a process per partition to own its ETS tables and to be told of exits; here the runtime
calls the hook directly.) Everything runs on the node's event loop, so every operation is
atomic.

Example::

    accounts = Registry("unique", name="accounts")

    # One server per account, named by data; the name is free again the moment it ends.
    await AccountServer.start("acme", name=Via(accounts, "acme"))
    await call(Via(accounts, "acme"), "balance")

    # Any process can register itself, with a value that anyone can read.
    accounts.register("acme:export", {"since": clock.now()})
    [(pid, info)] = accounts.lookup("acme:export")

When to use which: a local name (:func:`~trunkline.otp.register`) for a handful of singletons;
a unique registry for names made from data (one server per account, per room); a duplicate
registry for "every process interested in X" when you want the entries and their values. For
topics with messages, :class:`~trunkline.otp.pubsub.PubSub` is the higher-level tool.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping
from typing import Any, Literal, TypeAlias

from .exceptions import AlreadyRegistered
from .process import Pid, add_exit_hook, remove_exit_hook
from .process import self as _caller

__all__ = ["Registry"]

Entry: TypeAlias = "tuple[Pid, Any]"


class Registry:
    """Keys mapped to the processes that registered them, each with a value.

    Args:
        keys: ``"unique"`` (a key names at most one process) or ``"duplicate"`` (a key may
            be registered by any number of processes, each any number of times).
        name: shown in ``repr`` and in error messages.
        meta: initial registry metadata (see :meth:`meta`).

    Raises:
        ValueError: ``keys`` is neither ``"unique"`` nor ``"duplicate"``.

    Example::

        rooms = Registry("duplicate", name="rooms")
        rooms.register("lobby", {"nick": "ada"})      # the caller joins "lobby"
        rooms.dispatch("lobby", lambda entries: [send(pid, "hi") for pid, _ in entries])
    """

    def __init__(
        self,
        keys: Literal["unique", "duplicate"],
        *,
        name: str | None = None,
        meta: Mapping[Hashable, Any] | None = None,
    ) -> None:
        if keys not in ("unique", "duplicate"):
            raise ValueError(f"Registry keys must be 'unique' or 'duplicate', not {keys!r}")
        self.name = name
        self._unique = keys == "unique"
        # unique: key -> (pid, value). duplicate: key -> {pid: [value, ...]}, so that a
        # process's entries under a key are found and dropped without scanning the others.
        self._one: dict[Hashable, Entry] = {}
        self._many: dict[Hashable, dict[Pid, list[Any]]] = {}
        self._size = 0  # entries in a duplicate registry
        # pid -> its keys (a dict as an ordered set), for cleanup when the process ends.
        self._by_pid: dict[Pid, dict[Hashable, None]] = {}
        self._meta: dict[Hashable, Any] = dict(meta or {})
        self._on_exit = self._process_ended  # bound once, not per registering process

    @property
    def kind(self) -> Literal["unique", "duplicate"]:
        """``"unique"`` or ``"duplicate"``, as given to the constructor."""
        return "unique" if self._unique else "duplicate"

    def __repr__(self) -> str:
        label = f" {self.name!r}" if self.name is not None else ""
        return f"<Registry{label} {self.kind}, {self.count()} entries>"

    # -- writing: always on behalf of the calling process ------------------------------------------

    def register(self, key: Hashable, value: Any = None) -> None:
        """Register the calling process under ``key`` with ``value``.

        In a duplicate registry the same process may register the same key again; each
        registration is a separate entry.

        Raises:
            AlreadyRegistered: (unique registries) a live process, possibly the caller,
                holds ``key``; the holder is ``error.pid``.
            ValueError: the caller has already ended (it killed itself).
        """
        pid = _caller()
        if self._unique:
            held = self._one.get(key)
            if held is not None and held[0]._alive:
                raise AlreadyRegistered(self, key, held[0])
            self._track_caller(pid, key)
            self._one[key] = (pid, value)
            return
        self._track_caller(pid, key)
        entries = self._many.get(key)
        if entries is None:
            self._many[key] = {pid: [value]}
        else:
            values = entries.get(pid)
            if values is None:
                entries[pid] = [value]
            else:
                values.append(value)
        self._size += 1

    def unregister(self, key: Hashable) -> None:
        """Remove every entry the calling process has under ``key``; others' stay."""
        pid = _caller()
        if self._unique:
            held = self._one.get(key)
            if held is not None and held[0] is pid:
                del self._one[key]
                self._untrack(pid, key)
            return
        entries = self._many.get(key)
        if entries is not None:
            values = entries.pop(pid, None)
            if values is not None:
                self._size -= len(values)
                if not entries:
                    del self._many[key]
                self._untrack(pid, key)

    def unregister_match(self, key: Hashable, where: Callable[[Any], bool]) -> None:
        """Remove the calling process's entries under ``key`` whose value satisfies ``where``."""
        pid = _caller()
        if self._unique:
            held = self._one.get(key)
            if held is not None and held[0] is pid and where(held[1]):
                del self._one[key]
                self._untrack(pid, key)
            return
        entries = self._many.get(key)
        values = entries.get(pid) if entries is not None else None
        if entries is None or values is None:
            return
        kept = [value for value in values if not where(value)]
        self._size -= len(values) - len(kept)
        if kept:
            entries[pid] = kept
            return
        del entries[pid]
        if not entries:
            del self._many[key]
        self._untrack(pid, key)

    def update_value(self, key: Hashable, update: Callable[[Any], Any]) -> tuple[Any, Any] | None:
        """Replace the value of the caller's unique ``key`` with ``update(old)``.

        Returns:
            ``(new, old)``, or ``None`` when the caller does not hold ``key``.

        Raises:
            ValueError: the registry has duplicate keys.
        """
        if not self._unique:
            raise ValueError(f"update_value needs a unique registry; {self!r} has duplicate keys")
        pid = _caller()
        held = self._one.get(key)
        if held is None or held[0] is not pid:
            return None
        old = held[1]
        new = update(old)
        self._one[key] = (pid, new)
        return new, old

    # -- reading -----------------------------------------------------------------------------------

    def lookup(self, key: Hashable) -> list[Entry]:
        """The ``(pid, value)`` entries under ``key``: at most one in a unique registry.

        Duplicate entries come grouped by process, in the order the processes first
        registered, each process's values in registration order.
        """
        if self._unique:
            held = self._one.get(key)
            # A holder killed from inside another process's exit hook is dead a moment before
            # its own hook runs: do not hand it out.
            return [held] if held is not None and held[0]._alive else []
        entries = self._many.get(key)
        if not entries:
            return []
        return [(pid, value) for pid, values in entries.items() for value in values]

    def keys(self, pid: Pid) -> list[Hashable]:
        """The keys ``pid`` is registered under; repeated for repeated duplicate entries."""
        keys = self._by_pid.get(pid)
        if keys is None:
            return []
        if self._unique:
            return list(keys)
        many = self._many
        return [key for key in keys for _ in many[key][pid]]

    def values(self, key: Hashable, pid: Pid) -> list[Any]:
        """The values ``pid`` registered under ``key``: at most one in a unique registry."""
        if self._unique:
            held = self._one.get(key)
            return [held[1]] if held is not None and held[0] is pid else []
        entries = self._many.get(key)
        if entries is None:
            return []
        return list(entries.get(pid, ()))

    def match(self, key: Hashable, where: Callable[[Any], bool]) -> list[Entry]:
        """The entries under ``key`` whose value satisfies ``where``.

        The predicate plays the part of Elixir's match pattern, e.g.
        ``registry.match("room", lambda v: v["role"] == "admin")``.
        """
        return [entry for entry in self.lookup(key) if where(entry[1])]

    def count(self) -> int:
        """How many entries the registry holds (for duplicate keys, every registration)."""
        return len(self._one) if self._unique else self._size

    def count_match(self, key: Hashable, where: Callable[[Any], bool]) -> int:
        """How many entries under ``key`` have a value satisfying ``where``."""
        return sum(1 for _, value in self.lookup(key) if where(value))

    def select(
        self, where: Callable[[Hashable, Pid, Any], bool] | None = None
    ) -> list[tuple[Hashable, Pid, Any]]:
        """Every ``(key, pid, value)`` entry, or those for which ``where(key, pid, value)``."""
        if self._unique:
            triples = [(key, pid, value) for key, (pid, value) in self._one.items()]
        else:
            triples = [
                (key, pid, value)
                for key, entries in self._many.items()
                for pid, values in entries.items()
                for value in values
            ]
        if where is None:
            return triples
        return [triple for triple in triples if where(*triple)]

    def dispatch(self, key: Hashable, fn: Callable[[list[Entry]], object]) -> None:
        """Call ``fn(entries)`` with the entries under ``key``; not at all when there are none.

        The list is a snapshot: ``fn`` may register, unregister or end processes freely.
        """
        entries = self.lookup(key)
        if entries:
            fn(entries)

    # -- registry metadata -------------------------------------------------------------------------

    def meta(self, key: Hashable, default: Any = None) -> Any:
        """The registry metadata stored under ``key``, or ``default``."""
        return self._meta.get(key, default)

    def put_meta(self, key: Hashable, value: Any) -> None:
        """Store registry metadata: values about the registry, owned by no process."""
        self._meta[key] = value

    def delete_meta(self, key: Hashable) -> None:
        """Remove registry metadata; unknown keys are ignored."""
        self._meta.pop(key, None)

    # -- the Via protocol: Via(registry, key) as a server name -------------------------------------

    def whereis_name(self, key: Hashable) -> Pid | None:
        """The live process holding ``key``, or ``None``. Used to resolve ``Via`` names.

        Raises:
            ValueError: the registry has duplicate keys, which cannot name one process.
        """
        if not self._unique:
            raise ValueError(f"Via names need a unique registry; {self!r} has duplicate keys")
        held = self._one.get(key)
        if held is not None and held[0]._alive:
            return held[0]
        return None

    def register_name(self, key: Hashable, pid: Pid) -> bool:
        """Register ``pid`` under ``key`` with value ``None``; ``False`` if held or ``pid`` is dead.

        How ``GenServer.start(name=Via(registry, key))`` claims its name.

        Raises:
            ValueError: the registry has duplicate keys.
        """
        if self.whereis_name(key) is not None or not self._track(pid, key):
            return False
        self._one[key] = (pid, None)
        return True

    def unregister_name(self, key: Hashable) -> None:
        """Release ``key``, whichever process holds it.

        As :func:`~trunkline.otp.unregister` does for local names. (Elixir's lets only the
        holder do it; here freeing a name does not require being the server that holds it.)
        """
        held = self._one.pop(key, None)
        if held is not None:
            self._untrack(held[0], key)

    # -- bookkeeping -------------------------------------------------------------------------------

    def _track(self, pid: Pid, key: Hashable) -> bool:
        keys = self._by_pid.get(pid)
        if keys is None:
            # One hook per process per registry, however many keys it holds.
            if not add_exit_hook(pid, self, self._on_exit):
                return False
            keys = self._by_pid[pid] = {}
        keys[key] = None
        return True

    def _track_caller(self, pid: Pid, key: Hashable) -> None:
        # Only a process that killed itself a moment ago can be running yet dead.
        if not self._track(pid, key):
            raise ValueError(f"cannot register {key!r}: {pid!r} is not alive")

    def _untrack(self, pid: Pid, key: Hashable) -> None:
        keys = self._by_pid.get(pid)
        if keys is not None:
            keys.pop(key, None)
            if not keys:
                del self._by_pid[pid]
                remove_exit_hook(pid, self)

    def _process_ended(self, pid: Pid, reason: Any) -> None:
        keys = self._by_pid.pop(pid, None)
        if keys is None:
            return
        if self._unique:
            one = self._one
            for key in keys:
                held = one.get(key)
                # The key may have passed to another process while this one lay dying.
                if held is not None and held[0] is pid:
                    del one[key]
            return
        many = self._many
        for key in keys:
            entries = many.get(key)
            if entries is not None:
                values = entries.pop(pid, None)
                if values is not None:
                    self._size -= len(values)
                    if not entries:
                        del many[key]
