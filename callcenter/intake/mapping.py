"""The field mapping (YAML, validated with pydantic): source column and API names → dossier fields.

The mapping is configuration, not code: a province whose one-stop system names things differently
ships its own YAML file. This module loads it, validates it and answers two questions: which column of
a file's header feeds which field, and which JSON path of an API record does.
"""

from __future__ import annotations

import hashlib
import operator
import re
import unicodedata
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from callcenter.intake.errors import HeaderError, MappingError
from callcenter.intake.models import DossierStatus

TARGET_FIELDS = (
    "code",
    "submitter_name",
    "phone",
    "national_id",
    "is_organisation",
    "agency_name",
    "agency_code",
    "field_name",
    "field_code",
    "procedure_name",
    "received_at",
    "due_at",
    "returned_at",
    "status",
    "updated_at",
)
# A file or API must carry these (agency and field by name or by code).
REQUIRED_FIELDS = ("code", "submitter_name", "phone", "received_at")
REQUIRED_ONE_OF = (("agency_name", "agency_code"), ("field_name", "field_code"))


class SourceField(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    file: tuple[str, ...] = ()
    api: str | None = None

    @field_validator("file", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return (value,) if isinstance(value, str) else value


class FieldMap(BaseModel):
    """One entry per dossier field; a typo in a target name is refused (``extra="forbid"``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    code: SourceField
    submitter_name: SourceField
    phone: SourceField
    national_id: SourceField = SourceField()
    is_organisation: SourceField = SourceField()
    agency_name: SourceField = SourceField()
    agency_code: SourceField = SourceField()
    field_name: SourceField = SourceField()
    field_code: SourceField = SourceField()
    procedure_name: SourceField = SourceField()
    received_at: SourceField
    due_at: SourceField = SourceField()
    returned_at: SourceField = SourceField()
    status: SourceField = SourceField()
    updated_at: SourceField = SourceField()


class ApiEnvelope(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    path: str = "/api/v1/dossiers"
    items_key: str = "items"
    has_more_key: str = "has_more"
    page_param: str = "page"
    page_size_param: str = "page_size"
    first_page: int = 1
    updated_since_param: str = "updated_since"


class BooleanWords(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    true: tuple[str, ...] = Field(default=("x", "1", "true", "yes"), alias="true")
    false: tuple[str, ...] = Field(default=("0", "false", "no"), alias="false")


class MappingConfig(BaseModel):
    """The whole mapping file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    version: int = Field(ge=1, le=1)
    fields: FieldMap
    statuses: dict[DossierStatus, tuple[str, ...]]
    booleans: BooleanWords = BooleanWords()
    api: ApiEnvelope = ApiEnvelope()

    @field_validator("statuses")
    @classmethod
    def _statuses_do_not_overlap(
        cls, value: dict[DossierStatus, tuple[str, ...]]
    ) -> dict[DossierStatus, tuple[str, ...]]:
        seen: dict[str, DossierStatus] = {}
        for status, words in value.items():
            for word in words:
                key = fold_word(word)
                if key in seen and seen[key] != status:
                    raise ValueError(f"status word '{word}' is listed under both {seen[key]} and {status}")
                seen[key] = status
        return value

    def fingerprint(self) -> str:
        """A digest of the whole mapping: records read under another mapping are re-processed."""
        return hashlib.sha256(self.model_dump_json().encode()).hexdigest()[:16]

    def source_field(self, target: str) -> SourceField:
        result: SourceField = getattr(self.fields, target)
        return result

    def status_lookup(self) -> dict[str, DossierStatus]:
        """Folded status word → status (see :func:`fold_word`)."""
        return {fold_word(word): status for status, words in self.statuses.items() for word in words}

    def boolean_lookup(self) -> dict[str, bool]:
        table = {fold_word(word): True for word in self.booleans.true}
        table.update({fold_word(word): False for word in self.booleans.false})
        return table


def fold_header(text: str) -> str:
    """Header matching key: no BOM, no surrounding or repeated spaces, NFC, case-folded."""
    text = unicodedata.normalize("NFC", text.replace("\ufeff", ""))
    return " ".join(text.split()).casefold()


def fold_word(text: str) -> str:
    """Matching key for status and yes/no words: like :func:`fold_header`, also without diacritics.

    Vietnamese spells the same word with the tone mark on different vowels ("hủy"/"huỷ") and
    exports sometimes lose diacritics altogether; status words are few enough that this never
    makes two of them collide (the loader checks).
    """
    decomposed = unicodedata.normalize("NFD", fold_header(text))
    stripped = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return stripped.replace("đ", "d")


def load_mapping(path: Path | str) -> MappingConfig:
    """Read and validate a mapping file; raise :class:`MappingError` naming the file and the key."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise MappingError(f"cannot read mapping file {path}: {exc.strerror}") from exc
    except UnicodeDecodeError as exc:
        raise MappingError(
            f"mapping file {path} is not UTF-8 text (byte {exc.start}); save it as UTF-8"
        ) from exc
    except yaml.YAMLError as exc:
        raise MappingError(f"mapping file {path} is not valid YAML: {exc}") from exc
    try:
        return MappingConfig.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors(include_url=False)
        )
        raise MappingError(f"mapping file {path} is invalid: {problems}") from exc


@dataclass(frozen=True)
class ColumnMap:
    """Which column index of a file feeds which dossier field, resolved once from the header."""

    columns: Mapping[str, int]
    header: tuple[str, ...]

    @property
    def positions(self) -> tuple[int, ...]:
        return tuple(self.columns.get(target, -1) for target in TARGET_FIELDS)

    def extractor(self) -> Callable[[Sequence[Any]], tuple[Any, ...]]:
        """A function: row cells → values in :data:`TARGET_FIELDS` order (``None`` where absent)."""
        positions = self.positions
        if -1 not in positions and len(positions) > 1:
            # Every field has a column: one C-level itemgetter call per row; short rows fall back.
            picker = operator.itemgetter(*positions)
            needed = max(positions) + 1

            def extract_all(row: Sequence[Any]) -> tuple[Any, ...]:
                if len(row) >= needed:
                    return picker(row)  # type: ignore[no-any-return]
                return tuple(row[i] if i < len(row) else None for i in positions)

            return extract_all

        def extract(row: Sequence[Any]) -> tuple[Any, ...]:
            width = len(row)
            return tuple(row[i] if 0 <= i < width else None for i in positions)

        return extract


_DIGITS = re.compile(r"\d{3}")  # a phone, a date, a code: what no column name holds


def resolve_header(mapping: MappingConfig, header: Sequence[str], *, where: str) -> ColumnMap:
    """Match a file's header to the mapping, or raise :class:`MappingError` naming what is missing."""
    folded = [fold_header(str(cell)) if cell is not None else "" for cell in header]
    position: dict[str, int] = {}
    for index, key in enumerate(folded):
        if key and key not in position:
            position[key] = index
    columns: dict[str, int] = {}
    for target in TARGET_FIELDS:
        for alias in mapping.source_field(target).file:
            found = position.get(fold_header(alias))
            if found is not None:
                columns[target] = found
                break
    missing = [
        " / ".join(f'"{a}"' for a in mapping.source_field(t).file[:2]) or t
        for t in REQUIRED_FIELDS
        if t not in columns
    ]
    for group in REQUIRED_ONE_OF:
        if not any(t in columns for t in group):
            missing.append(" or ".join(f'"{(mapping.source_field(t).file or (t,))[0]}"' for t in group))
    if missing:
        cells = [str(h) for h in header if h]
        if any(_DIGITS.search(c) for c in cells):
            # Digits in a header row mean it is a record (a file without a header, or the wrong row
            # taken for it): its cells are a citizen's name and phone and must not reach an error.
            present = "none: the row holds data, not column names (is the header row missing?)"
        else:
            present = ", ".join(f'"{c}"' for c in cells) or "(none)"
        hint = ""
        if any(_looks_like_mojibake(c) for c in cells):
            hint = " The headers look like UTF-8 text decoded with the wrong encoding; re-export as UTF-8."
        raise HeaderError(
            f"{where}: required column(s) missing: {', '.join(missing)}. Columns found: {present}.{hint}",
            recognised=len(columns),
        )
    return ColumnMap(columns=columns, header=tuple(str(h) if h is not None else "" for h in header))


def _looks_like_mojibake(text: str) -> bool:
    # UTF-8 bytes of Vietnamese letters read as Latin-1/cp1252 start with Ã, Ä, Æ or á» …
    return any(marker in text for marker in ("Ã", "Ä‘", "Æ", "á»", "áº"))


def api_paths(mapping: MappingConfig) -> tuple[tuple[str, ...] | None, ...]:
    """The JSON path (split on dots) of each target field, in :data:`TARGET_FIELDS` order."""
    paths: list[tuple[str, ...] | None] = []
    for target in TARGET_FIELDS:
        api_name = mapping.source_field(target).api
        paths.append(tuple(api_name.split(".")) if api_name else None)
    return tuple(paths)


def extract_api_record(record: Mapping[str, Any], paths: Sequence[tuple[str, ...] | None]) -> tuple[Any, ...]:
    """The mapped values of one API record in :data:`TARGET_FIELDS` order (``None`` where absent)."""
    values: list[Any] = []
    for path in paths:
        node: Any = record if path else None
        for key in path or ():
            node = node.get(key) if isinstance(node, Mapping) else None
            if node is None:
                break
        values.append(node)
    return tuple(values)


def values_dict(values: Sequence[Any]) -> dict[str, Any]:
    """Values in :data:`TARGET_FIELDS` order → a dict by dossier field (what the normaliser reads)."""
    return dict(zip(TARGET_FIELDS, values, strict=True))
