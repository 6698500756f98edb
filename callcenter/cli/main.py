"""``callcenter``: the operator's command line. Each domain contributes a sub-command group."""

from __future__ import annotations

import typer
from rich.console import Console

from callcenter.cli.demo import demo
from callcenter.core.db import upgrade_database
from callcenter.core.logging import configure_logging
from callcenter.core.settings import get_settings

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


def _register_domains() -> None:
    # Explicit list, not discovery by side effect: a domain's CLI module exists once it has commands.
    import importlib

    for name, module in (
        ("intake", "callcenter.intake.cli"),
        ("campaign", "callcenter.campaign.cli"),
        ("ivr", "callcenter.ivr.cli"),
        ("asr", "callcenter.asr.cli"),
        ("dialer", "callcenter.dialer.cli"),
        ("analysis", "callcenter.analysis.cli"),
    ):
        try:
            mod = importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name != module:
                raise
            continue
        sub = getattr(mod, "app", None)
        if sub is not None:
            app.add_typer(sub, name=getattr(mod, "COMMAND_NAME", name))
        for extra in getattr(mod, "TOP_LEVEL_COMMANDS", ()):
            app.command(extra.__name__.replace("_", "-"))(extra)


_register_domains()

if __name__ == "__main__":
    app()
