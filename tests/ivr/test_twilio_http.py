"""Twilio webhooks: TwiML checked against what Twilio accepts, signatures computed by twilio's validator."""

from __future__ import annotations

import base64
import itertools
import json
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from pydantic import SecretStr
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session
from twilio.request_validator import RequestValidator

from callcenter.core.clock import SystemClock
from callcenter.core.db import make_session_factory
from callcenter.core.models import OptOut
from callcenter.core.pii import PiiCipher
from callcenter.core.runtime import Runtime
from callcenter.core.settings import Settings
from callcenter.ivr.call_token import call_token, call_token_key
from callcenter.ivr.models import SurveyResponse
from callcenter.ivr.settings import IvrSettings
from callcenter.ivr.tts import PromptLibrary, default_engines
from callcenter.ivr.twilio_http import StateCodec, TwilioIvr, router
from tests.ivr.conftest import forget_opt_out, make_dossier

TOKEN = "test-auth-token-0123456789abcdef"
BASE = "https://ivr.example.vn"
SIGNER = RequestValidator(TOKEN)
TOKEN_KEY = call_token_key(Settings(env="test").pii_key_bytes)  # the call token the dialer adds

# What Twilio's voice TwiML accepts for the verbs we use (attributes, children, enumerations).
TWIML: dict[str, dict[str, object]] = {
    "Response": {
        "attrs": set(),
        "children": {"Play", "Gather", "Record", "Redirect", "Hangup", "Pause", "Say"},
    },
    "Play": {"attrs": {"loop", "digits"}, "children": set(), "text": "url"},
    "Gather": {
        "attrs": {"action", "method", "input", "finishOnKey", "timeout", "numDigits", "language", "hints",
                  "speechTimeout", "actionOnEmptyResult", "partialResultCallback", "profanityFilter",
                  "speechModel", "enhanced"},
        "children": {"Play", "Say", "Pause"},
    },
    "Record": {
        "attrs": {"action", "method", "timeout", "finishOnKey", "maxLength", "playBeep", "trim",
                  "recordingStatusCallback", "recordingStatusCallbackMethod", "recordingStatusCallbackEvent",
                  "transcribe", "transcribeCallback"},
        "children": set(),
    },
    "Redirect": {"attrs": {"method"}, "children": set(), "text": "url"},
    "Hangup": {"attrs": set(), "children": set()},
}  # fmt: skip


def check_twiml(xml: str) -> ET.Element:
    """Parse TwiML and check every verb, attribute and value against Twilio's rules."""
    root = ET.fromstring(xml)
    assert root.tag == "Response"

    def walk(node: ET.Element) -> None:
        rules = TWIML[node.tag]
        assert set(node.attrib) <= rules["attrs"], (node.tag, node.attrib)  # type: ignore[operator]
        for child in node:
            assert child.tag in rules["children"], (node.tag, child.tag)  # type: ignore[operator]
            walk(child)
        if rules.get("text") == "url":
            assert (node.text or "").startswith(BASE + "/ivr/twilio/"), node.text
        for attr in ("action",):
            if attr in node.attrib:
                assert node.attrib[attr].startswith(BASE + "/ivr/twilio/step?")
        if "method" in node.attrib:
            assert node.attrib["method"] in ("GET", "POST")
        if node.tag == "Gather":
            assert node.attrib["input"] in ("dtmf", "speech", "dtmf speech")
            assert node.attrib["language"] == "vi-VN"
            assert node.attrib["finishOnKey"] in set("0123456789*#") | {""}
            assert int(node.attrib["timeout"]) >= 1 and int(node.attrib["numDigits"]) >= 1
            assert node.attrib["actionOnEmptyResult"] in ("true", "false")
        if node.tag == "Record":
            assert 1 <= int(node.attrib["maxLength"]) <= 14400 and node.attrib["trim"] in (
                "trim-silence",
                "do-not-trim",
            )
            assert node.attrib["playBeep"] in ("true", "false")

    walk(root)
    return root


@dataclass
class Call:
    client: TestClient
    engine: Engine
    attempt_id: int
    dossier_id: int
    phone_hash: str
    next_url: str = ""

    def signed_post(self, url: str, params: dict[str, str], signature: str | None = None) -> object:
        sig = SIGNER.compute_signature(url, params) if signature is None else signature
        return self.client.post(url.removeprefix(BASE), data=params, headers={"X-Twilio-Signature": sig})

    @property
    def start_url(self) -> str:
        """The voice webhook as the dialer gives it to Twilio: the ids and their call token."""
        token = call_token(TOKEN_KEY, attempt_id=self.attempt_id, dossier_id=self.dossier_id)
        return (
            f"{BASE}/ivr/twilio/voice?attempt_id={self.attempt_id}&dossier_id={self.dossier_id}&token={token}"
        )

    def answer(self, **params: str) -> ET.Element:
        """POST the last TwiML's action (or the call's start) with Twilio's fields; return the TwiML."""
        url = self.next_url or self.start_url
        response = self.signed_post(url, {"CallSid": "CA123", "CallStatus": "in-progress", **params})
        assert response.status_code == 200, response.text  # type: ignore[attr-defined]
        assert response.headers["content-type"].startswith("application/xml")  # type: ignore[attr-defined]
        root = check_twiml(response.text)  # type: ignore[attr-defined]
        actions = [n for n in root.iter() if n.tag in ("Gather", "Record")]
        self.next_url = actions[0].attrib["action"] if actions else ""
        return root

    def row(self) -> SurveyResponse:
        with Session(self.engine) as session:
            row = session.execute(
                select(SurveyResponse).where(SurveyResponse.attempt_id == self.attempt_id)
            ).scalar_one()
            _ = row.reasons
            return row


_attempts = itertools.count(900_000)


@pytest.fixture(scope="module")
def prompt_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("twilio-prompts")


@pytest.fixture(params=["sqlite", "pg"])
def call(request: pytest.FixtureRequest, prompt_dir: Path, cipher: PiiCipher) -> Iterator[Call]:
    engine: Engine = request.getfixturevalue(f"{request.param}_engine")
    settings = Settings(env="test")
    runtime = Runtime(settings, engine, make_session_factory(engine), cipher, SystemClock())
    ivr_settings = IvrSettings(
        CALLCENTER_IVR_PUBLIC_BASE_URL=BASE, CALLCENTER_IVR_TWILIO_AUTH_TOKEN=SecretStr(TOKEN)
    )
    ivr = TwilioIvr.from_runtime(runtime, ivr_settings)
    ivr.prompts = PromptLibrary(prompt_dir, default_engines(gtts_timeout=0.3))
    app = FastAPI()
    app.state.runtime = runtime
    app.state.ivr_twilio = ivr
    app.include_router(router)
    with Session(engine) as session:
        dossier = make_dossier(session, cipher, phone=f"+8490{next(_attempts) % 10_000_000:07d}")
        session.commit()
        ids = dossier.id, dossier.phone_hash
    with TestClient(app) as client:
        yield Call(client, engine, next(_attempts), ids[0], ids[1])
    forget_opt_out(engine, ids[1])


def plays(node: ET.Element) -> list[str]:
    return [p.text or "" for p in node.iter("Play")]


def test_answered_call_greets_and_gathers_with_barge_in(call: Call) -> None:
    root = call.answer()
    (gather,) = root.findall("Gather")
    assert gather.attrib["input"] == "dtmf speech" and gather.attrib["numDigits"] == "1"
    assert "hài lòng" in gather.attrib["hints"]
    assert len(plays(gather)) >= 3  # greeting, dossier, question: all interruptible
    assert call.row().status == "in_progress"
    # the audio is served to a signed GET, as MP3
    url = plays(gather)[1]
    audio = call.client.get(
        url.removeprefix(BASE), headers={"X-Twilio-Signature": SIGNER.compute_signature(url, {})}
    )
    assert (
        audio.status_code == 200
        and audio.headers["content-type"] == "audio/mpeg"
        and len(audio.content) > 1000
    )


def test_unsatisfied_with_reasons_then_no_comment(call: Call) -> None:
    call.answer()
    reasons = call.answer(Digits="2").find("Gather")
    assert reasons is not None
    assert reasons.attrib["numDigits"] == "9" and reasons.attrib["finishOnKey"] == "#"
    assert call.row().satisfied is False  # stored as it came
    call.answer(Digits="46")
    root = call.answer()  # Gather with actionOnEmptyResult: empty = no comment
    assert [child.tag for child in root] == ["Play", "Play", "Hangup"]
    row = call.row()
    assert row.status == "completed" and sorted(r.reason_code for r in row.reasons) == [4, 6]


def test_spoken_answer(call: Call) -> None:
    call.answer()
    call.answer(SpeechResult="dạ hài lòng", Confidence="0.91")
    row = call.row()
    assert row.satisfied is True and row.answered_via == "speech"


def test_other_reason_is_recorded(call: Call) -> None:
    call.answer()
    call.answer(Digits="2")
    root = call.answer(Digits="9")
    assert [child.tag for child in root] == ["Play", "Record", "Redirect"]
    record = root.find("Record")
    assert record is not None and record.attrib["maxLength"] == "30" and record.attrib["finishOnKey"] == "#"
    recording = "https://api.twilio.com/2010-04-01/Accounts/AC1/Recordings/RE1"
    root = call.answer(RecordingUrl=recording, RecordingDuration="7", Digits="#")
    assert root[-1].tag == "Hangup"
    row = call.row()
    assert row.recording_ref == recording and row.comment_status == "pending" and row.status == "completed"


def test_nothing_recorded_follows_the_redirect(call: Call) -> None:
    call.answer()
    call.answer(Digits="2")
    root = call.answer(Digits="9")
    redirect = root.find("Redirect")
    assert redirect is not None and redirect.text
    response = call.signed_post(redirect.text, {"CallSid": "CA123"})
    assert response.status_code == 200  # type: ignore[attr-defined]
    assert check_twiml(response.text)[-1].tag == "Hangup"  # type: ignore[attr-defined]
    assert call.row().recording_ref is None


def test_opt_out(call: Call) -> None:
    call.answer()
    call.answer(Digits="0")
    root = call.answer(Digits="1")
    assert root[-1].tag == "Hangup"
    assert call.row().status == "opted_out"
    with Session(call.engine) as session:
        assert session.execute(select(OptOut).where(OptOut.phone_hash == call.phone_hash)).scalar_one()


def test_call_status_belongs_to_the_dialer(call: Call) -> None:
    """One status callback only (the dialer's, which also finishes the attempt): none here."""
    call.answer()
    url = f"{BASE}/ivr/twilio/status?attempt_id={call.attempt_id}"
    assert call.signed_post(url, {"CallStatus": "completed"}).status_code in (404, 405)  # type: ignore[attr-defined]
    assert call.row().status == "in_progress"


@pytest.mark.parametrize("token", ["", "&token=AAAAAAAAAAAAAAAAAAAAAA", "dossier"])
def test_a_call_the_dialer_did_not_sign_hangs_up_unsurveyed(call: Call, token: str) -> None:
    """Signed by Twilio, but no (or another call's) call token: not a word of the survey, nothing stored."""
    if token == "dossier":  # the genuine token of this attempt for another dossier
        token = "&token=" + call_token(TOKEN_KEY, attempt_id=call.attempt_id, dossier_id=call.dossier_id + 1)
    url = f"{BASE}/ivr/twilio/voice?attempt_id={call.attempt_id}&dossier_id={call.dossier_id}{token}"
    response = call.signed_post(url, {"CallSid": "CA123", "CallStatus": "in-progress"})
    assert response.status_code == 200  # type: ignore[attr-defined]
    root = check_twiml(response.text)  # type: ignore[attr-defined]
    assert [n.tag for n in root] == ["Hangup"]
    with Session(call.engine) as session:
        stored = session.execute(select(SurveyResponse).where(SurveyResponse.attempt_id == call.attempt_id))
        assert stored.first() is None


def test_unsigned_or_wrongly_signed_requests_get_403(call: Call) -> None:
    start = call.start_url
    path = start.removeprefix(BASE)
    assert call.client.post(path, data={"CallSid": "CA1"}).status_code == 403
    assert call.signed_post(start, {"CallSid": "CA1"}, signature="bm90IGEgc2lnbmF0dXJl").status_code == 403  # type: ignore[attr-defined]
    other = RequestValidator("another-account-token").compute_signature(start, {"CallSid": "CA1"})
    assert call.signed_post(start, {"CallSid": "CA1"}, signature=other).status_code == 403  # type: ignore[attr-defined]
    # signed for other form fields: a tampered Digits is refused
    call.answer()
    signed_for = SIGNER.compute_signature(call.next_url, {"Digits": "1"})
    forged = call.client.post(
        call.next_url.removeprefix(BASE), data={"Digits": "2"}, headers={"X-Twilio-Signature": signed_for}
    )
    assert forged.status_code == 403
    assert call.client.get("/ivr/twilio/audio/" + "0" * 32 + ".mp3").status_code == 403
    assert call.row().satisfied is None  # nothing was stored by the refused requests


def test_tampered_or_foreign_state_is_refused(call: Call) -> None:
    call.answer()
    query = parse_qs(urlparse(call.next_url).query)
    state = query["state"][0]
    forged = state[:-4] + ("AAAA" if state[-4:] != "AAAA" else "BBBB")
    url = call.next_url.replace(state, forged)
    assert call.signed_post(url, {"Digits": "1"}).status_code == 400  # type: ignore[attr-defined]
    foreign = call.next_url.replace(f"attempt_id={call.attempt_id}", f"attempt_id={call.attempt_id + 1}")
    assert call.signed_post(foreign, {"Digits": "1"}).status_code == 400  # type: ignore[attr-defined]


def _state_parts(state: str) -> tuple[bytes, bytes]:
    """A state token's 16-byte signature and its JSON body."""
    raw = base64.urlsafe_b64decode(state + "=" * (-len(state) % 4))
    return raw[:16], raw[16:]


def _resigned(state: str, key: bytes) -> str:
    """The same well-formed state (this call's ids, a fresh time, the genuine snapshot) signed with
    another key: only its signature is wrong."""
    body = json.loads(_state_parts(state)[1])
    return StateCodec(key).encode(body["f"], attempt_id=body["a"], dossier_id=body["d"])


def _blanked(state: str) -> str:
    """The genuine body behind a signature of zeros."""
    return base64.urlsafe_b64encode(bytes(16) + _state_parts(state)[1]).decode().rstrip("=")


def test_a_well_formed_state_with_a_wrong_signature_is_refused(call: Call) -> None:
    call.answer()
    state = parse_qs(urlparse(call.next_url).query)["state"][0]
    for forged in (_resigned(state, b"a key derived from another secret"), _blanked(state)):
        assert forged != state
        response = call.signed_post(call.next_url.replace(state, forged), {"Digits": "1"})
        assert response.status_code == 400  # type: ignore[attr-defined]
        assert "signature does not match" in response.json()["detail"]  # type: ignore[attr-defined]
        assert call.row().satisfied is None  # the forged answer was not stored
    call.answer(Digits="1")  # the genuine state still works: only the signature was refused
    assert call.row().satisfied is True


def test_state_codec_refuses_a_state_signed_with_another_key() -> None:
    codec = StateCodec(b"k" * 32)
    token = StateCodec(b"x" * 32).encode({"x": 1}, attempt_id=1, dossier_id=2)
    with pytest.raises(ValueError, match="signature does not match"):
        codec.decode(token, attempt_id=1, dossier_id=2)
    assert codec.decode(_resigned(token, b"k" * 32), attempt_id=1, dossier_id=2) == {"x": 1}


def test_state_codec_expiry() -> None:
    now = [1_000_000.0]
    codec = StateCodec(b"k" * 32, now=lambda: now[0])
    token = codec.encode({"x": 1}, attempt_id=1, dossier_id=2)
    assert codec.decode(token, attempt_id=1, dossier_id=2) == {"x": 1}
    now[0] += 4 * 3600
    with pytest.raises(ValueError, match="expired"):
        codec.decode(token, attempt_id=1, dossier_id=2)
