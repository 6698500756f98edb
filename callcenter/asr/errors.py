"""Errors of the speech domain."""

from __future__ import annotations

from callcenter.core.errors import CallCenterError, TransientError, ValidationError


class AsrError(CallCenterError):
    """Base of the speech domain's errors."""


class AsrConfigError(AsrError):
    """The configured engine cannot start (missing model, engine not installed); names the setting."""


class AudioError(AsrError, ValidationError):
    """Audio that cannot be recognised as given (bad WAV, wrong sample width, empty buffer)."""


class RecognitionFailed(AsrError):
    """The engine itself failed on an utterance."""


class RecognizerUnavailable(AsrError, TransientError):
    """The recognition worker pool broke (a worker died); worth retrying once it is rebuilt."""
