"""The processes of ``bench/chat.py``: the two servers and the load generators, each started
as a subprocess of its own and stopped by its pid when the benchmark ends, however it ends
(an error, Ctrl-C, SIGTERM; and, should the benchmark itself be killed, each child is sent
SIGTERM by the kernel: ``PR_SET_PDEATHSIG``).

- :func:`start_node`: ``trunkline serve`` on a free port of 127.0.0.1, with the environment
  given (the benchmark raises the chat limits there).
- :func:`start_raw`: ``chat_raw.py``, the bare ``websockets`` broadcast.
- :class:`Generators`: ``chat_load.py`` processes, commanded one JSON line at a time.
- :func:`cpu_s`, :func:`rss_bytes`: what ``/proc`` says of a process.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
HOST = "127.0.0.1"


def _die_with_parent() -> None:
    # Linux: SIGTERM when the benchmark dies, however it dies.
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        port: int = s.getsockname()[1]
        return port


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process, all its threads."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


class Processes:
    """Every process the benchmark starts, stopped (by pid) when it ends, however it ends."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.started: list[tuple[str, subprocess.Popen[str]]] = []
        self.logs: list[Any] = []

    def start(
        self, name: str, argv: Sequence[str], env: dict[str, str] | None = None, **kwargs: Any
    ) -> subprocess.Popen[str]:
        log = (self.directory / f"{name}.log").open("w")
        self.logs.append(log)
        process = subprocess.Popen(
            argv,
            env={**os.environ, **(env or {})},
            stderr=log,
            text=True,
            start_new_session=True,  # a Ctrl-C reaches the benchmark only; it stops the rest
            preexec_fn=_die_with_parent,
            **kwargs,
        )
        self.started.append((name, process))
        return process

    def log_tail(self, name: str, lines: int = 20) -> str:
        path = self.directory / f"{name}.log"
        return "\n".join(path.read_text().splitlines()[-lines:]) if path.exists() else ""

    def stop(self, process: subprocess.Popen[str], timeout_s: float = 10.0) -> None:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def stop_all(self) -> None:
        # In the order they started: the load generators first, so that the servers have no
        # clients left to close when they stop.
        for _, process in self.started:
            self.stop(process)
        for log in self.logs:
            log.close()


@dataclass
class Server:
    name: str
    process: subprocess.Popen[str]
    url: str  # what clients connect to

    @property
    def pid(self) -> int:
        return self.process.pid


def wait_listening(
    processes: Processes, name: str, process: subprocess.Popen[str], port: int
) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{name} exited ({process.returncode}):\n{processes.log_tail(name)}")
        with contextlib.suppress(OSError), socket.create_connection((HOST, port), timeout=1):
            return
        time.sleep(0.05)
    raise RuntimeError(f"{name} is not listening on port {port} after 60 s")


def start_node(processes: Processes, database_url: str, environment: Mapping[str, str]) -> Server:
    """``trunkline serve`` on a free port, on ``database_url``, with ``TRUNKLINE_*`` settings
    from ``environment``; once it answers ``/healthz``."""
    port = free_port()
    script = Path(sys.executable).with_name("trunkline")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "trunkline"]
    process = processes.start(
        "trunkline",
        [*command, "serve", "--port", str(port), "--database", database_url],
        env=dict(environment),
        stdout=subprocess.DEVNULL,
    )
    wait_listening(processes, "trunkline", process, port)
    with urllib.request.urlopen(f"http://{HOST}:{port}/healthz", timeout=10) as answer:
        if answer.status != 200:
            raise RuntimeError(f"trunkline is not healthy: {answer.status}")
    return Server("trunkline", process, f"ws://{HOST}:{port}/socket")


def start_raw(processes: Processes) -> Server:
    """The raw broadcast server (``chat_raw.py``) on a free port, once it listens."""
    port = free_port()
    process = processes.start(
        "raw",
        [sys.executable, str(BENCH / "chat_raw.py"), "--port", str(port)],
        stdout=subprocess.DEVNULL,
    )
    wait_listening(processes, "raw", process, port)
    return Server("raw", process, f"ws://{HOST}:{port}")


class Generators:
    """The load generator processes, commanded one JSON line at a time. Each holds a group of
    clients per server, named after it: the clients of both servers may be connected at once."""

    def __init__(self, processes: Processes, n: int) -> None:
        self.processes = processes
        self.workers = [
            processes.start(
                f"load{i}",
                [sys.executable, str(BENCH / "chat_load.py")],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                bufsize=1,
            )
            for i in range(n)
        ]
        self.sizes: dict[str, list[int]] = {}  # by server: the clients each worker holds

    def command(self, commands: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        """One command to each worker (all sent, then all answers read)."""
        self.send(commands)
        return self.receive()

    def send(self, commands: Sequence[dict[str, Any]]) -> None:
        for worker, command in zip(self.workers, commands, strict=True):
            assert worker.stdin is not None
            worker.stdin.write(json.dumps(command) + "\n")
            worker.stdin.flush()

    def receive(self) -> list[dict[str, Any]]:
        replies = []
        for i, worker in enumerate(self.workers):
            assert worker.stdout is not None
            line = worker.stdout.readline()
            if not line:
                raise RuntimeError(
                    f"load generator {i} ended:\n{self.processes.log_tail(f'load{i}')}"
                )
            reply = json.loads(line)
            if not reply.pop("ok"):
                raise RuntimeError(f"load generator {i}: {reply['error']}")
            replies.append(reply)
        return replies

    def all(self, command: dict[str, Any]) -> list[dict[str, Any]]:
        return self.command([command] * len(self.workers))

    def connect(self, server: Server, clients: Sequence[tuple[int, str | None, int]]) -> float:
        """Open ``clients`` (user index, token, room), dealt out in turn; the seconds taken."""
        n = len(self.workers)
        shares: list[list[tuple[str, str | None, int]]] = [[] for _ in range(n)]
        for k, (user, token, room) in enumerate(clients):
            shares[k % n].append((f"{user:06d}", token, room))
        mode = "trunkline" if server.name == "trunkline" else "raw"
        started = time.perf_counter()
        replies = self.command(
            [
                {
                    "op": "connect",
                    "group": server.name,
                    "url": server.url,
                    "mode": mode,
                    "clients": share,
                    "parallel": 64,
                }
                for share in shares
            ]
        )
        failed = sum(reply["failed"] for reply in replies)
        if failed:
            first = next(reply["error"] for reply in replies if reply["failed"])
            raise RuntimeError(f"{server.name}: {failed} of {len(clients)} failed: {first}")
        sizes = self.sizes.setdefault(server.name, [0] * n)
        for i, share in enumerate(shares):
            sizes[i] += len(share)
        return time.perf_counter() - started

    def close(self) -> None:
        """Close every client, of every server."""
        self.all({"op": "close"})
        self.sizes = {}

    def cpu_s(self) -> float:
        return sum(cpu_s(worker.pid) for worker in self.workers)
