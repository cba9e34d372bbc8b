"""`likeness check OUTPUT --portrait IMAGE --driving VIDEO`: every automated check on any video.

Runs what the render flow runs on a job's render (identity fidelity, artifacts, motion, driver leak;
`flows.render.checks`) and prints each score with its verdict and bound, and the policy's outcome.
Needs no database, no object store and no model: it judges a file. The exit status is 0 whenever the
checks ran (the outcome is in the output), 1 for bad input, in one line.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from console.cli.context import out
from console.cli.errors import one_line_errors


def register(app: typer.Typer) -> None:
    """Attach the top-level `check` command to the main app."""

    @app.command("check")
    def check(
        output: Annotated[Path, typer.Argument(help="The video to judge.")],
        portrait: Annotated[Path, typer.Option("--portrait", help="The portrait it should show.")],
        driving: Annotated[Path, typer.Option("--driving", help="The video whose motion it should follow.")],
        reference: Annotated[
            Path | None,
            typer.Option(
                "--reference", help="The subject's likeness reference photo (measures the binding)."
            ),
        ] = None,
        policy: Annotated[
            Path | None, typer.Option("--policy", help="Policy file (default: the packaged one).")
        ] = None,
        as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
    ) -> None:
        """Run the identity, artifact, motion and driver-leak checks on a video and show the policy's verdicts."""
        from flows.render.checks import CHECK_ERRORS, check_video
        from flows.runtime.settings import load_settings

        with one_line_errors(*CHECK_ERRORS):
            settings = load_settings()
            result = check_video(
                output,
                portrait=portrait,
                driving=driving,
                reference=reference,
                policy_path=policy or settings.policy_path,
                every=settings.fidelity_every,
                detect_every=settings.driving_detect_every,
                max_image_pixels=settings.max_image_pixels,
            )
        if as_json:
            out.print_json(json.dumps(result.as_dict()))
            return
        table = Table("check", "score", "verdict", "bound", title=f"{output.name} ({result.mode})")
        for row in result.rows():
            score = row["score"]
            shown = "-" if score is None else str(score) if isinstance(score, bool) else f"{score:.4f}"
            table.add_row(row["name"], shown, row["verdict"], row["bound"])
        out.print(table)
        out.print(f"outcome: {result.scored.decision.outcome.value} (policy {result.policy_version})")
        for reason in result.scored.decision.reasons:
            out.print(f"  - {reason}", highlight=False)


# `console/cli/app.py` mounts this as the top-level `likeness check` (a command, not a group).
app = typer.Typer()
register(app)
command = typer.main.get_command(app)
