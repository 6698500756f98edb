"""Error families shared across domains."""

from __future__ import annotations


class CallCenterError(Exception):
    """Base of every error the survey caller raises on purpose."""


class ValidationError(CallCenterError):
    """Bad input: names what is wrong so an operator can fix it (row, field, command)."""

    def __init__(self, message: str, *, field: str | None = None, row: str | int | None = None) -> None:
        self.field = field
        self.row = row
        where = []
        if row is not None:
            where.append(f"row {row}")
        if field is not None:
            where.append(f"field '{field}'")
        prefix = (", ".join(where) + ": ") if where else ""
        super().__init__(prefix + message)
        self.reason = message


class NotFound(CallCenterError):
    """A referenced object does not exist."""


class TransientError(CallCenterError):
    """A failure worth retrying (network, 5xx, lost connection)."""


class ConflictError(CallCenterError):
    """A state change that lost a race or is not allowed from the current state."""
