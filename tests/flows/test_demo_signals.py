"""The demo starts its own Prefect server when none is configured, and stops it (and its S3 server) when it
is told to stop with SIGTERM: no server process is left behind and no traceback is printed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from flows.runtime.orchestrator import _is_prefect_server
from tests.flows.deployed import pid_alive as _alive

ROOT = Path(__file__).resolve().parents[2]
LIKENESS = str(Path(sys.executable).parent / "likeness")

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]


def test_sigterm_to_the_demo_stops_the_servers_it_started(tmp_path: Path) -> None:
    root = tmp_path / "demo"
    env = {key: value for key, value in os.environ.items() if not key.startswith("PREFECT_API")}
    env.update({"PYTHONUNBUFFERED": "1", "COLUMNS": "250", "LIKENESS_VAR_DIR": str(tmp_path / "var")})
    demo = subprocess.Popen(
        [LIKENESS, "demo", "run", "--root", str(root)],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    output: list[str] = []
    try:
        assert demo.stdout is not None
        for line in demo.stdout:
            output.append(line)
            if "using the Prefect API" in line:
                break
        assert "the demo's own local server" in "".join(output), "".join(output)
        prefect = json.loads((root / "prefect" / "server.json").read_text(encoding="utf-8"))["pid"]
        weed = json.loads((root / "s3" / "server.json").read_text(encoding="utf-8"))["pid"]
        assert _is_prefect_server(prefect) and _alive(weed)

        demo.send_signal(signal.SIGTERM)
        rest, _ = demo.communicate(timeout=180)
        output.append(rest)
    finally:
        if demo.poll() is None:
            demo.kill()
            demo.wait()
    text = "".join(output)
    assert demo.returncode != 0
    assert "Traceback" not in text, text[-3000:]
    deadline = time.monotonic() + 30
    while (_alive(prefect) or _alive(weed)) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not _alive(prefect), "the demo left its Prefect server running"
    assert not _alive(weed), "the demo left its S3 server running"
    assert not (root / "prefect" / "server.json").exists()
