"""Intake fixtures: the default mapping, normalisation rules, a fixed 'now', CSV writing helpers."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest
from intake_helpers import HEADER, NOW, CsvWriter

from callcenter.intake.mapping import MappingConfig, load_mapping
from callcenter.intake.normalise import Rules
from callcenter.intake.settings import DEFAULT_MAPPING_PATH


@pytest.fixture(scope="session")
def mapping() -> MappingConfig:
    return load_mapping(DEFAULT_MAPPING_PATH)


@pytest.fixture
def rules(mapping: MappingConfig) -> Rules:
    return Rules(mapping)


@pytest.fixture
def now() -> datetime:
    return NOW


@pytest.fixture
def write_csv_file(tmp_path: Path) -> CsvWriter:
    """Write rows under HEADER to a CSV file: ``(rows, name=, delimiter=, encoding=, header=)``."""

    def _write(
        rows: list[list[str]],
        *,
        name: str = "export.csv",
        delimiter: str = ",",
        encoding: str = "utf-8",
        header: list[str] | None = None,
    ) -> Path:
        def quote(cell: str) -> str:
            if any(ch in cell for ch in (delimiter, '"', "\n")):
                return '"' + cell.replace('"', '""') + '"'
            return cell

        lines = [delimiter.join(quote(c) for c in (header or HEADER))]
        lines += [delimiter.join(quote(c) for c in row) for row in rows]
        path = tmp_path / name
        path.write_bytes(("\r\n".join(lines) + "\r\n").encode(encoding))
        return path

    return _write
