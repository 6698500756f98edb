"""``callcenter``: the operator's command line. Each domain contributes a sub-command group.

Setup and environment failures (database down or not migrated, Redis down, a bad ``CALLCENTER_…``
setting) are turned into one short message and a distinct exit code in one place, around the whole
invocation: see :class:`GuardedTyper` and :mod:`callcenter.cli.errors`. ``callcenter -v …`` keeps
the traceback.
"""

from __future__ import annotations

import sys
from typing import Any

import typer
from rich.console import Console
from rich.markup import escape

from callcenter.analysis import cli as analysis_cli
from callcenter.asr import cli as asr_cli
from callcenter.campaign import cli as campaign_cli
from callcenter.cli.demo import demo
from callcenter.cli.errors import explain, render
from callcenter.core.db import upgrade_database
from callcenter.core.logging import configure_logging
from callcenter.core.settings import get_settings
from callcenter.dialer import cli as dialer_cli
from callcenter.intake import cli as intake_cli
from callcenter.ivr import cli as ivr_cli


class GuardedTyper(typer.Typer):
    """The root app: an environment problem raised by any command ends in a short message, not a traceback."""

    verbose = False  # set by the root callback (-v): then the traceback is shown as usual

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return super().__call__(*args, **kwargs)
        except Exception as exc:
            problem = None if GuardedTyper.verbose else explain(exc)
            if problem is None:
                raise
            stderr = Console(stderr=True, highlight=False)
            first, *rest = render(problem)
            stderr.print("[red]" + escape(first) + "[/red]", soft_wrap=True)
            for line in rest:
                stderr.print(escape(line), soft_wrap=True)
            sys.exit(int(problem.code))


app = GuardedTyper(
    help="1022 survey caller: automated satisfaction surveys by phone.",
    no_args_is_help=True,
    # Locals may hold phone numbers or a database URL with its password: never print them.
    pretty_exceptions_show_locals=False,
)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.command("demo")(demo)
console = Console()


@app.callback()
def _main(
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Log at DEBUG level; show tracebacks."),
) -> None:
    GuardedTyper.verbose = verbose
    configure_logging("DEBUG" if verbose else get_settings().log_level)


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply every pending migration to the configured database."""
    settings = get_settings()
    upgrade_database(settings.database_url)
    console.print(f"[green]database is up to date[/green] ({settings.database_url.split('@')[-1]})")


# Explicit list, not discovery by side effect: each domain's Typer app, plus its top-level commands.
DOMAIN_CLIS = (
    ("intake", intake_cli),
    ("campaign", campaign_cli),
    ("ivr", ivr_cli),
    ("asr", asr_cli),
    ("dialer", dialer_cli),
    ("analysis", analysis_cli),
)
for _name, _module in DOMAIN_CLIS:
    app.add_typer(_module.app, name=getattr(_module, "COMMAND_NAME", _name))
    for _command in getattr(_module, "TOP_LEVEL_COMMANDS", ()):
        app.command(_command.__name__.replace("_", "-"))(_command)

if __name__ == "__main__":
    app()
