"""Shared vocabulary of call and survey outcomes, used by the dialer, campaigns and analysis."""

from __future__ import annotations

import enum


class CallOutcome(enum.StrEnum):
    """How one call attempt ended on the network side (mapped from Q.850, AMI and Twilio)."""

    ANSWERED = "answered"
    BUSY = "busy"
    NO_ANSWER = "no_answer"
    REJECTED = "rejected"
    INVALID_NUMBER = "invalid_number"
    CONGESTION = "congestion"
    FAILED = "failed"
    MACHINE = "machine"  # answering machine / voicemail
    DROPPED = "dropped"  # answered, then cut before the survey finished


# How an operator reads them (CLI tables, reports).
CALL_OUTCOME_LABELS_VI: dict[str, str] = {
    CallOutcome.ANSWERED: "nghe máy",
    CallOutcome.BUSY: "máy bận",
    CallOutcome.NO_ANSWER: "không nghe máy",
    CallOutcome.REJECTED: "từ chối cuộc gọi",
    CallOutcome.INVALID_NUMBER: "số không hợp lệ",
    CallOutcome.CONGESTION: "nghẽn mạng",
    CallOutcome.FAILED: "lỗi cuộc gọi",
    CallOutcome.MACHINE: "hộp thư thoại",
    CallOutcome.DROPPED: "rớt cuộc gọi",
}


class SurveyOutcome(enum.StrEnum):
    """What an answered call yielded for the survey."""

    COMPLETED = "completed"  # satisfaction answered (and reasons, if unsatisfied)
    PARTIAL = "partial"  # hung up midway; answers so far are kept
    OPTED_OUT = "opted_out"  # pressed 0 and confirmed: never call again
    NO_INPUT = "no_input"  # answered but never gave a usable answer
    NONE = "none"  # not answered
