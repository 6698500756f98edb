"""Campaign errors, and the translation of pydantic's errors into ones that name the field at fault."""

from __future__ import annotations

import re

from pydantic import ValidationError as PydanticValidationError

from callcenter.core.errors import ConflictError, NotFound, ValidationError


class CampaignNotFound(NotFound):
    """No campaign with that id."""


class InvalidTransition(ConflictError):
    """A lifecycle change that the campaign's current status does not allow."""


_FIELD_PREFIX = re.compile(r"^([A-Za-z_][\w.\[\]]*): ")


def field_error(exc: PydanticValidationError, prefix: str) -> ValidationError:
    """The first pydantic error as a :class:`ValidationError` naming ``prefix.<field path>``.

    Model-level validators of this package start their message with the field path
    (``"tiers[2].margin: margins must not increase"``), which pydantic cannot locate itself.
    """
    err = exc.errors()[0]
    message = str(err["msg"]).removeprefix("Value error, ")
    parts = [str(part) for part in err["loc"]]
    located = _FIELD_PREFIX.match(message)
    if err.get("type") == "value_error" and located:
        parts.append(located.group(1))
        message = message[located.end() :]
    loc = ".".join(parts)
    if err.get("type") == "extra_forbidden":
        message = "unknown setting"
    return ValidationError(message, field=f"{prefix}.{loc}" if loc else prefix)


__all__ = [
    "CampaignNotFound",
    "ConflictError",
    "InvalidTransition",
    "NotFound",
    "ValidationError",
    "field_error",
]
