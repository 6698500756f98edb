"""Twilio: calls.create through twilio's own client (only the network is replaced), and the signed
status callback that moves and finishes the attempt."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
import redis
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import select
from twilio.http import HttpClient
from twilio.http.response import Response
from twilio.request_validator import RequestValidator

from callcenter.campaign.models import CallTarget
from callcenter.core.db import session_scope, upgrade_database
from callcenter.core.pii import PiiCipher
from callcenter.core.runtime import Runtime, build_runtime
from callcenter.core.settings import Settings
from callcenter.dialer import http as dialer_http
from callcenter.dialer import service
from callcenter.dialer.adapters.base import DialRequest, OriginateRefused, TrunkUnavailable
from callcenter.dialer.adapters.twilio import TwilioTrunk
from callcenter.dialer.models import CallAttempt
from callcenter.dialer.pacing import Pacer
from callcenter.dialer.settings import DialerSettings
from callcenter.dialer.testing import seed_dossiers, start_campaign
from callcenter.dialer.trunks import scopes, servers
from callcenter.ivr.models import SurveyResponse

SID = "AC" + "0" * 32
TOKEN = "twilio-test-token"
BASE = "https://survey.example.vn"


class RecordingHttpClient(HttpClient):
    """twilio's HttpClient with the network replaced: records the request, answers as Twilio would."""

    def __init__(self, status: int = 201, body: dict[str, Any] | None = None) -> None:
        super().__init__(logger=None, is_async=False)  # type: ignore[arg-type]
        self.status = status
        self.body = body or {"sid": "CA" + "1" * 32, "status": "queued"}
        self.requests: list[dict[str, Any]] = []

    def request(  # type: ignore[override]
        self, method: str, url: str, params: Any = None, data: Any = None, headers: Any = None,
        auth: Any = None, timeout: Any = None, allow_redirects: bool = False,
    ) -> Response:  # fmt: skip
        self.requests.append({"method": method, "url": url, "data": data, "auth": auth})
        return Response(self.status, json.dumps(self.body))


def _trunk(client: HttpClient, *, amd: bool = False) -> TwilioTrunk:
    return TwilioTrunk(account_sid=SID, auth_token=TOKEN, from_number="+842363822022", base_url=BASE,
                       machine_detection=amd, http_client=client)  # fmt: skip


REQUEST = DialRequest(
    attempt_id=41, dossier_id=77, channel_id="c", number="0905123456", server="account", call_token="T0k3n"
)


def test_calls_create_carries_the_ivr_webhook_and_status_callback() -> None:
    client = RecordingHttpClient()
    placed = _trunk(client, amd=True).originate(REQUEST)
    assert placed.provider_call_id == "CA" + "1" * 32
    (sent,) = client.requests
    assert sent["method"] == "POST"
    assert sent["url"] == f"https://api.twilio.com/2010-04-01/Accounts/{SID}/Calls.json"
    data = sent["data"]
    assert data["To"] == "+84905123456" and data["From"] == "+842363822022"
    assert data["Url"] == f"{BASE}/ivr/twilio/voice?attempt_id=41&dossier_id=77&token=T0k3n"
    assert data["StatusCallback"] == f"{BASE}/dialer/twilio/status?attempt_id=41"
    assert data["StatusCallbackEvent"] == ["initiated", "ringing", "answered", "completed"]
    assert data["MachineDetection"] == "Enable"
    assert sent["auth"] == (SID, TOKEN)


def test_twilio_errors_are_sorted_into_transient_and_permanent() -> None:
    with pytest.raises(TrunkUnavailable, match="503"):
        _trunk(RecordingHttpClient(503, {"code": 20003, "message": "unavailable", "status": 503})).originate(
            REQUEST
        )
    with pytest.raises(OriginateRefused, match="21211"):
        _trunk(RecordingHttpClient(400, {"code": 21211, "message": "Invalid 'To'", "status": 400})).originate(
            REQUEST
        )


# --- the status callback ---------------------------------------------------------------------------


@pytest.fixture
def world(tmp_path: Path, cipher: PiiCipher, redis_url: str, redis_prefix: str) -> Iterator[dict[str, Any]]:
    url = f"sqlite:///{tmp_path / 'twilio.db'}"
    upgrade_database(url)
    runtime: Runtime = build_runtime(Settings(env="test", database_url=url, redis_url=redis_url))
    settings = DialerSettings(
        trunk="twilio", twilio_account_sid=SID, twilio_auth_token=TOKEN, twilio_from_number="+842363822022",
        twilio_base_url=BASE, redis_prefix=redis_prefix,
    )  # fmt: skip
    now = datetime.now(UTC)
    with session_scope(runtime.sessions) as session:
        code = seed_dossiers(session, cipher, 1)
        start_campaign(session, total=1, agency_codes=[code], now=now)
    with session_scope(runtime.sessions) as session:
        (attempt_id,) = service.release_due_attempts(session, now=now, limit=5, trunk="twilio")
        service.claim_attempt(session, attempt_id=attempt_id, worker="w", server="account",
                              lease_expires_at=now + timedelta(minutes=1), now=now)  # fmt: skip
        service.mark_dialing(session, attempt_id=attempt_id, now=now)
    client = redis.Redis.from_url(redis_url)
    pacer = Pacer(client, prefix=redis_prefix)
    call_scopes = scopes(settings, servers(settings)[0])
    assert pacer.acquire_channel(attempt_id=attempt_id, scopes=call_scopes, ttl_seconds=60) is None
    app = FastAPI()
    app.state.runtime = runtime
    app.include_router(dialer_http.router)
    app.dependency_overrides[dialer_http.dialer_settings] = lambda: settings
    yield {"app": app, "runtime": runtime, "attempt_id": attempt_id, "pacer": pacer, "scopes": call_scopes}
    for key in client.scan_iter(f"{redis_prefix}*"):
        client.delete(key)
    runtime.engine.dispose()


def _post(app: FastAPI, attempt_id: int, params: dict[str, str], *, signature: str | None) -> Any:
    path = f"/dialer/twilio/status?{urlencode({'attempt_id': attempt_id})}"
    headers = {} if signature is None else {"X-Twilio-Signature": signature}
    with TestClient(app) as client:
        return client.post(path, data=params, headers=headers)


def _sign(attempt_id: int, params: dict[str, str], token: str = TOKEN) -> str:
    url = f"{BASE}/dialer/twilio/status?{urlencode({'attempt_id': attempt_id})}"
    return str(RequestValidator(token).compute_signature(url, params))


def _attempt(world: dict[str, Any]) -> tuple[str, str | None]:
    with session_scope(world["runtime"].sessions) as session:
        row = session.execute(
            select(CallAttempt.status, CallAttempt.outcome).where(CallAttempt.id == world["attempt_id"])
        ).one()
    return row.status, row.outcome


def test_unsigned_or_wrongly_signed_callbacks_are_refused(world: dict[str, Any]) -> None:
    aid, params = world["attempt_id"], {"CallStatus": "busy", "CallSid": "CA1"}
    assert _post(world["app"], aid, params, signature=None).status_code == 403
    assert _post(world["app"], aid, params, signature=_sign(aid, params, token="wrong")).status_code == 403
    tampered = dict(params, CallStatus="completed")
    assert _post(world["app"], aid, tampered, signature=_sign(aid, params)).status_code == 403
    assert _attempt(world) == ("dialing", None)


def test_signed_callbacks_move_and_finish_the_attempt_once(world: dict[str, Any]) -> None:
    aid = world["attempt_id"]
    ringing = {"CallStatus": "ringing", "CallSid": "CA1"}
    assert _post(world["app"], aid, ringing, signature=_sign(aid, ringing)).json() == {"status": "ringing"}
    assert _attempt(world) == ("ringing", None)
    busy = {"CallStatus": "busy", "CallSid": "CA1", "SipResponseCode": "486"}
    assert _post(world["app"], aid, busy, signature=_sign(aid, busy)).json() == {"status": "finished"}
    assert _attempt(world) == ("finished", "busy")
    # Twilio retries callbacks: the second one changes nothing.
    assert _post(world["app"], aid, busy, signature=_sign(aid, busy)).json() == {"status": "already final"}
    with session_scope(world["runtime"].sessions) as session:
        target = session.execute(select(CallTarget.state, CallTarget.attempts)).one()
    assert target.attempts == 1 and target.state == "exhausted"
    assert world["pacer"].usage(world["scopes"])[0].in_use == 0  # the channel lease came back


def test_a_hang_up_mid_question_finishes_the_attempt_and_closes_its_survey(world: dict[str, Any]) -> None:
    """The citizen pressed 2 (not satisfied) and hung up before the reasons: a partial answer, kept."""
    aid = world["attempt_id"]
    answered = {"CallStatus": "in-progress", "CallSid": "CA1"}
    reply = _post(world["app"], aid, answered, signature=_sign(aid, answered))
    assert reply.json() == {"status": "in_survey"}
    started = datetime.now(UTC)
    with session_scope(world["runtime"].sessions) as session:
        attempt = session.get(CallAttempt, aid)
        assert attempt is not None
        session.add(
            SurveyResponse(
                channel="call", attempt_id=aid, dossier_id=attempt.dossier_id, agency_id=attempt.agency_id,
                field_id=attempt.field_id, questionnaire_version="v1", status="in_progress",
                satisfied=False, answered_via="dtmf", comment_status="none", started_at=started,
                answered_at=started,
            )
        )  # fmt: skip
    completed = {"CallStatus": "completed", "CallSid": "CA1", "CallDuration": "25"}
    reply = _post(world["app"], aid, completed, signature=_sign(aid, completed))
    assert reply.json() == {"status": "finished"}
    assert _attempt(world) == ("finished", "answered")
    with session_scope(world["runtime"].sessions) as session:
        response = session.scalars(select(SurveyResponse).where(SurveyResponse.attempt_id == aid)).one()
        survey = session.execute(select(CallAttempt.survey_outcome).where(CallAttempt.id == aid)).scalar_one()
    assert response.status == "partial" and response.satisfied is False and response.completed_at is not None
    assert survey == "partial"  # the campaign hears of a partial survey, not of a bare answered call


@pytest.mark.parametrize(
    ("answered_by", "outcome"),
    [
        ("machine_start", "machine"),
        ("machine_end_beep", "machine"),
        ("fax", "machine"),
        ("human", "answered"),
    ],
)
def test_answering_machine_detection_decides_the_outcome(
    world: dict[str, Any], answered_by: str, outcome: str
) -> None:
    """With machine detection on, Twilio adds AnsweredBy: a voicemail that picked up is no answer."""
    aid, app = world["attempt_id"], world["app"]
    answered = {"CallStatus": "in-progress", "CallSid": "CA1", "AnsweredBy": answered_by}
    assert _post(app, aid, answered, signature=_sign(aid, answered)).json() == {"status": "in_survey"}
    completed = dict(answered, CallStatus="completed", CallDuration="31")
    assert _post(app, aid, completed, signature=_sign(aid, completed)).json() == {"status": "finished"}
    assert _attempt(world) == ("finished", outcome)
    with session_scope(world["runtime"].sessions) as session:
        target = session.execute(select(CallTarget.attempts_by_outcome, CallTarget.last_outcome)).one()
    assert (
        target.last_outcome == outcome and target.attempts_by_outcome[outcome] == 1
    )  # the campaign hears it
    assert world["pacer"].usage(world["scopes"])[0].in_use == 0
