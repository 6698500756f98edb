"""Twilio TwiML webhooks: the same survey flow, one event per HTTP request.

Twilio asks ``/ivr/twilio/voice?attempt_id=…&dossier_id=…`` when the citizen answers; each answer
comes back to ``/ivr/twilio/step`` (``<Gather>`` / ``<Record>`` actions). Every request, including
the audio fetches of ``<Play>``, must carry a valid ``X-Twilio-Signature`` (computed by Twilio over
the public URL and the form fields with the account's auth token) or gets 403.

Where the flow lives between requests: in the action URLs, as a *signed* snapshot (``state=``),
not in a table. Arguments: the snapshot is small (a few hundred bytes); no migration, no cleanup of
abandoned rows, any API process can serve the next request; and Twilio's signature already covers
the whole URL, so only Twilio can replay it. Our own HMAC (with an issue time, refused after
``STATE_MAX_AGE``) adds defence in depth and binds the state to its attempt and dossier. A replayed
older state cannot undo answers, because storing is monotonic (see ``service.save_survey_progress``),
and every answer is stored in ``survey_responses`` as it comes, exactly as on Asterisk.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import threading
import time
from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, HTTPException, Request, Response, status
from fastapi.responses import FileResponse
from sqlalchemy.orm import Session, sessionmaker
from twilio.request_validator import RequestValidator
from twilio.twiml.voice_response import Gather, VoiceResponse

from callcenter.core.clock import Clock
from callcenter.core.db import session_scope
from callcenter.core.errors import NotFound
from callcenter.core.runtime import Runtime
from callcenter.ivr.call_token import call_token_key, verify_call_token
from callcenter.ivr.context import load_call_context
from callcenter.ivr.flow import (
    Action,
    CollectKeys,
    Event,
    HangUpCall,
    Keys,
    Play,
    Prompt,
    Record,
    RecordingDone,
    Speech,
    SurveyFlow,
    Timeout,
)
from callcenter.ivr.questionnaire import Questionnaire, load_questionnaire
from callcenter.ivr.service import save_survey_progress
from callcenter.ivr.settings import IvrSettings
from callcenter.ivr.tts import PromptLibrary, default_engines

log = logging.getLogger(__name__)

PREFIX = "/ivr/twilio"
STATE_MAX_AGE = 3 * 3600  # seconds; no survey call lasts that long
AUDIO_TYPES = {"mp3": "audio/mpeg", "wav": "audio/wav"}

router = APIRouter(prefix=PREFIX, tags=["ivr"])


class StateCodec:
    """Signs and checks flow snapshots carried in Twilio action URLs."""

    def __init__(self, key: bytes, *, now: Any = time.time) -> None:
        self._key = key
        self._now = now

    def encode(self, snapshot: dict[str, Any], *, attempt_id: int, dossier_id: int) -> str:
        body = json.dumps(
            {"a": attempt_id, "d": dossier_id, "t": int(self._now()), "f": snapshot}, separators=(",", ":")
        ).encode()
        mac = hmac.new(self._key, body, hashlib.sha256).digest()[:16]
        return base64.urlsafe_b64encode(mac + body).decode().rstrip("=")

    def decode(self, token: str, *, attempt_id: int, dossier_id: int) -> dict[str, Any]:
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        except (ValueError, TypeError) as exc:
            raise ValueError("state is not base64") from exc
        mac, body = raw[:16], raw[16:]
        if not hmac.compare_digest(mac, hmac.new(self._key, body, hashlib.sha256).digest()[:16]):
            raise ValueError("state signature does not match")
        data = json.loads(body)
        if (data["a"], data["d"]) != (attempt_id, dossier_id):
            raise ValueError("state belongs to another call")
        if self._now() - data["t"] > STATE_MAX_AGE:
            raise ValueError("state has expired")
        snapshot: dict[str, Any] = data["f"]
        return snapshot


@dataclass
class TwilioIvr:
    """What the webhooks need, built once per application from its runtime."""

    settings: IvrSettings
    questionnaire: Questionnaire
    prompts: PromptLibrary
    sessions: sessionmaker[Session]
    clock: Clock
    codec: StateCodec
    validator: RequestValidator
    token_key: bytes  # checks the dialer's call token (callcenter.ivr.call_token)

    @classmethod
    def from_runtime(cls, runtime: Runtime, settings: IvrSettings | None = None) -> TwilioIvr:
        settings = settings or IvrSettings()
        key = hmac.new(runtime.settings.pii_key_bytes, b"ivr-twilio-state", hashlib.sha256).digest()
        return cls(
            settings=settings,
            questionnaire=load_questionnaire(settings.questionnaire),
            prompts=PromptLibrary(
                runtime.settings.var_dir / "prompts",
                default_engines(gtts_timeout=settings.gtts_timeout_seconds),
            ),
            sessions=runtime.sessions,
            clock=runtime.clock,
            codec=StateCodec(key),
            validator=RequestValidator(settings.twilio_auth_token.get_secret_value()),
            token_key=call_token_key(runtime.settings.pii_key_bytes),
        )

    def public_url(self, path: str, query: dict[str, Any] | None = None) -> str:
        url = self.settings.public_base_url.rstrip("/") + path
        return f"{url}?{urlencode(query)}" if query else url


_build_lock = threading.Lock()


def get_ivr(request: Request) -> TwilioIvr:
    """The application's TwilioIvr (built on first use from ``app.state.runtime``)."""
    state = request.app.state
    ivr = getattr(state, "ivr_twilio", None)
    if ivr is None:
        with _build_lock:
            ivr = getattr(state, "ivr_twilio", None)
            if ivr is None:
                ivr = TwilioIvr.from_runtime(state.runtime)
                state.ivr_twilio = ivr
    return ivr  # type: ignore[no-any-return]


async def twilio_params(request: Request, ivr: Annotated[TwilioIvr, Depends(get_ivr)]) -> dict[str, str]:
    """The request's form fields, after checking X-Twilio-Signature (403 when missing or wrong)."""
    params: dict[str, str] = {}
    if request.method == "POST":
        form = await request.form()
        params = {k: v for k, v in form.items() if isinstance(v, str)}
    url = ivr.public_url(request.url.path)
    if request.url.query:
        url = f"{url}?{request.url.query}"
    signature = request.headers.get("X-Twilio-Signature", "")
    token = ivr.settings.twilio_auth_token.get_secret_value()
    if not signature or not token or not ivr.validator.validate(url, params, signature):
        log.warning("refused a Twilio webhook without a valid signature: %s", request.url.path)
        raise HTTPException(status.HTTP_403_FORBIDDEN, "invalid or missing X-Twilio-Signature")
    return params


Params = Annotated[dict[str, str], Depends(twilio_params)]
Ivr = Annotated[TwilioIvr, Depends(get_ivr)]


def _twiml(response: VoiceResponse) -> Response:
    return Response(content=str(response), media_type="application/xml")


def _audio_urls(ivr: TwilioIvr, prompt: Prompt) -> list[str]:
    urls = []
    for utterance in prompt:
        rendered = ivr.prompts.render(utterance.text)  # static ones are cached; dynamic once
        urls.append(ivr.public_url(f"{PREFIX}/audio/{rendered.key}.mp3"))
    return urls


def render_actions(ivr: TwilioIvr, actions: list[Action], *, step_query: dict[str, Any]) -> VoiceResponse:
    """TwiML for the flow's actions; ``step_query`` (ids + signed state) goes on every action URL."""
    response = VoiceResponse()
    for action in actions:
        if isinstance(action, Play):
            for url in _audio_urls(ivr, action.prompt):
                response.play(url)
        elif isinstance(action, CollectKeys):
            speech = action.phrases is not None
            extra: dict[str, Any] = {}
            if speech:
                extra = {"hints": ", ".join(dict.fromkeys(action.phrases or ())), "speech_timeout": "auto"}
            gather = Gather(
                input="dtmf speech" if speech else "dtmf",
                action=ivr.public_url(f"{PREFIX}/step", {**step_query, "kind": "gather"}),
                method="POST",
                timeout=max(1, round(action.timeout)),
                num_digits=action.max_digits,
                finish_on_key=action.finish_on_key or "",
                action_on_empty_result=True,
                language=ivr.questionnaire.language,
                **extra,
            )
            for url in _audio_urls(ivr, action.prompt):
                gather.play(url)
            response.append(gather)
        elif isinstance(action, Record):
            for url in _audio_urls(ivr, action.prompt):
                response.play(url)
            response.record(
                action=ivr.public_url(f"{PREFIX}/step", {**step_query, "kind": "record"}),
                method="POST",
                max_length=action.max_seconds,
                timeout=action.silence_seconds,
                finish_on_key=action.finish_on_key,
                play_beep=True,
                trim="trim-silence",
            )
            # Twilio goes on to the next verb when nothing was recorded: tell the flow.
            response.redirect(
                ivr.public_url(f"{PREFIX}/step", {**step_query, "kind": "record_empty"}), method="POST"
            )
        elif isinstance(action, HangUpCall):
            response.hangup()
    return response


def _event(kind: str, params: dict[str, str]) -> Event:
    if kind == "gather":
        digits = params.get("Digits", "")
        if digits:
            return Keys(digits)
        speech = params.get("SpeechResult", "").strip()
        if speech:
            try:
                confidence = float(params.get("Confidence", "0"))
            except ValueError:
                confidence = 0.0
            return Speech(speech, confidence)
        return Timeout()
    if kind == "record":
        try:
            duration = float(params.get("RecordingDuration", "0"))
        except ValueError:
            duration = 0.0
        digits = params.get("Digits", "")
        ended_by = "hangup" if digits == "hangup" else ("dtmf" if digits else "silence")
        return RecordingDone(params.get("RecordingUrl") or None, duration, ended_by)
    if kind == "record_empty":
        return RecordingDone(None, 0.0, "timeout")
    raise HTTPException(status.HTTP_400_BAD_REQUEST, f"unknown step kind {kind!r}")


def _respond(
    ivr: TwilioIvr, session: Session, flow: SurveyFlow, actions: list[Action], attempt_id: int
) -> Response:
    save_survey_progress(
        session, attempt_id=attempt_id, context=flow.context, result=flow.result, now=ivr.clock.now()
    )
    state = ivr.codec.encode(flow.snapshot(), attempt_id=attempt_id, dossier_id=flow.context.dossier_id)
    query = {"attempt_id": attempt_id, "dossier_id": flow.context.dossier_id, "state": state}
    response = render_actions(ivr, actions, step_query=query)
    if not actions:  # the flow is over (e.g. the caller hung up during a recording)
        response.hangup()
    return _twiml(response)


@router.post("/voice")
def voice(attempt_id: int, dossier_id: int, params: Params, ivr: Ivr, token: str = "") -> Response:
    """The citizen answered: greet and ask the first question."""
    if not verify_call_token(ivr.token_key, attempt_id=attempt_id, dossier_id=dossier_id, token=token):
        # Signed by Twilio, but not a call our dialer placed for this attempt and dossier.
        log.error("Twilio call for attempt %s, dossier %s: the call token %s; not surveying",
                  attempt_id, dossier_id, "is missing" if not token else "does not match")  # fmt: skip
        response = VoiceResponse()
        response.hangup()
        return _twiml(response)
    with session_scope(ivr.sessions) as session:
        try:
            context = load_call_context(session, dossier_id=dossier_id)
        except NotFound:
            log.error("Twilio call for attempt %s: dossier %s does not exist", attempt_id, dossier_id)
            response = VoiceResponse()
            response.hangup()
            return _twiml(response)
        flow = SurveyFlow(ivr.questionnaire, context, speech_enabled=True)
        return _respond(ivr, session, flow, flow.start(), attempt_id)


@router.post("/step")
def step(attempt_id: int, dossier_id: int, state: str, kind: str, params: Params, ivr: Ivr) -> Response:
    """One answer (Gather or Record action): advance the flow and say what comes next."""
    try:
        snapshot = ivr.codec.decode(state, attempt_id=attempt_id, dossier_id=dossier_id)
    except (ValueError, KeyError) as exc:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, f"bad state: {exc}") from exc
    event = _event(kind, params)
    with session_scope(ivr.sessions) as session:
        context = load_call_context(session, dossier_id=dossier_id)
        try:
            flow = SurveyFlow.restore(ivr.questionnaire, context, snapshot, speech_enabled=True)
        except ValueError as exc:  # the questionnaire changed during the call
            raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from exc
        return _respond(ivr, session, flow, flow.handle(event), attempt_id)


@router.get("/audio/{key}.{fmt}")
def audio(key: str, fmt: str, params: Params, ivr: Ivr) -> FileResponse:
    """Prompt audio for ``<Play>`` (MP3 or WAV, 8 kHz mono)."""
    if fmt not in AUDIO_TYPES:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "unknown audio format")
    rendered = ivr.prompts.by_key(key)
    if rendered is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "unknown prompt")
    return FileResponse(rendered.path(fmt), media_type=AUDIO_TYPES[fmt])
