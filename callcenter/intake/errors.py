"""Intake errors. A bad row is not an exception (it is quarantined); these stop a whole import."""

from __future__ import annotations

from callcenter.core.errors import CallCenterError, TransientError


class IntakeError(CallCenterError):
    """An import that cannot proceed; the message names the file, column or request at fault."""


class MappingError(IntakeError):
    """The mapping file is invalid, or a file's header lacks a required column."""


class HeaderError(MappingError):
    """A row taken for a file's header lacks a required column; ``recognised``: how many it names."""

    def __init__(self, message: str, *, recognised: int) -> None:
        super().__init__(message)
        self.recognised = recognised


class SourceFileError(IntakeError):
    """A file that cannot be read as a dossier export (encoding, format, empty)."""


class ApiAuthError(IntakeError):
    """The one-stop API refused our token (401/403): retrying will not help."""


class ApiError(IntakeError):
    """The one-stop API answered with something we cannot use (4xx, bad JSON)."""


class ApiUnavailable(TransientError, IntakeError):
    """Timeouts, connection errors, 5xx or 429 that outlasted every retry."""
