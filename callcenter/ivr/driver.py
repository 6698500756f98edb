"""The one loop that runs a survey flow over a live transport (Asterisk AGI, the dialer's simulator).

Twilio is request/response and cannot hold a loop open; its webhook applies the same flow one
event per request (see ``twilio_http``).
"""

from __future__ import annotations

import logging
from typing import Protocol

from callcenter.ivr.flow import (
    Action,
    CollectKeys,
    Event,
    HangUp,
    HangUpCall,
    Play,
    Record,
    SurveyFlow,
    SurveyResult,
)

log = logging.getLogger(__name__)


class Transport(Protocol):
    """A live call. Each method returns the next event; a hang-up is an event, never an exception."""

    async def play(self, action: Play) -> Event | None:
        """Play the prompt to the end; None when it finished, :class:`HangUp` if the caller left."""
        ...

    async def collect(self, action: CollectKeys) -> Event:
        """Play the prompt (keys interrupt it) and return Keys, Speech, Timeout or HangUp."""
        ...

    async def record(self, action: Record) -> Event:
        """Play the prompt, record, and return RecordingDone (or HangUp before recording began)."""
        ...

    async def hangup(self, action: HangUpCall) -> None:
        """End the call from our side."""
        ...


class SurveyRecorder(Protocol):
    """Stores what the citizen answered; called after every change, so a hang-up loses nothing.

    A recorder may write in the background; if it has an ``async flush()``, :func:`run_survey`
    awaits it before returning, so the result is stored when the call is over.
    """

    async def save(self, result: SurveyResult) -> None: ...


class NullRecorder:
    """Stores nothing (dry runs, protocol tests)."""

    async def save(self, result: SurveyResult) -> None:
        return None


async def _perform(transport: Transport, action: Action) -> Event | None:
    if isinstance(action, Play):
        return await transport.play(action)
    if isinstance(action, CollectKeys):
        return await transport.collect(action)
    if isinstance(action, Record):
        return await transport.record(action)
    await transport.hangup(action)
    return None


async def run_survey(transport: Transport, flow: SurveyFlow, recorder: SurveyRecorder) -> SurveyResult:
    """Run ``flow`` to its end over ``transport``, saving the result each time it changes.

    If the transport raises (a dropped connection, a cancelled task), the flow is closed as a
    hang-up and what was answered is saved before the error propagates.
    """
    saved = -1

    async def save_if_changed() -> None:
        nonlocal saved
        if flow.result.revision != saved:
            await recorder.save(flow.result)
            saved = flow.result.revision

    actions = flow.start()
    await recorder.save(flow.result)  # the response exists from the first second of the call
    saved = flow.result.revision
    try:
        while actions:
            event: Event | None = None
            for action in actions:
                event = await _perform(transport, action)
                if isinstance(event, HangUp):
                    break
            if event is None:
                break  # the last action was our own hang-up
            actions = flow.handle(event)
            await save_if_changed()
    except BaseException:
        if not flow.ended:
            flow.handle(HangUp())
        try:
            await recorder.save(flow.result)
            await _flush(recorder)
        except Exception:
            log.exception("could not save the partial survey response after a transport failure")
        raise
    if not flow.ended:  # a transport that stopped producing events: treat as the caller leaving
        flow.handle(HangUp())
    await save_if_changed()
    await _flush(recorder)
    return flow.result


async def _flush(recorder: SurveyRecorder) -> None:
    flush = getattr(recorder, "flush", None)
    if flush is not None:
        await flush()
