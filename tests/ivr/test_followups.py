"""Follow-up tasks queued when a survey ends: by name, to the right queue, never breaking the call."""

from __future__ import annotations

import logging
import time

import pytest
from celery import Celery

from callcenter.ivr.adapters.followups import RAISE_ALERT, TRANSCRIBE_COMMENT, SurveyFollowUps


class Recorder:
    def __init__(self) -> None:
        self.sent: list[tuple[str, tuple[object, ...], str]] = []

    def send_task(self, name: str, args: tuple[object, ...], queue: str) -> object:
        self.sent.append((name, args, queue))
        return None


@pytest.mark.parametrize(
    ("unsatisfied", "has_recording", "expected"),
    [
        (True, True, [(RAISE_ALERT, (7,), "analysis"), (TRANSCRIBE_COMMENT, (7,), "asr")]),
        (True, False, [(RAISE_ALERT, (7,), "analysis")]),
        (False, True, [(TRANSCRIBE_COMMENT, (7,), "asr")]),
        (False, False, []),
    ],
)
def test_what_is_queued(unsatisfied: bool, has_recording: bool, expected: list[object]) -> None:
    sender = Recorder()
    followups = SurveyFollowUps(sender)
    names = followups.survey_ended(7, unsatisfied=unsatisfied, has_recording=has_recording)
    assert sender.sent == expected and names == [name for name, _, _ in sender.sent]


def test_broker_down_is_logged_and_left_to_the_sweep(caplog: pytest.LogCaptureFixture) -> None:
    app = Celery("down", broker="redis://127.0.0.1:1/0")  # nothing listens on port 1
    app.conf.broker_transport_options = {"max_retries": 1}
    followups = SurveyFollowUps(app)
    started = time.monotonic()
    with caplog.at_level(logging.WARNING):
        names = followups.survey_ended(42, unsatisfied=True, has_recording=False)
    assert names == [] and followups.sent == 0
    assert time.monotonic() - started < 30
    assert "survey response 42: could not queue analysis.raise_alert" in caplog.text
    assert "periodic sweep will pick it up" in caplog.text
