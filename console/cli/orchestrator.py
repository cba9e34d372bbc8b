"""`likeness orchestrator up|down|status`: the project's own Prefect server on 127.0.0.1.

The CLI, the console and the demo use it when `PREFECT_API_URL` is not set. Production sets
`PREFECT_API_URL` to its Prefect server or Prefect Cloud and never runs these. The server's home,
database, lease files, log and state file live under `<var_dir>/prefect/`, so `down` and `status`
work from any process.
"""

from __future__ import annotations

import typer
from rich.table import Table

from console.cli.context import CliError, cli_errors, out
from console.cli.errors import one_line_errors
from flows.runtime.orchestrator import OrchestratorError, OrchestratorUnavailable, local_prefect_server
from flows.runtime.settings import load_settings

app = typer.Typer(help="The local Prefect server (orchestration API on 127.0.0.1).", no_args_is_help=True)

ERRORS = (OrchestratorError, OrchestratorUnavailable, CliError, ValueError, OSError)


@app.command("up")
def up(timeout: float = typer.Option(120.0, help="Seconds to wait for the API to answer.")) -> None:
    """Start the local Prefect server (if not running) and wait until its API answers."""
    with cli_errors(), one_line_errors(*ERRORS):
        server = local_prefect_server(load_settings())
        state = server.start(timeout=timeout)
        out.print(
            f"Prefect server running: pid {state.pid}, PREFECT_API_URL={state.api_url}, home {state.home}"
        )


@app.command("down")
def down() -> None:
    """Stop the local Prefect server (its database stays under var_dir/prefect/home)."""
    with cli_errors(), one_line_errors(*ERRORS):
        server = local_prefect_server(load_settings())
        out.print("Prefect server stopped" if server.stop() else "Prefect server was not running")


@app.command("status")
def status() -> None:
    """Say whether the local Prefect server runs and answers; exit 1 when it does not."""
    with cli_errors(), one_line_errors(*ERRORS):
        current = local_prefect_server(load_settings()).status()
        table = Table("running", "healthy", "pid", "api", "home", "detail")
        table.add_row(
            "yes" if current.running else "no",
            "yes" if current.healthy else "no",
            str(current.pid or "-"),
            current.api_url or "-",
            str(current.home),
            current.reason,
        )
        out.print(table)
        if not current.healthy:
            raise typer.Exit(code=1)
