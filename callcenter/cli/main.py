"""``callcenter``: the operator's command line. Each domain contributes a sub-command group."""

from __future__ import annotations

import typer
from rich.console import Console

from callcenter.analysis import cli as analysis_cli
from callcenter.asr import cli as asr_cli
from callcenter.campaign import cli as campaign_cli
from callcenter.cli.demo import demo
from callcenter.core.db import upgrade_database
from callcenter.core.logging import configure_logging
from callcenter.core.settings import get_settings
from callcenter.dialer import cli as dialer_cli
from callcenter.intake import cli as intake_cli
from callcenter.ivr import cli as ivr_cli

app = typer.Typer(help="1022 survey caller: automated satisfaction surveys by phone.", no_args_is_help=True)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.command("demo")(demo)
console = Console()


@app.callback()
def _main(verbose: bool = typer.Option(False, "--verbose", "-v", help="Log at DEBUG level.")) -> None:
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
