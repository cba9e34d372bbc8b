"""`likeness storage up|down|status`: the project's own S3 server (SeaweedFS) on 127.0.0.1.

Production points `LIKENESS_S3_ENDPOINT` at MinIO or any S3 and never runs these; they exist so one
machine (and `make demo`) has a real object store. The server's state file lives under
`<var_dir>/s3/`, so `down` and `status` work from any process.
"""

from __future__ import annotations

import typer
from rich.table import Table

from console.cli.context import CliError, cli_errors, out
from console.cli.errors import one_line_errors
from flows.publish.delivery import PUBLISHING_ERRORS, ensure_buckets, local_s3_server
from flows.runtime.settings import load_settings

app = typer.Typer(help="The local S3 server (SeaweedFS on 127.0.0.1).", no_args_is_help=True)


@app.command("up")
def up(timeout: float = typer.Option(60.0, help="Seconds to wait for the server to answer.")) -> None:
    """Start the local S3 server (if not running) and create the project's buckets."""
    with cli_errors(), one_line_errors(*PUBLISHING_ERRORS, CliError):
        settings = load_settings()
        server = local_s3_server(settings)
        state = server.start(timeout=timeout)
        buckets = ensure_buckets(settings)
        out.print(f"S3 server running: pid {state.pid}, endpoint {state.endpoint}, data {state.data_dir}")
        for info in buckets.values():
            extras = [
                name for name, on in (("versioned", info.versioned), ("object lock", info.object_lock)) if on
            ]
            out.print(f"  bucket {info.name}" + (f" ({', '.join(extras)})" if extras else ""))


@app.command("down")
def down() -> None:
    """Stop the local S3 server (data stays under var_dir/s3/data)."""
    with cli_errors(), one_line_errors(*PUBLISHING_ERRORS):
        server = local_s3_server(load_settings())
        out.print("S3 server stopped" if server.stop() else "S3 server was not running")


@app.command("status")
def status() -> None:
    """Say whether the local S3 server runs; exit 1 when it does not."""
    with cli_errors(), one_line_errors(*PUBLISHING_ERRORS):
        current = local_s3_server(load_settings()).status()
        table = Table("running", "pid", "endpoint", "data", "detail")
        table.add_row(
            "yes" if current.running else "no",
            str(current.pid or "-"),
            current.endpoint or "-",
            str(current.data_dir),
            current.reason,
        )
        out.print(table)
        if not current.running:
            raise typer.Exit(code=1)
