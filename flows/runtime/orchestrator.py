"""The Prefect API: the project's own local Prefect server for one machine, and the check every entry uses.

Prefect otherwise starts a temporary ("ephemeral") API inside any process that runs a flow without
`PREFECT_API_URL`: one per CLI command or console request, each racing the others for its SQLite file,
timing out on a loaded machine, losing its concurrency leases when it exits and left running when its
parent is killed. This project never does that (`flows.keep_prefect_offline` switches ephemeral mode
off). Instead:

* On one machine, `likeness orchestrator up|down|status` runs one `prefect server start` of the
  project's own, like `likeness storage` runs SeaweedFS: bound to 127.0.0.1, its home, database, lease
  files, log and state file under `<var_dir>/prefect/`, telemetry off, concurrency leases on disk (so a
  restarted server still frees the slots of runs that died).
* In production `PREFECT_API_URL` points at the operator's Prefect server or Prefect Cloud and nothing
  here starts anything.

`require_api` is what the CLI, the console and the demo call before running a flow: it uses
`PREFECT_API_URL` when set, else the local server recorded under `var_dir`, checks the API's health and
fails with one line naming `PREFECT_API_URL` when there is none or it does not answer.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from flows.runtime.root import RuntimeConfigError
from flows.runtime.settings import Settings
from pipeline.local_service import HOST, RUNNING, LocalService, free_port, process_argv

logger = logging.getLogger(__name__)

PREFECT_DIR = "prefect"
FILESYSTEM_LEASES = "prefect.server.concurrency.lease_storage.filesystem"
HEALTH_TIMEOUT_S = 5.0


class OrchestratorUnavailable(RuntimeConfigError):
    """No Prefect API is configured, or the configured one does not answer (one line, names the variable)."""


class OrchestratorError(RuntimeConfigError):
    """The local Prefect server could not be started or stopped (it exited on start, the port is taken)."""


ORCHESTRATOR_ERRORS: tuple[type[Exception], ...] = (OrchestratorUnavailable, OrchestratorError)


@dataclass(frozen=True)
class OrchestratorState:
    """What another process needs to find the running local server again."""

    pid: int
    api_url: str
    port: int
    home: str
    started_at: float


@dataclass(frozen=True)
class OrchestratorStatus:
    """`running`: the recorded process is alive and is a Prefect server; `healthy`: its API answered."""

    running: bool
    healthy: bool
    pid: int | None
    api_url: str | None
    home: Path
    reason: str


def prefect_executable() -> Path:
    """The `prefect` script installed beside this interpreter (the one whose packages run the flows)."""
    candidate = Path(sys.executable).parent / "prefect"
    if not candidate.is_file():
        raise OrchestratorError(f"the `prefect` command is not installed beside {sys.executable}")
    return candidate


def api_healthy(api_url: str, *, timeout: float = HEALTH_TIMEOUT_S) -> str | None:
    """None when `GET <api_url>/health` answers 200; otherwise the one-line reason it did not."""
    url = f"{api_url.rstrip('/')}/health"
    if not url.startswith(("http://", "https://")):
        return f"not an http(s) URL: {api_url!r}"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 - scheme checked above
            status = response.status
    except urllib.error.HTTPError as exc:
        return f"HTTP {exc.code}"
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        return f"{type(reason).__name__}: {str(reason).splitlines()[0] if str(reason) else 'no answer'}"
    return None if status == 200 else f"HTTP {status}"


def _is_prefect_server(pid: int) -> bool:
    argv = process_argv(pid)
    return any(part.endswith(b"prefect") for part in argv) and b"server" in argv and b"start" in argv


class LocalPrefectServer(LocalService[OrchestratorState]):
    """One `prefect server start` whose home, database, leases, log and state file live under `root`.

    Args:
        root: folder owned by this server (created): `home/` (PREFECT_HOME, SQLite database, lease
            files), `server.log`, `server.json`.
        port: the loopback port (0 picks a free one at start).
        database_url: Prefect's own database (`postgresql+asyncpg://...`); None: SQLite under `home/`.
        extra_env: more `PREFECT_*` settings for the server process (tests shorten service loops).
    """

    STATE_TYPE = OrchestratorState
    LOG_FILE = "server.log"
    KILL_GROUP = True  # the server runs uvicorn in children that must stop with it
    STOP_GRACE_S = 30.0

    def __init__(
        self,
        root: Path,
        *,
        port: int = 4200,
        database_url: str | None = None,
        extra_env: dict[str, str] | None = None,
    ) -> None:
        if not 0 <= port <= 65535:
            raise ValueError(f"Prefect server port must be 0-65535, got {port}")
        super().__init__(root)
        self.home = self.root / "home"
        self.port = port
        self.database_url = database_url
        self.extra_env = dict(extra_env or {})

    def is_ours(self, pid: int) -> bool:
        return _is_prefect_server(pid)

    def status(self, *, check_health: bool = True) -> OrchestratorStatus:
        """Whether the recorded server runs (and answers); a stale state file is reported, not trusted."""
        state, reason = self.recorded()
        if state is None or reason != RUNNING:
            return OrchestratorStatus(
                False,
                False,
                state.pid if state else None,
                state.api_url if state else None,
                self.home,
                reason,
            )
        problem = api_healthy(state.api_url) if check_health else None
        return OrchestratorStatus(
            True,
            problem is None,
            state.pid,
            state.api_url,
            self.home,
            "running" if problem is None else f"running, API not answering: {problem}",
        )

    def environment(self, port: int) -> dict[str, str]:
        """The server process's environment: loopback, telemetry off, leases on disk, home under `root`."""
        env = {key: value for key, value in os.environ.items() if not key.startswith("PREFECT_")}
        env.update(
            {
                "PREFECT_HOME": str(self.home),
                "PREFECT_SERVER_API_HOST": HOST,
                "PREFECT_SERVER_API_PORT": str(port),
                "PREFECT_API_URL": f"http://{HOST}:{port}/api",
                "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
                "DO_NOT_TRACK": "1",
                "PREFECT_SERVER_CONCURRENCY_LEASE_STORAGE": FILESYSTEM_LEASES,
                "PREFECT_LOGGING_LEVEL": "WARNING",
            }
        )
        if self.database_url:
            env["PREFECT_SERVER_DATABASE_CONNECTION_URL"] = self.database_url
        env.update(self.extra_env)
        return env

    def start(self, *, timeout: float = 120.0) -> OrchestratorState:
        """Start the server (or return the running one) and wait until its API answers.

        Raises:
            OrchestratorError: the process exited on start (its log's last line says why).
            OrchestratorUnavailable: it runs but did not answer within `timeout` (then it is stopped).
        """
        current = self.running_state()
        if current is not None:
            return current
        self.home.mkdir(parents=True, exist_ok=True)
        port = self.port or free_port()
        api_url = f"http://{HOST}:{port}/api"
        if api_healthy(api_url, timeout=1.0) is None:
            raise OrchestratorError(
                f"port {port} already serves a Prefect API that is not this project's "
                f"(state in {self.root}); stop it or choose LIKENESS_PREFECT_PORT"
            )
        process = self.spawn(
            [str(prefect_executable()), "server", "start", "--host", HOST, "--port", str(port)],
            env=self.environment(port),
        )
        state = OrchestratorState(
            pid=process.pid, api_url=api_url, port=port, home=str(self.home), started_at=time.time()
        )
        self.write_state(state)
        self.wait_ready(
            process,
            lambda: api_healthy(api_url, timeout=2.0) is None,
            timeout=timeout,
            interval=0.5,
            exited=lambda code, tail: OrchestratorError(f"prefect server exited with code {code}: {tail}"),
            timed_out=lambda: OrchestratorUnavailable(
                f"local Prefect server at {api_url} did not answer within {timeout:.0f} s"
            ),
        )
        logger.info("local Prefect server pid %s ready at %s", process.pid, api_url)
        return state


def local_prefect_server(
    settings: Settings, *, extra_env: dict[str, str] | None = None
) -> LocalPrefectServer:
    """The project's own Prefect server for this `var_dir` (port `LIKENESS_PREFECT_PORT`)."""
    return LocalPrefectServer(
        settings.var_dir / PREFECT_DIR,
        port=settings.prefect_port,
        database_url=settings.prefect_database_url,
        extra_env=extra_env,
    )


def configured_api_url() -> str | None:
    """`PREFECT_API_URL` as Prefect sees it in this process (environment, profile or a test's settings)."""
    from prefect.settings import PREFECT_API_URL

    value = PREFECT_API_URL.value()
    return str(value) if value else None


def point_prefect_at(api_url: str) -> None:
    """Make this process's Prefect client use `api_url` (environment and Prefect's settings context)."""
    from prefect.context import refresh_global_settings_context

    os.environ["PREFECT_API_URL"] = api_url
    refresh_global_settings_context()


FLUSH_TIMEOUT_S = 15.0


def flush_prefect_queues(timeout: float = FLUSH_TIMEOUT_S) -> None:
    """Deliver what this process's Prefect client still has queued (events, logs) while the server is up.

    Called just before this process stops a server it started. Prefect sends events and logs from
    background workers; anything still queued when the server goes away is retried against the dead
    port for as long as the process lives (seconds per event, a warning and an error each time; a
    benchmark that ran a busy batch once logged that for minutes after finishing). Draining stops those
    workers; a later flow run starts fresh ones for whichever server it talks to.
    """
    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker

    for service in (EventsWorker, APILogWorker):
        try:
            service.drain_all(timeout=timeout, at_exit=False)
        except Exception as exc:  # never let flushing mask the stop it precedes
            logger.debug("draining %s failed: %s", service.__name__, exc)


@contextlib.contextmanager
def serving(server: LocalPrefectServer, *, timeout: float = 120.0) -> Iterator[OrchestratorState]:
    """A server of the block's own (a test process's, a benchmark's): started, this process's Prefect
    client pointed at it, then stopped and the previous `PREFECT_API_URL` restored, whatever happens."""
    from prefect.context import refresh_global_settings_context

    previous = os.environ.get("PREFECT_API_URL")
    try:
        state = server.start(timeout=timeout)
        point_prefect_at(state.api_url)
        yield state
    finally:
        flush_prefect_queues()
        server.stop()
        if previous is None:
            os.environ.pop("PREFECT_API_URL", None)
        else:
            os.environ["PREFECT_API_URL"] = previous
        refresh_global_settings_context()


def require_api(settings: Settings) -> str:
    """The Prefect API this process will use, checked: `PREFECT_API_URL`, else the local server.

    Raises:
        OrchestratorUnavailable: none is configured, or it does not answer; one line naming PREFECT_API_URL.
    """
    api_url = configured_api_url()
    if api_url is None:
        state = local_prefect_server(settings).running_state()
        if state is None:
            raise OrchestratorUnavailable(
                "no Prefect API: PREFECT_API_URL is not set and the local server is not running "
                "(start it with `likeness orchestrator up`)"
            )
        api_url = state.api_url
        point_prefect_at(api_url)
    problem = api_healthy(api_url)
    if problem is not None:
        raise OrchestratorUnavailable(
            f"the Prefect API at PREFECT_API_URL={api_url} is unreachable ({problem})"
        )
    return api_url


@contextlib.contextmanager
def sigterm_as_exit() -> Iterator[None]:
    """Within the block, SIGTERM unwinds like Ctrl-C (SystemExit 143), so `finally` stops what was started.

    Python's default SIGTERM ends the process at once, leaving child servers running; only the main
    thread can take signals, so elsewhere this does nothing.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def _exit(signum: int, frame: object) -> None:
        raise SystemExit(128 + signum)

    previous = signal.signal(signal.SIGTERM, _exit)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@dataclass
class ManagedApi:
    """A Prefect API made available for a block: `started` says whether this block started the server."""

    api_url: str
    server: LocalPrefectServer | None
    started: bool


@contextlib.contextmanager
def api_for(settings: Settings, *, start_local: bool = True, timeout: float = 120.0) -> Iterator[ManagedApi]:
    """A Prefect API for a block (the console, the demo): the configured one, else the local server,
    started if `start_local` and not running, and stopped again at the end only if started here."""
    if configured_api_url() is not None or not start_local:
        yield ManagedApi(require_api(settings), None, False)
        return
    server = local_prefect_server(settings)
    running = server.status(check_health=False).running
    try:  # from before the start: a signal while it comes up must still stop it
        state = server.start(timeout=timeout)
        point_prefect_at(state.api_url)
        yield ManagedApi(require_api(settings), server, not running)
    finally:
        if not running:
            flush_prefect_queues()
            server.stop()
            os.environ.pop("PREFECT_API_URL", None)
            from prefect.context import refresh_global_settings_context

            refresh_global_settings_context()
