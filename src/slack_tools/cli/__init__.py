"""The ``slack-tools`` command.

The CLI acts as the local administrator: it reaches the database directly and
attributes writes to ``--author`` or the operating-system user. Each command still
checks the permission ``cli/permissions.py`` gives it. Errors print one line each —
``file:line:col: key.path: message`` for configuration — and exit 1.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Annotated

import typer

from slack_tools import __version__
from slack_tools.cli.audit import audit_app
from slack_tools.cli.common import close_runtimes, err, open_runtime, out
from slack_tools.cli.config_commands import config_app
from slack_tools.cli.delivery import deadletters_app, demo, routes_app
from slack_tools.cli.gdpr import gdpr_app
from slack_tools.cli.i18n import i18n_app
from slack_tools.cli.operations import db_app, keys_app
from slack_tools.cli.permissions import guard_commands
from slack_tools.cli.tenants import tenant_app
from slack_tools.cli.tokens import token_app
from slack_tools.configs import ConfigValidationError
from slack_tools.configs.security.actors import acting_as, current_actor, local_admin
from slack_tools.errors import SlackToolsError
from slack_tools.service.logging import configure_logging

app = typer.Typer(
    name="slack-tools",
    help="Multi-tenant, localized Slack alerting: service and configuration toolkit.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.add_typer(config_app, name="config")
app.add_typer(tenant_app, name="tenant")
app.add_typer(deadletters_app, name="deadletters")
app.add_typer(routes_app, name="routes")
app.add_typer(keys_app, name="keys")
app.add_typer(db_app, name="db")
app.add_typer(i18n_app, name="i18n")
app.add_typer(audit_app, name="audit")
app.add_typer(gdpr_app, name="gdpr")
app.add_typer(token_app, name="token")
app.command()(demo)

# --- serve --------------------------------------------------------------------------------


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Override server.host.")] = None,
    port: Annotated[int | None, typer.Option(help="Override server.port.")] = None,
) -> None:
    """Run the service: load and validate the configuration, open the database, serve HTTP."""
    from slack_tools.service.runner import serve as run  # noqa: PLC0415 - heavy imports

    run(open_runtime(), host=host, port=port)


@app.command()
def version() -> None:
    """Print the version."""
    out.print(__version__)


@app.callback()
def root(
    ctx: typer.Context,
    author: Annotated[
        str | None,
        typer.Option(
            "--as",
            help="Who is acting, for permissions and the audit trail (default: the OS user).",
        ),
    ] = None,
) -> None:
    """Multi-tenant, localized Slack alerting: service and configuration toolkit."""
    # The local administrator, unless the caller (a program driving the CLI in-process)
    # already said who is acting; the commands check their permission against it.
    actor = current_actor() if author is None else None
    ctx.with_resource(acting_as(actor or local_admin(author)))


# Registered last: every command above, and those the groups hold, check their permission.
guard_commands(app)


# --- entry point --------------------------------------------------------------------------


def run(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code instead of exiting."""
    # Commands talk to people: only warnings and errors are logged, to stderr
    # (``serve`` sets up its own logging from the configuration).
    configure_logging("WARNING", "console")
    try:
        return _run(argv)
    finally:
        close_runtimes()


def _run(argv: Sequence[str] | None) -> int:
    command = typer.main.get_command(app)
    try:
        # Without standalone mode click returns the code of typer.Exit instead of exiting.
        result = command.main(
            args=list(argv) if argv is not None else None,
            prog_name="slack-tools",
            standalone_mode=False,
        )
    except typer.Exit as exc:
        return int(exc.exit_code)
    except typer.Abort:
        err.print("aborted")
        return 1
    except typer.TyperException as exc:  # usage errors, shown the way click shows them
        exc.show()  # type: ignore[attr-defined]
        return int(getattr(exc, "exit_code", 2))
    except ConfigValidationError as exc:
        for issue in exc.issues:
            err.print(issue.format(), markup=False)
        return 1
    except SlackToolsError as exc:
        err.print(f"error: {exc}", markup=False)
        return 1
    return result if isinstance(result, int) else 0


def main() -> None:
    sys.exit(run())
