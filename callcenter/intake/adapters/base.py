"""The one interface every intake connector implements."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Protocol

from callcenter.intake.mapping import values_dict
from callcenter.intake.normalise import FieldError


# Not frozen: a frozen dataclass pays a setattr call per field, a million rows per file.
@dataclass(slots=True)
class SourceRow:
    """One record as read: where it is (``row 17``, ``id HS-1``) and its values.

    ``values`` are in :data:`callcenter.intake.mapping.TARGET_FIELDS` order (a plain tuple: cheap to
    hash and to hand to a worker process); :meth:`as_dict` names them. ``raw`` is what the source
    held (a file row's cells, the API's JSON object), kept only for the quarantine. ``problem`` is
    set when the reader could not even split the record.
    """

    ref: str
    values: tuple[Any, ...]
    raw: Any = None
    problem: FieldError | None = None

    def as_dict(self) -> dict[str, Any]:
        return values_dict(self.values) if self.values else {}


class Connector(Protocol):
    """A source of dossier records: a file or an API sync."""

    kind: str  # "file" | "api"
    location: str  # path or URL, for the import run

    def rows(self) -> Iterator[SourceRow]:
        """Yield the records one by one; raise an ``IntakeError`` only if the whole source is unusable."""
        ...

    def raw_record(self, raw: Any) -> Any:
        """The raw form to keep in quarantine (e.g. the file's header zipped with the row's cells)."""
        ...
