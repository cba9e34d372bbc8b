"""A local server process of the project's own, on one machine: state file, start, readiness, stop, log.

Two servers are run this way: the SeaweedFS object store (`pipeline.storage.local_s3`) and the Prefect
API (`flows.runtime.orchestrator`). Both bind to loopback, keep their state file, log and data under
one folder of `var_dir`, are found again from any process through that state file and are stopped by
pid; only the command, the readiness probe and the process check differ. Those generic parts live
here, once.

Why here: a process manager is not a media stage, but `pipeline` is the lowest package that both
`pipeline.storage` and `flows` may import (the import rules forbid `pipeline` to import `flows`), and
this module needs the standard library only.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any, ClassVar, Generic, Protocol, TypeVar

HOST = "127.0.0.1"
STATE_FILE = "server.json"
RUNNING = "running"
NOT_STARTED = "not started (no state file)"
TIMEOUT_GRACE_S = 10.0  # a server that never became ready is stopped with this grace


class _HasPid(Protocol):
    """A state dataclass (frozen: the attribute is read-only) that records the server's pid."""

    __dataclass_fields__: ClassVar[dict[str, Any]]

    @property
    def pid(self) -> int: ...


StateT = TypeVar("StateT", bound=_HasPid)


def port_free(port: int) -> bool:
    """Whether `port` can be bound on loopback now (a later bind may still lose a race)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((HOST, port))
        except OSError:
            return False
    return True


def free_port() -> int:
    """A free loopback port chosen by the kernel (for tests and `--port 0`)."""
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def process_argv(pid: int) -> list[bytes]:
    """The command line of `pid` from /proc; empty when there is no such process (or it is unreadable)."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return []


def owns_listening_port(pid: int, port: int) -> bool:
    """Whether `pid` holds the listening socket on `port` (matched through /proc socket inodes)."""
    inodes: set[str] = set()
    try:
        for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
            fields = line.split()
            local, state, inode = fields[1], fields[3], fields[9]
            if state == "0A" and int(local.rsplit(":", 1)[1], 16) == port:
                inodes.add(f"socket:[{inode}]")
        fds = list(Path(f"/proc/{pid}/fd").iterdir())
    except OSError:
        return False
    for fd in fds:
        with contextlib.suppress(OSError):
            if os.readlink(fd) in inodes:
                return True
    return False


def alive(pid: int) -> bool:
    """True while `pid` exists and is not a zombie; reaps it when it is our own child."""
    with contextlib.suppress(ChildProcessError):
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done == pid:
            return False
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    if stat.rsplit(")", 1)[-1].split()[0] == "Z":
        # The leader is a zombie. Its other threads (a Go program's, say) may still be exiting, and until
        # they are gone a WNOHANG wait returns nothing. If it is our child, wait for it (blocking, but it
        # is already exiting) so that it is truly gone when we report it stopped.
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, 0)
        return False
    return True


def terminate(pid: int, *, grace: float, group: bool) -> None:
    """SIGTERM (SIGKILL when `grace` is 0), SIGKILL after `grace` s, and wait until the process is gone.

    `group` signals the whole process group (a server started with `start_new_session` leads one): the
    Prefect server runs uvicorn in children that must go with it.
    """
    send = os.killpg if group else os.kill
    with contextlib.suppress(ProcessLookupError, PermissionError):
        send(pid, signal.SIGTERM if grace > 0 else signal.SIGKILL)
    deadline = time.monotonic() + grace
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    if group or alive(pid):  # a lone pid is not signalled once gone: it may already name another process
        with contextlib.suppress(ProcessLookupError, PermissionError):
            send(pid, signal.SIGKILL)
    while alive(pid):
        time.sleep(0.05)


class LocalService(Generic[StateT]):
    """One server process whose state file (`server.json`) and log live under `root`.

    Subclasses say which process is theirs (`is_ours`), how to signal it (`KILL_GROUP`), the log's name
    and telling words, and the state dataclass; they build the command and the readiness probe themselves.
    """

    STATE_TYPE: ClassVar[type[Any]]
    LOG_FILE: ClassVar[str]
    KILL_GROUP: ClassVar[bool] = False
    LOG_KEYWORDS: ClassVar[tuple[str, ...]] = ()  # a log line holding one of these says more than the last
    STOP_GRACE_S: ClassVar[float] = 30.0

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    @property
    def state_path(self) -> Path:
        return self.root / STATE_FILE

    @property
    def log_path(self) -> Path:
        return self.root / self.LOG_FILE

    def is_ours(self, pid: int) -> bool:
        """Whether `pid` is this kind of server (not merely a live process that reused a recorded pid)."""
        raise NotImplementedError

    def read_state(self) -> StateT | None:
        """The recorded state, or None when there is none or it is unreadable."""
        try:
            state: StateT = self.STATE_TYPE(**json.loads(self.state_path.read_text(encoding="utf-8")))
        except (OSError, ValueError, TypeError):
            return None
        return state

    def recorded(self) -> tuple[StateT | None, str]:
        """The recorded state and `RUNNING`, or why it does not run: a stale state file is reported, not trusted."""
        state = self.read_state()
        if state is None:
            return None, NOT_STARTED
        if not self.is_ours(state.pid):
            return state, f"stale state: process {state.pid} is not running"
        return state, RUNNING

    def running_state(self) -> StateT | None:
        """The recorded state when its process runs, else None."""
        state, reason = self.recorded()
        return state if reason == RUNNING else None

    def write_state(self, state: StateT) -> None:
        """Write the state file atomically (a reader never sees half of it)."""
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = self.state_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(state)), encoding="utf-8")
        tmp.replace(self.state_path)

    def remove_state(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.state_path.unlink()

    def spawn(self, argv: Sequence[str], *, env: Mapping[str, str] | None = None) -> subprocess.Popen[bytes]:
        """Start the server in a session of its own (a Ctrl-C to the caller does not reach it), output to the log."""
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            return subprocess.Popen(
                list(argv),
                env=None if env is None else dict(env),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=self.root,
                start_new_session=True,
            )

    def wait_ready(
        self,
        process: subprocess.Popen[bytes],
        ready: Callable[[], bool],
        *,
        timeout: float,
        interval: float,
        exited: Callable[[int, str], Exception],
        timed_out: Callable[[], Exception],
    ) -> None:
        """Poll `ready()` until it is true; fail closed when the process exits or `timeout` passes.

        Raises:
            exited(code, log tail): the process ended first (its state file is removed).
            timed_out(): it runs but never became ready (it is stopped and its state file removed).
            whatever `ready()` raises (the process is left to the caller).
        """
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            code = process.poll()
            if code is not None:
                self.remove_state()
                raise exited(code, self.log_tail())
            if ready():
                return
            time.sleep(interval)
        self.terminate(process.pid, grace=TIMEOUT_GRACE_S)
        self.remove_state()
        raise timed_out()

    def stop(self, *, grace: float | None = None) -> bool:
        """Stop the recorded server (SIGTERM, SIGKILL after `grace` s). Returns whether one ran."""
        state = self.read_state()
        if state is None:
            return False
        running = self.is_ours(state.pid)
        if running:
            self.terminate(state.pid, grace=self.STOP_GRACE_S if grace is None else grace)
        self.remove_state()
        return running

    def kill(self) -> None:
        """Kill the server at once (SIGKILL), as a crash would: for tests of an unreachable server."""
        self.stop(grace=0.0)

    def terminate(self, pid: int, *, grace: float) -> None:
        terminate(pid, grace=grace, group=self.KILL_GROUP)

    def log_tail(self) -> str:
        """The log's last line holding a `LOG_KEYWORDS` word, else its last line; at most 200 characters."""
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return "no log"
        lines = [line.strip() for line in text.splitlines() if line.strip()]
        picked = [line for line in lines if any(word in line for word in self.LOG_KEYWORDS)]
        return (picked or lines or ["no log output"])[-1][:200]
