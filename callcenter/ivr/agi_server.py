"""``callcenter agi-server``: the FastAGI server that runs the survey on Asterisk calls.

Built on panoramisk's ``fast_agi.Application`` (async routes only), with two extensions:
``handler`` reads the ``agi_*`` environment with a timeout and gives up on a peer that leaves early
(panoramisk loops forever on that), and requests are :class:`~callcenter.ivr.agi.AgiRequest`, whose
reply reader survives bare ``HANGUP`` lines, 511, multi-line 520 and garbage. Hundreds of calls run
concurrently in one process: the loop only waits on sockets; database writes, prompt synthesis and
speech recognition run on threads or worker processes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
from collections import deque
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import Any

from panoramisk.fast_agi import Application
from sqlalchemy.orm import Session, sessionmaker

from callcenter.core.clock import Clock
from callcenter.core.db import session_scope
from callcenter.core.errors import NotFound
from callcenter.core.sealed_audio import AudioSealer
from callcenter.ivr import constants as c
from callcenter.ivr.adapters.followups import SurveyFollowUps
from callcenter.ivr.agi import MAX_LINE, AGIError, AGIHangup, AgiRequest, read_agi_environment
from callcenter.ivr.agi_transport import AgiTransport, AsyncTranscriber
from callcenter.ivr.call_token import verify_call_token
from callcenter.ivr.context import load_call_context
from callcenter.ivr.driver import run_survey
from callcenter.ivr.flow import AnswerMatcher, CallContext, SurveyFlow
from callcenter.ivr.questionnaire import Questionnaire
from callcenter.ivr.service import DbRecorder
from callcenter.ivr.tts import PromptLibrary

log = logging.getLogger(__name__)

Route = Callable[[AgiRequest], Awaitable[None]]


class SurveyAgiApplication(Application):  # type: ignore[misc]
    """panoramisk's FastAGI application with the survey route and a robust connection handler."""

    def __init__(
        self,
        *,
        sessions: sessionmaker[Session],
        clock: Clock,
        questionnaire: Questionnaire,
        prompts: PromptLibrary,
        recordings_dir: Path,
        token_key: bytes,
        transcriber: AsyncTranscriber | None = None,
        matcher: AnswerMatcher | None = None,
        db_threads: int = 8,
        env_timeout: float = 5.0,
        sealer: AudioSealer | None = None,
        followups: SurveyFollowUps | None = None,
        loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(loop=loop or asyncio.get_running_loop())
        self.sessions = sessions
        self.clock = clock
        self.questionnaire = questionnaire
        self.prompts = prompts
        self.recordings_dir = recordings_dir
        self.token_key = token_key  # checks the dialer's CALL_TOKEN (callcenter.ivr.call_token)
        self.transcriber = transcriber
        self.matcher = matcher
        self.env_timeout = env_timeout
        self.sealer = sealer
        self.followups = followups  # alert / transcription queued the moment a survey ends
        # Writes (answers) and reads (a new call's dossier) on separate threads: a new call must not
        # wait behind the queued answers of hundreds of others before its greeting can start.
        self.db_executor = ThreadPoolExecutor(max_workers=db_threads, thread_name_prefix="ivr-db-write")
        self.read_executor = ThreadPoolExecutor(
            max_workers=max(2, db_threads // 2), thread_name_prefix="ivr-db-read"
        )
        self.active_calls = 0
        self.calls_served = 0
        self.turnarounds: deque[float] = deque(maxlen=500_000)  # seconds, see AgiRequest
        self.add_route(c.ROUTE_SURVEY, self.survey)

    def add_route(self, path: str, endpoint: Route) -> None:
        # panoramisk wraps plain functions with asyncio.coroutine, which Python 3.11 no longer has.
        if not asyncio.iscoroutinefunction(endpoint):
            raise TypeError(f"FastAGI route {path!r} must be an async function")
        super().add_route(path, endpoint)

    async def handler(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """One Asterisk connection: read the environment, run the route, close the socket."""
        try:
            headers = await asyncio.wait_for(read_agi_environment(reader), self.env_timeout)
        except (AGIError, TimeoutError, ConnectionError) as exc:
            log.warning("dropping a FastAGI connection without a complete environment: %s", exc or "timeout")
            await _close(writer)
            return
        script = headers.get("agi_network_script", "").split("?", 1)[0]
        route = self._route.get(script)
        if route is None:
            log.error("no FastAGI route %r (agi_request %s)", script, headers.get("agi_request"))
            await _close(writer)
            return
        request = AgiRequest(
            app=self,
            headers=headers,
            reader=reader,
            writer=writer,
            encoding=self.default_encoding,
            on_turnaround=self.turnarounds.append,
        )
        self.active_calls += 1
        try:
            await route(request)
        except AGIHangup as exc:
            log.info("call %s: caller gone (%s)", headers.get("agi_uniqueid"), exc)
        except (AGIError, TimeoutError) as exc:
            log.warning("call %s: AGI error: %s", headers.get("agi_uniqueid"), exc)
        except Exception:
            log.exception("call %s: the survey route failed", headers.get("agi_uniqueid"))
        finally:
            self.active_calls -= 1
            self.calls_served += 1
            await _close(writer)

    # ----------------------------------------------------------------------------------- routes

    async def _read_ids(self, request: AgiRequest) -> tuple[int, int] | None:
        values: dict[str, int] = {}
        for name in (c.VAR_ATTEMPT_ID, c.VAR_DOSSIER_ID):
            raw = await request.get_variable(name)
            try:
                values[name] = int(raw or "")
            except ValueError:
                log.error(
                    "channel %s: channel variable %s is %s; the dialer must set it on Originate",
                    request.headers.get("agi_channel"),
                    name,
                    "missing" if raw is None else f"not an id ({raw[:20]!r})",
                )
                return None
        attempt_id, dossier_id = values[c.VAR_ATTEMPT_ID], values[c.VAR_DOSSIER_ID]
        token = await request.get_variable(c.VAR_CALL_TOKEN)
        if not verify_call_token(self.token_key, attempt_id=attempt_id, dossier_id=dossier_id, token=token):
            # Not a call our dialer placed for this dossier (a dialplan routing another call here, a
            # connection from elsewhere, a forged id): its answers would count in the official figures.
            log.error(
                "channel %s: %s for attempt %s and dossier %s; not surveying",
                request.headers.get("agi_channel"),
                f"{c.VAR_CALL_TOKEN} is missing" if not token else f"{c.VAR_CALL_TOKEN} does not match",
                attempt_id,
                dossier_id,
            )
            return None
        return attempt_id, dossier_id

    def _load_context(self, dossier_id: int) -> CallContext:
        with session_scope(self.sessions) as session:
            return load_call_context(session, dossier_id=dossier_id)

    async def survey(self, request: AgiRequest) -> None:
        """The survey: read the ids from the channel, run the flow, store each answer as it comes."""
        await request.command("ANSWER")
        ids = await self._read_ids(request)
        if ids is None:
            await request.set_variable(c.VAR_SURVEY_END, "error")
            return
        attempt_id, dossier_id = ids
        loop = asyncio.get_running_loop()
        try:
            context = await loop.run_in_executor(self.read_executor, self._load_context, dossier_id)
        except NotFound:
            log.error("attempt %s: dossier %s does not exist; not surveying", attempt_id, dossier_id)
            await request.set_variable(c.VAR_SURVEY_END, "error")
            return
        flow = SurveyFlow(
            self.questionnaire, context, speech_enabled=self.transcriber is not None, matcher=self.matcher
        )
        recorder = DbRecorder(
            self.sessions, attempt_id=attempt_id, context=context, clock=self.clock, executor=self.db_executor
        )
        transport = AgiTransport(
            request,
            prompts=self.prompts,
            recording_base=str(self.recordings_dir / f"attempt-{attempt_id}"),
            transcriber=self.transcriber,
            sealer=self.sealer,
        )
        result = await run_survey(transport, flow, recorder)
        log.info(
            "attempt %s: survey %s (%s), satisfied=%s, reasons=%s",
            attempt_id,
            result.outcome.value,
            result.end_reason,
            result.satisfied,
            sorted(result.reasons),
        )
        with contextlib.suppress(AGIHangup):  # SET VARIABLE works on a dead channel too
            await request.set_variable(c.VAR_SURVEY_END, result.end_reason or "hangup")
            await request.set_variable(c.VAR_SURVEY_OUTCOME, result.outcome.value)
        response_id = recorder.response_id
        if self.followups is not None and response_id is not None:
            # After run_survey's flush, so the tasks find the answer committed.
            await loop.run_in_executor(
                self.db_executor,
                partial(
                    self.followups.survey_ended,
                    response_id,
                    unsatisfied=result.satisfied is False,
                    has_recording=result.recording_ref is not None,
                ),
            )

    def turnaround_summary(self) -> str:
        """Our reply time per AGI command so far (Asterisk's reply → our next command)."""
        values = sorted(self.turnarounds)
        if not values:
            return "no AGI commands yet"
        p50, p99 = values[len(values) // 2], values[min(len(values) - 1, int(len(values) * 0.99))]
        return (
            f"AGI turnaround over {len(values)} commands: p50 {p50 * 1000:.2f} ms, "
            f"p99 {p99 * 1000:.2f} ms, max {values[-1] * 1000:.1f} ms"
        )

    def close(self) -> None:
        self.db_executor.shutdown(wait=True)
        self.read_executor.shutdown(wait=True)


async def _close(writer: asyncio.StreamWriter) -> None:
    writer.close()
    with contextlib.suppress(Exception):
        await asyncio.wait_for(writer.wait_closed(), 2.0)


async def start_agi_server(app: SurveyAgiApplication, host: str, port: int) -> asyncio.Server:
    """Listen for Asterisk; returns the started server (port 0 picks a free port)."""
    return await asyncio.start_server(app.handler, host, port, limit=MAX_LINE, backlog=2048)


async def serve_forever(
    app: SurveyAgiApplication,
    host: str,
    port: int,
    *,
    drain_seconds: float = 90.0,
    ready: Callable[[asyncio.Server], Any] | None = None,
) -> None:
    """Serve until SIGTERM/SIGINT, then stop accepting and let running surveys finish (up to a limit)."""
    # Database writes run on threads; with the default 5 ms switch interval the event loop waits
    # behind them for the GIL at every socket call (the "convoy effect") and replies lag by tens of
    # milliseconds under load. A shorter interval hands the GIL back to the loop sooner.
    sys.setswitchinterval(0.0005)
    server = await start_agi_server(app, host, port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    bound = ", ".join(str(s.getsockname()) for s in server.sockets)
    log.info("FastAGI server listening on %s (route /%s)", bound, c.ROUTE_SURVEY)
    if ready is not None:
        ready(server)
    async with server:
        await stop.wait()
        server.close()
        log.info("stopping: %d call(s) still running; waiting up to %.0f s", app.active_calls, drain_seconds)
        deadline = loop.time() + drain_seconds
        while app.active_calls and loop.time() < deadline:
            await asyncio.sleep(0.2)
    app.close()
    log.info("FastAGI server stopped after %d call(s); %s", app.calls_served, app.turnaround_summary())
