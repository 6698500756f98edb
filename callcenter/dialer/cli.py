"""Operator commands: ``callcenter worker | beat | ami-owner`` and ``callcenter dialer status``.

The first three are thin fronts for the plain commands, documented in docs/dialer.md::

    celery -A callcenter.celery_app worker -Q dialer,dialer_control,events,intake,analysis,asr -c 4
    celery -A callcenter.celery_app beat
"""

from __future__ import annotations

import asyncio
import enum
from collections.abc import Coroutine
from typing import Any

import typer
import uvloop
from rich.console import Console
from rich.table import Table
from sqlalchemy import func, select

from callcenter.celery_app import app as celery_app
from callcenter.core.db import session_scope
from callcenter.core.runtime import build_runtime
from callcenter.dialer.context import build_dialer_context
from callcenter.dialer.metrics import CapacityCollector, serve_metrics
from callcenter.dialer.models import CallAttempt
from callcenter.dialer.owner import run_owner
from callcenter.dialer.settings import get_dialer_settings
from callcenter.dialer.trunks import scopes, servers

COMMAND_NAME = "dialer"


class WorkerPool(enum.StrEnum):
    PREFORK = "prefork"
    SOLO = "solo"


ALL_QUEUES = "dialer,dialer_control,events,intake,analysis,asr"

app = typer.Typer(help="Dialer: trunks, capacity and call attempts.", no_args_is_help=True)
console = Console()


def worker(
    queues: str = typer.Option(ALL_QUEUES, "--queues", "-Q", help="Comma-separated queues to consume."),
    concurrency: int = typer.Option(4, "--concurrency", "-c", min=1, help="Worker processes."),
    loglevel: str = typer.Option("INFO", "--loglevel", "-l"),
    hostname: str | None = typer.Option(None, "--hostname", "-n", help="Node name (default: celery@host)."),
    pool: WorkerPool = typer.Option(
        WorkerPool.PREFORK,
        "--pool",
        "-P",
        help="prefork: -c child processes; solo: this process runs the tasks, one at a time "
        "(less CPU per task; run one worker per core; not for the Twilio trunk, whose place_call waits).",
    ),
) -> None:
    """Run a Celery worker on the named queues (prefork by default; see docs/dialer.md for solo)."""
    argv = ["worker", "-Q", queues, "--loglevel", loglevel, "-P", pool.value]
    if pool is WorkerPool.PREFORK:
        argv += ["-c", str(concurrency)]
    if hostname:
        argv += ["-n", hostname]
    celery_app.worker_main(argv)


def beat(loglevel: str = typer.Option("INFO", "--loglevel", "-l")) -> None:
    """Run Celery beat: dialer.release_due every second, dialer.reap, and the other domains' schedules."""
    celery_app.start(["beat", "--loglevel", loglevel])


def ami_owner(
    metrics_port: int | None = typer.Option(
        None, "--metrics-port", help="Prometheus /metrics port (default CALLCENTER_DIALER_METRICS_PORT)."
    ),
) -> None:
    """Own the trunk connections (AMI pool or the simulator), read the outbox and follow every call."""
    settings = get_dialer_settings()
    if settings.trunk == "twilio":
        console.print("[red]the Twilio trunk needs no owner: the workers place its calls[/red]")
        raise typer.Exit(2)
    runtime = build_runtime()
    context = build_dialer_context(runtime, settings)
    all_scopes = {s.name: s for server in servers(settings) for s in scopes(settings, server)}
    port = settings.metrics_port if metrics_port is None else metrics_port
    serve_metrics(
        port, CapacityCollector(context.redis, prefix=settings.redis_prefix, scopes=list(all_scopes.values()))
    )
    console.print(f"trunk owner for {settings.trunk}: {', '.join(s.name for s in servers(settings))}")
    run_on_event_loop(settings.owner_event_loop, run_owner(runtime, settings))


def run_on_event_loop(kind: str, main: Coroutine[Any, Any, None]) -> None:
    """Run ``main`` to its end on uvloop's event loop or the standard library's (``kind``).

    uvloop's loop (libuv) runs the owner's thousands of small callbacks, socket reads and executor
    hand-offs per second with less CPU than asyncio's pure-Python loop.
    """
    if kind == "uvloop":
        uvloop.run(main)
    elif kind == "asyncio":
        asyncio.run(main)
    else:
        main.close()
        raise ValueError(f"unknown event loop {kind!r}: uvloop or asyncio")


@app.command("status")
def status() -> None:
    """Channels leased per scope, calls in the last second, attempts by status."""
    settings = get_dialer_settings()
    runtime = build_runtime()
    context = build_dialer_context(runtime, settings)
    all_scopes = {s.name: s for server in servers(settings) for s in scopes(settings, server)}
    table = Table("scope", "channels in use", "limit", "calls last second")
    recent = context.pacer.calls_in_last_second([s for s in all_scopes.values() if s.cps is not None])
    for usage in context.pacer.usage(list(all_scopes.values())):
        table.add_row(usage.scope, str(usage.in_use), str(usage.limit), str(recent.get(usage.scope, "")))
    console.print(table)
    with session_scope(runtime.sessions) as session:
        rows = session.execute(
            select(CallAttempt.status, func.count()).group_by(CallAttempt.status).order_by(CallAttempt.status)
        ).all()
    attempts = Table("attempt status", "count")
    for name, count in rows:
        attempts.add_row(name, str(count))
    console.print(attempts)


TOP_LEVEL_COMMANDS = (worker, beat, ami_owner)
