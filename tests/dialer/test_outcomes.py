"""The one outcome mapping: Q.850 causes, AMI OriginateResponse reasons + DialStatus, Twilio statuses."""

from __future__ import annotations

import pytest

from callcenter.core.outcomes import CallOutcome as O
from callcenter.dialer.outcomes import (
    AmiCallFacts,
    classify_ami,
    classify_twilio,
    outcome_after_answer,
    outcome_for_cause,
    outcome_for_dial_status,
    twilio_is_final,
)


@pytest.mark.parametrize(
    ("cause", "outcome"),
    [
        (16, None), (0, None), (31, None),
        (17, O.BUSY), (18, O.NO_ANSWER), (19, O.NO_ANSWER), (21, O.REJECTED),
        (27, O.FAILED), (28, O.INVALID_NUMBER), (1, O.INVALID_NUMBER), (34, O.CONGESTION),
        (38, O.CONGESTION), (41, O.CONGESTION), (999, O.FAILED), (None, None),
    ],
)  # fmt: skip
def test_q850_causes(cause: int | None, outcome: O | None) -> None:
    assert outcome_for_cause(cause) == outcome


def test_answered_call_cut_by_the_network_is_dropped() -> None:
    assert outcome_after_answer(16) is O.ANSWERED
    assert outcome_after_answer(0) is O.ANSWERED  # the robot's own AGI HANGUP
    assert outcome_after_answer(38) is O.DROPPED
    assert outcome_after_answer(41) is O.DROPPED


def _facts(
    reason: int | None,
    *,
    began: bool = True,
    status: str | None = None,
    answered: bool = False,
    causes: tuple[int, ...] = (0, 0),
) -> AmiCallFacts:
    return AmiCallFacts(reason, began, status, answered, causes)


@pytest.mark.parametrize(
    ("facts", "expected"),
    [
        (_facts(4, status="ANSWER", answered=True, causes=(16, 16)), (O.ANSWERED, 16)),
        (_facts(5, status="BUSY", causes=(0, 17)), (O.BUSY, 17)),
        (_facts(8, status="CONGESTION", causes=(34, 0)), (O.CONGESTION, 34)),
        (_facts(3, causes=(19, 19)), (O.NO_ANSWER, 19)),  # Originate timeout: no DialEnd at all
        # Reason 0 is ambiguous: the callee gave up ringing (DialEnd NOANSWER, cause 19) ...
        (_facts(0, status="NOANSWER", causes=(19, 19)), (O.NO_ANSWER, 19)),
        # ... or nothing was ever dialled (no such extension: causes 0/0, no Dial events).
        (_facts(0, began=False, causes=(0, 0)), (O.INVALID_NUMBER, 0)),
        # ... or a SIP trunk said why.
        (_facts(0, began=False, causes=(28,)), (O.INVALID_NUMBER, 28)),
        (_facts(0, status="CHANUNAVAIL", causes=(38,)), (O.FAILED, 38)),
        (_facts(0, began=False, causes=()), (O.FAILED, None)),  # no channel was even created
        (_facts(1, causes=(0,)), (O.REJECTED, 0)),
        (_facts(1, causes=(21,)), (O.REJECTED, 21)),
        (_facts(4, answered=True, causes=(38, 16)), (O.DROPPED, 38)),
    ],
)
def test_ami_classification(facts: AmiCallFacts, expected: tuple[O, int | None]) -> None:
    assert classify_ami(facts) == expected


def test_dial_status() -> None:
    assert outcome_for_dial_status("busy") is O.BUSY
    assert outcome_for_dial_status("NOANSWER") is O.NO_ANSWER
    assert outcome_for_dial_status("CHANUNAVAIL") is O.FAILED
    assert outcome_for_dial_status("") is None
    assert outcome_for_dial_status("SOMETHING_NEW") is None


@pytest.mark.parametrize(
    ("status", "answered_by", "sip", "outcome"),
    [
        ("completed", None, None, O.ANSWERED),
        ("completed", "human", None, O.ANSWERED),
        ("completed", "machine_end_beep", None, O.MACHINE),
        ("completed", "fax", None, O.MACHINE),
        ("busy", None, None, O.BUSY),
        ("no-answer", None, None, O.NO_ANSWER),
        ("canceled", None, None, O.NO_ANSWER),
        ("failed", None, 404, O.INVALID_NUMBER),
        ("failed", None, 603, O.REJECTED),
        ("failed", None, 503, O.CONGESTION),
        ("failed", None, None, O.FAILED),
    ],
)
def test_twilio_statuses(status: str, answered_by: str | None, sip: int | None, outcome: O) -> None:
    assert classify_twilio(status, answered_by=answered_by, sip_response_code=sip) is outcome


def test_twilio_unknown_status_is_an_error_not_a_guess() -> None:
    with pytest.raises(ValueError, match="unknown Twilio CallStatus"):
        classify_twilio("teleported")
    assert twilio_is_final("completed") and not twilio_is_final("ringing")
