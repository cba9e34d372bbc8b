"""`make demo` on a machine whose cores are kept busy: it finishes, prints no traceback, leaves nothing.

Two other processes burn a core each (`while True: pass`) for the whole run — the load under which the
demo once died with "Timed out while attempting to connect to ephemeral Prefect API server" and a
60-line traceback. The demo is the real `likeness demo run` (what the Makefile's `demo` target runs)
in a subprocess with no Prefect API configured, so it starts and stops its own Prefect and S3 servers.
Afterwards no process started for the demo may be alive: neither the servers whose pids it recorded
nor any other process that names the demo's folder (command line, or PREFECT_HOME in its environment).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import psutil
import pytest

from tests.flows.deployed import pid_alive, wait_dead

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1500)]
LIKENESS = str(Path(sys.executable).parent / "likeness")
BURN = "while True: pass"


def _processes_naming(folder: Path) -> list[int]:
    """Pids of live processes whose command line or environment mentions `folder`."""
    needle = str(folder)
    found = []
    for process in psutil.process_iter(["pid", "cmdline"]):
        try:
            if process.pid == os.getpid() or not pid_alive(process.pid):
                continue
            if any(needle in part for part in process.info["cmdline"] or []) or any(
                needle in value for value in process.environ().values()
            ):
                found.append(process.pid)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    return found


def test_demo_finishes_with_both_cores_busy(tmp_path: Path) -> None:
    root = tmp_path / "demo"
    env = {key: value for key, value in os.environ.items() if not key.startswith("PREFECT_API")}
    env.update({"PYTHONUNBUFFERED": "1", "COLUMNS": "250", "LIKENESS_VAR_DIR": str(tmp_path / "var")})
    burners = [
        subprocess.Popen([sys.executable, "-c", BURN], start_new_session=True)
        for _ in range(2)  # the machine's two cores
    ]
    servers: dict[str, int] = {}
    try:
        demo = subprocess.Popen(
            # A shorter driving stretch than `make demo`'s: the same servers, flows and load, sooner.
            [LIKENESS, "demo", "run", "--root", str(root), "--frames", "25"],
            env=env,
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        output: list[str] = []

        def read() -> None:  # collect output; note the servers' pids while their state files exist
            assert demo.stdout is not None
            for line in demo.stdout:
                output.append(line)
                for name in ("prefect", "s3"):
                    state = root / name / "server.json"
                    if name not in servers and state.exists():
                        try:
                            servers[name] = json.loads(state.read_text(encoding="utf-8"))["pid"]
                        except (OSError, ValueError, KeyError):
                            pass

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        try:
            code = demo.wait(timeout=1400)
        finally:
            if demo.poll() is None:
                demo.kill()
                demo.wait()
        reader.join(timeout=30)
    finally:
        for burner in burners:
            burner.kill()
            burner.wait()
    text = "".join(output)
    assert code == 0, text[-4000:]
    assert "Traceback" not in text, text[-4000:]
    assert "auditchainintact" in "".join(text.split()), text[-2000:]
    assert set(servers) == {"prefect", "s3"}, (servers, text[-2000:])  # both were started by the demo ...
    wait_dead(list(servers.values()))  # ... and both are gone
    assert not (root / "prefect" / "server.json").exists() and not (root / "s3" / "server.json").exists()
    assert _processes_naming(root) == []
