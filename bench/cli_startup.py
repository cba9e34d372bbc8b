"""Benchmark of the CLI's start-up: wall time of `likeness --help`, a governance command's imports, and a
heavy group's imports, each in a fresh interpreter (median of N runs). JSON goes to bench/results/.

    python -m bench.cli_startup --runs 5
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from rich.console import Console
from rich.table import Table

CASES = {
    "likeness --help": "from console.cli.app import main; main(['--help'])",
    "import consent + audit commands": "import console.cli.consent, console.cli.audit",
    "import review + batch commands (eager cost)": "import console.cli.review, console.cli.batch",
}


def median_seconds(code: str, runs: int) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, timeout=300)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    results = {name: median_seconds(code, args.runs) for name, code in CASES.items()}
    baseline = results["import review + batch commands (eager cost)"]
    table = Table("case", "median s", "vs eager import")
    for name, seconds in results.items():
        table.add_row(name, f"{seconds:.3f}", f"{seconds / baseline:.2f}x")
    Console().print(table)
    folder = Path(__file__).resolve().parent / "results"
    folder.mkdir(exist_ok=True)
    (folder / "cli_startup.json").write_text(
        json.dumps(
            {"at": datetime.now(UTC).isoformat(), "runs": args.runs, "median_seconds": results}, indent=2
        )
    )


if __name__ == "__main__":
    main()
