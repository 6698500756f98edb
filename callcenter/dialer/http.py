"""Twilio's call-status callback: ``POST /dialer/twilio/status?attempt_id=…``.

Every request must carry a valid ``X-Twilio-Signature`` (twilio's ``RequestValidator`` over the public
URL Twilio called and the form fields, with the account's auth token); anything unsigned or wrongly
signed gets 403 and changes nothing. Progress moves the attempt by compare-and-set (ringing →
RINGING, in-progress → IN_SURVEY); a final status finishes it once, closes a survey left mid-question
and releases the channel lease. Twilio retries callbacks, so every step is idempotent.
"""

from __future__ import annotations

import logging
import re
from typing import Annotated

import redis
from fastapi import APIRouter, Depends, HTTPException, Request, status
from sqlalchemy.orm import Session
from twilio.request_validator import RequestValidator

from callcenter.api.auth import get_session
from callcenter.core.outcomes import CallOutcome
from callcenter.dialer import service
from callcenter.dialer.outcomes import classify_twilio, twilio_is_final
from callcenter.dialer.pacing import Pacer
from callcenter.dialer.settings import DialerSettings, get_dialer_settings
from callcenter.dialer.trunks import scopes, server_named
from callcenter.ivr.service import close_unfinished_response

log = logging.getLogger(__name__)

router = APIRouter(prefix="/dialer", tags=["dialer"])

_SIP_CODE = re.compile(r"[1-6][0-9]{2}")  # SIP status codes are 100..699 (RFC 3261, section 7.2)


def dialer_settings() -> DialerSettings:
    """The dialer settings (a dependency, so tests can override it)."""
    return get_dialer_settings()


def dialer_pacer(request: Request, settings: Annotated[DialerSettings, Depends(dialer_settings)]) -> Pacer:
    """One pacer per application, on the runtime's Redis."""
    pacer = getattr(request.app.state, "dialer_pacer", None)
    if pacer is None:
        client = redis.Redis.from_url(request.app.state.runtime.settings.redis_url, socket_timeout=5)
        pacer = Pacer(client, prefix=settings.redis_prefix, cps_margin_ms=settings.cps_margin_ms)
        request.app.state.dialer_pacer = pacer
    return pacer  # type: ignore[no-any-return]


async def signed_twilio_form(
    request: Request, settings: Annotated[DialerSettings, Depends(dialer_settings)]
) -> dict[str, str]:
    """The form fields, once ``X-Twilio-Signature`` is proven right (403 otherwise)."""
    form = await request.form()
    params = {k: v for k, v in form.items() if isinstance(v, str)}
    url = settings.twilio_base_url.rstrip("/") + request.url.path
    if request.url.query:
        url = f"{url}?{request.url.query}"
    signature = request.headers.get("X-Twilio-Signature", "")
    token = settings.twilio_auth_token.get_secret_value()
    if not signature or not token or not RequestValidator(token).validate(url, params, signature):
        log.warning("refused a Twilio status callback without a valid signature")
        raise HTTPException(status.HTTP_403_FORBIDDEN, "invalid or missing X-Twilio-Signature")
    return params


@router.post("/twilio/status")
def twilio_status(
    attempt_id: int,
    params: Annotated[dict[str, str], Depends(signed_twilio_form)],
    session: Annotated[Session, Depends(get_session)],
    settings: Annotated[DialerSettings, Depends(dialer_settings)],
    pacer: Annotated[Pacer, Depends(dialer_pacer)],
    request: Request,
) -> dict[str, str]:
    """Move the attempt along Twilio's CallStatus; finish it on a final status."""
    call_status = params.get("CallStatus", "").strip().lower()
    if not call_status:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "form field 'CallStatus' is missing")
    now = request.app.state.runtime.clock.now()
    attempt = service.get_attempt(session, attempt_id=attempt_id)
    if attempt is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"call attempt {attempt_id} does not exist")
    if call_status == "ringing":
        service.mark_ringing(session, attempt_id=attempt_id, now=now)
        return {"status": "ringing"}
    if call_status in ("in-progress", "answered"):
        service.mark_answered(session, attempt_id=attempt_id, now=now)
        return {"status": "in_survey"}
    if not twilio_is_final(call_status):
        return {"status": "ignored"}
    sip = params.get("SipResponseCode", "").strip()
    if sip and not _SIP_CODE.fullmatch(sip):
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            f"form field 'SipResponseCode' must be a three-digit SIP status code, not {sip[:40]!r}",
        )
    try:
        outcome = classify_twilio(
            call_status, answered_by=params.get("AnsweredBy"), sip_response_code=int(sip) if sip else None
        )
    except ValueError as exc:  # a CallStatus classify_twilio does not know
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, f"form field 'CallStatus': {exc}") from exc
    if outcome is CallOutcome.ANSWERED or attempt.answered_at is not None:
        close_unfinished_response(session, attempt_id=attempt_id, now=now)
    finished = service.finish_attempt(
        session, attempt_id=attempt_id, outcome=outcome, now=now, detail=f"twilio {call_status}"
    )
    try:
        server = server_named(settings, attempt.server or "")
    except LookupError:
        server = None
    if server is not None:
        pacer.release_channel(attempt_id=attempt_id, scopes=scopes(settings, server))
    return {"status": "finished" if finished else "already final"}
