"""`likeness verify FILE`: is this one of ours, is it intact, and what stands behind it?

Reads the C2PA manifest (trusted against the project's CA or the configured trust anchors) and the
invisible watermark, and looks the publication up: job, consent version, model, reviewer, status.
A re-encoded copy whose manifest is gone is still identified by its watermark.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from console.cli.context import ActorOption, acting_user, governance_command, out, show_time
from console.cli.errors import one_line_errors
from flows.publish.delivery import PUBLISHING_ERRORS, trust_anchors
from flows.publish.verify import verify_file
from governance.access import record_read
from governance.enums import Role
from governance.uow import unit_of_work

# Anyone with a role may check a video; the check is on record (it reads a publication's record).
READERS = tuple(Role)

VERDICTS = {
    "published": "published by likeness",
    "withdrawal_pending": "published by likeness, WITHDRAWN (takedown pending)",
    "taken_down": "published by likeness, WITHDRAWN (TAKEN DOWN)",
    "unknown_watermark": "carries a likeness-style watermark that no publication here claims",
    "not_published": "not published by likeness (no watermark, no manifest of ours)",
}


def register(app: typer.Typer) -> None:
    """Attach the top-level `verify` command to the main app."""

    @app.command("verify")
    def verify(
        file: Annotated[Path, typer.Argument(help="The video to check.")],
        actor: ActorOption,
        as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
    ) -> None:
        """Check a video's C2PA manifest and watermark, and trace it to its publication (an audited read)."""
        with governance_command() as ctx, one_line_errors(*PUBLISHING_ERRORS):
            acting_user(ctx, actor, READERS, "verify")  # refuse before reading the file
            if not file.is_file():
                raise ValueError(f"file not found: {file}")
            report = verify_file(file, sessions=ctx.sessions, trust=trust_anchors(ctx.settings))
            record = report.publication
            with unit_of_work(ctx.sessions) as session:
                record_read(
                    session,
                    actor_email=actor,
                    roles=READERS,
                    what="verify",
                    resource_type="publication",
                    resource_id=record.publication_id if record else None,
                    subject_id=record.subject_id if record else None,
                    job_id=record.job_id if record else None,
                    details={"sha256": report.sha256, "verdict": report.verdict},
                )
            if as_json:
                out.print_json(json.dumps(report.as_dict(), default=str))
                return
            table = Table("", "", show_header=False, title=f"{file.name}: {VERDICTS[report.verdict]}")
            table.add_row(
                "C2PA manifest",
                report.c2pa_state + (f" ({', '.join(report.c2pa_failures)})" if report.c2pa_failures else ""),
            )
            table.add_row(
                "watermark",
                str(report.watermark_payload)
                if report.watermark_payload is not None
                else f"none found ({report.watermark_frames} frames read)",
            )
            table.add_row(
                "sha256", report.sha256 + ("  (identical to the published file)" if report.exact_copy else "")
            )
            if record is not None:
                table.add_row("publication", record.publication_id)
                table.add_row("job", record.job_id)
                table.add_row(
                    "consent",
                    f"{record.consent_id} v{record.consent_version}"
                    + (" (revoked)" if record.consent_revoked else ""),
                )
                model = report.model
                table.add_row("model", f"{model['name']}@{model['version']}" if model else "not registered")
                table.add_row("model sha256", record.model_sha256 or "-")
                table.add_row("reviewer", record.reviewer or "none (approved by policy)")
                table.add_row("published", f"{show_time(record.published_at)} by {record.published_by}")
                if record.taken_down_at is not None:
                    table.add_row(
                        "taken down",
                        f"{show_time(record.taken_down_at)} by {record.taken_down_by}: "
                        f"{record.takedown_reason}",
                    )
                elif report.withdrawal is not None:
                    table.add_row("withdrawn", f"{report.withdrawal} (takedown queued)")
            out.print(table)


# `console/cli/app.py` mounts this as the top-level `likeness verify` (a command, not a group).
app = typer.Typer()
register(app)
command = typer.main.get_command(app)
