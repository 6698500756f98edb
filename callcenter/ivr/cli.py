"""``callcenter ivr …`` and the top-level ``callcenter agi-server``."""

from __future__ import annotations

import asyncio
import gc
import logging
import os

import typer
from rich.console import Console

from callcenter.asr.pool import AsyncRecognizer
from callcenter.asr.settings import AsrSettings
from callcenter.core.runtime import build_runtime
from callcenter.core.sealed_audio import sealer_from_settings
from callcenter.ivr import constants as c
from callcenter.ivr.adapters.followups import celery_followups
from callcenter.ivr.agi_server import SurveyAgiApplication, serve_forever
from callcenter.ivr.call_token import call_token_key
from callcenter.ivr.questionnaire import QuestionnaireError, load_questionnaire
from callcenter.ivr.settings import IvrSettings
from callcenter.ivr.tts import PromptLibrary, default_engines

app = typer.Typer(help="The Vietnamese IVR: questionnaire, prompts, Asterisk dialplan.", no_args_is_help=True)
console = Console()
log = logging.getLogger(__name__)


@app.command("dialplan")
def dialplan(
    host: str = typer.Option(None, help="Address Asterisk connects to (default: CALLCENTER_IVR_AGI_HOST)."),
    port: int = typer.Option(None, help="FastAGI port (default: CALLCENTER_IVR_AGI_PORT)."),
) -> None:
    """Print the extensions.conf context the operator must add to Asterisk."""
    settings = IvrSettings()
    typer.echo(c.dialplan_snippet(host=host or settings.agi_host, port=port or settings.agi_port), nl=False)


@app.command("check")
def check() -> None:
    """Validate the questionnaire file and show its version, reasons and prompt count."""
    settings = IvrSettings()
    try:
        q = load_questionnaire(settings.questionnaire)
    except QuestionnaireError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from exc
    console.print(
        f"questionnaire {q.version}: {len(q.reasons)} reasons, {len(q.static_texts())} static prompts"
    )
    for reason in q.reasons:
        console.print(f"  {reason.key or '-'}  {reason.code:>2}  {reason.label}")


def _load_transcriber() -> AsyncRecognizer | None:
    """The ASR package's process pool when a speech engine is configured; None = keys only."""
    # Engine, workers and CALLCENTER_ASR_TIMEOUT_SECONDS; logs which engine, or why keys only.
    return AsyncRecognizer.from_settings(AsrSettings())


def settle_heap() -> None:
    """Move everything loaded at start-up out of the garbage collector's sight before calls arrive.

    The start-up heap (modules, mappers, questionnaire, prompt index) is about 180,000 tracked
    objects; a full (generation 2) collection walking it took up to 87 ms here (measured with
    gc.callbacks while running ``scripts/bench_agi.py``), and while it runs every call waits.
    Frozen objects are never scanned again, so a full collection during calls only walks what the
    live calls allocated.
    """
    gc.collect()
    gc.freeze()


def agi_server(
    host: str = typer.Option(None, help="Listen address (default: CALLCENTER_IVR_AGI_HOST)."),
    port: int = typer.Option(None, help="Listen port (default: CALLCENTER_IVR_AGI_PORT, 4573)."),
    speech: bool = typer.Option(True, help="Offer spoken answers when a speech engine is configured."),
) -> None:
    """Run the FastAGI server that plays the survey on Asterisk calls."""
    settings = IvrSettings()
    runtime = build_runtime()
    try:
        questionnaire = load_questionnaire(settings.questionnaire)
    except QuestionnaireError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from exc
    prompts = PromptLibrary(
        runtime.settings.var_dir / "prompts", default_engines(gtts_timeout=settings.gtts_timeout_seconds)
    )
    recordings = settings.recordings_dir or runtime.settings.var_dir / "recordings"
    os.makedirs(recordings, exist_ok=True)
    transcriber = _load_transcriber() if speech else None

    async def main() -> None:
        if transcriber is not None:
            engine = await transcriber.start()  # load the model in every worker before the first call
            log.info("speech answers on: %s in %d worker process(es)", engine, transcriber.workers)
        application = SurveyAgiApplication(
            sessions=runtime.sessions,
            clock=runtime.clock,
            questionnaire=questionnaire,
            prompts=prompts,
            recordings_dir=recordings,
            token_key=call_token_key(runtime.settings.pii_key_bytes),
            transcriber=transcriber,
            db_threads=settings.db_threads,
            env_timeout=settings.env_timeout_seconds,
            sealer=sealer_from_settings(runtime.settings),
            followups=celery_followups() if settings.queue_followups else None,
        )
        settle_heap()
        await serve_forever(
            application,
            host or settings.agi_host,
            port if port is not None else settings.agi_port,
            drain_seconds=settings.drain_seconds,
            ready=lambda server: print(f"READY {server.sockets[0].getsockname()[1]}", flush=True),
        )

    try:
        asyncio.run(main())
    finally:
        if transcriber is not None:
            transcriber.close()
        runtime.engine.dispose()


TOP_LEVEL_COMMANDS = (agi_server,)
