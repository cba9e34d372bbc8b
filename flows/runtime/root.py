"""The composition root of a worker process: settings, database sessions, object store, checks, animator.

Each part is built on first use and then kept for the life of the process, so a worker that renders
fifty jobs loads the MCNet checkpoint and the face models once. Nothing here runs at import. Tests and
the demo install a runtime built from their own settings with `use_runtime`; a Prefect worker (or a
process-pool task runner's initializer) builds one from the environment with `get_runtime`.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from flows.runtime.settings import Settings, load_settings

if TYPE_CHECKING:
    from sqlalchemy import Engine
    from sqlalchemy.orm import Session, sessionmaker

    from governance.policy import Policy
    from pipeline.animation import PortraitAnimator
    from pipeline.checks.identity import IdentityVerifier
    from pipeline.storage.objects import ObjectStore

logger = logging.getLogger(__name__)
T = TypeVar("T")


class RuntimeConfigError(ValueError):
    """The settings cannot build a part of the runtime (no checkpoint configured, bad policy path...)."""


class Runtime:
    """Lazily built, process-wide parts that every task needs; thread-safe to build.

    Attributes are built on first access under one lock (a thread-pool task runner may ask for the
    animator from several threads at once), and never rebuilt: a changed setting needs a new process,
    or a new `Runtime` installed with `use_runtime`.
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._lock = threading.RLock()
        self._parts: dict[str, object] = {}

    def _part(self, name: str, build: Callable[[], T]) -> T:
        """Build a part once per runtime, even when several threads ask for it at the same moment."""
        with self._lock:
            if name not in self._parts:
                logger.debug("building runtime part %s", name)
                self._parts[name] = build()
            return self._parts[name]  # type: ignore[return-value]

    @property
    def engine(self) -> Engine:
        """One SQLAlchemy engine (and its connection pool) per process."""
        from governance.database import make_engine

        return self._part("engine", lambda: make_engine(self.settings.database_url))

    @property
    def sessions(self) -> sessionmaker[Session]:
        """Session factory; units of work open `with rt.sessions.begin() as session:`."""
        from governance.database import make_session_factory

        return self._part("sessions", lambda: make_session_factory(self.engine))

    @property
    def store(self) -> ObjectStore:
        """The S3 client, with the project's buckets ensured on first use."""
        return self._part("store", self._build_store)

    def _build_store(self) -> ObjectStore:
        store = make_store(self.settings)
        store.ensure_buckets()
        return store

    @property
    def policy(self) -> Policy:
        """The policy in force: the configured file, or the packaged default."""
        from governance.policy import DEFAULT_POLICY_PATH, load_policy

        return self._part("policy", lambda: load_policy(self.settings.policy_path or DEFAULT_POLICY_PATH))

    @property
    def verifier(self) -> IdentityVerifier:
        """The identity checker, with the policy's calibrated threshold."""
        from pipeline.checks.identity import IdentityVerifier

        return self._part(
            "verifier",
            lambda: IdentityVerifier(threshold=self.policy.check_thresholds().binding_max_distance),
        )

    @property
    def animator(self) -> PortraitAnimator:
        """The MCNet wrapper: the checkpoint is read, hashed and loaded once per process."""
        return self._part("animator", self._build_animator)

    def _build_animator(self) -> PortraitAnimator:
        from pipeline.animation import PortraitAnimator

        return PortraitAnimator(
            self.checkpoint_path,
            expected_sha256=self.settings.mcnet_checkpoint_sha256,
            device=self.settings.device,
            mode=self.settings.inference_mode,
            batch_size=self.settings.inference_batch_size,
        )

    @property
    def checkpoint_path(self) -> Path:
        """The configured checkpoint; refusing to guess one keeps an unconfigured worker from rendering."""
        checkpoint = self.settings.mcnet_checkpoint
        if checkpoint is None:
            raise RuntimeConfigError(
                "no MCNet checkpoint configured: set LIKENESS_MCNET_CHECKPOINT to a checkpoint path"
            )
        return checkpoint

    @property
    def workspace_root(self) -> Path:
        """Where jobs unpack their inputs and write renders before upload (deleted per job)."""
        root = self.settings.var_dir / "work"
        root.mkdir(parents=True, exist_ok=True)
        return root

    def close(self) -> None:
        """Release the connection pool (the store and models hold no OS resources worth closing)."""
        engine = self._parts.get("engine")
        if engine is not None:
            engine.dispose()  # type: ignore[attr-defined]


def make_store(settings: Settings) -> ObjectStore:
    """An ObjectStore from settings, buckets not ensured: the one place settings become an S3 client.

    `Runtime.store` adds the bucket check; commands that only may need storage (a takedown that may be
    due) build one here when they do, so the media stack stays unloaded otherwise.
    """
    from pipeline.storage.objects import ObjectStore

    return ObjectStore(
        endpoint=settings.s3_endpoint,
        access_key=settings.s3_access_key,
        secret_key=settings.s3_secret_key.get_secret_value(),
        secure=settings.s3_secure,
        bucket_prefix=settings.s3_bucket_prefix,
        max_object_bytes=settings.max_object_bytes,
    )


_current: Runtime | None = None
_current_lock = threading.Lock()
# The runtime installed by `use_runtime` for this thread / task context. A context variable, not the
# process global alone: two threads installing runtimes (the console publishing on a background thread
# while a test or a request installs another) must not put each other's back on exit. Prefect's task
# runners copy the context into the threads they start, so tasks see the runtime of the flow that ran them.
_installed: contextvars.ContextVar[Runtime | None] = contextvars.ContextVar("likeness_runtime", default=None)


def get_runtime() -> Runtime:
    """The runtime installed for this context, else the process's, built from the environment on first call."""
    installed = _installed.get()
    if installed is not None:
        return installed
    global _current
    with _current_lock:
        if _current is None:
            _current = Runtime(load_settings())
        return _current


def configure_runtime(settings: Settings) -> Runtime:
    """Install a runtime built from `settings` for this process (a process pool's initializer calls this)."""
    global _current
    with _current_lock:
        if _current is not None:
            _current.close()
        _current = Runtime(settings)
        return _current


@contextlib.contextmanager
def use_runtime(runtime: Runtime) -> Iterator[Runtime]:
    """Install `runtime` for the duration of a block (this context and the tasks it starts), then put the
    previous one back. Threads started without a copy of the context find it as the process's runtime
    while no other is set there."""
    global _current
    token = _installed.set(runtime)
    with _current_lock:
        adopted = _current is None
        if adopted:
            _current = runtime
    try:
        yield runtime
    finally:
        _installed.reset(token)
        with _current_lock:
            if adopted and _current is runtime:
                _current = None
