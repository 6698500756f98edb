"""The import's fast COPY line agrees with sealing a record and formatting it."""

from __future__ import annotations

import dataclasses

from intake_helpers import NOW

from callcenter.core.pii import PiiCipher
from callcenter.intake.sealing import STAGE_COLUMNS, Sealer, copy_line, seal_copy_line
from callcenter.intake.synthetic import make_dossiers

_ENCRYPTED = {"submitter_name_enc", "phone_enc", "national_id_enc"}


def _fields(line: str, cipher: PiiCipher) -> dict[str, str | None]:
    """A COPY line by column, with the encrypted columns decrypted (their nonces differ)."""
    values = line.rstrip("\n").split("\t")
    out: dict[str, str | None] = {}
    for column, value in zip(STAGE_COLUMNS, values, strict=True):
        if column in _ENCRYPTED and value != "\\N":
            assert value.startswith("\\\\x")
            out[column] = cipher.decrypt(bytes.fromhex(value[3:]))
        else:
            out[column] = value
    return out


def test_seal_copy_line_matches_copy_line_of_seal(cipher: PiiCipher) -> None:
    sealer = Sealer(cipher, context="test")
    records = make_dossiers(50, seed=7, now=NOW)
    records.append(dataclasses.replace(records[0], national_id=None, procedure_name="a\tb\\c"))
    for record in records:
        for digest in (None, "d" * 64):
            slow = _fields(copy_line(sealer.seal(record, digest=digest)), cipher)
            fast = _fields(seal_copy_line(sealer, record, digest=digest), cipher)
            assert fast == slow


def test_read_ahead_keeps_order_raises_reader_errors_and_stops_early() -> None:
    from collections.abc import Iterator
    from typing import Any

    import pytest

    from callcenter.intake.importer import _read_ahead

    assert list(_read_ahead(iter([[1], [2], [3]]))) == [[1], [2], [3]]  # type: ignore[list-item]

    def broken() -> Iterator[list[int]]:
        yield [1]
        raise OSError("disk gone")

    with pytest.raises(OSError, match="disk gone"):
        list(_read_ahead(broken()))  # type: ignore[arg-type]

    endless: Any = _read_ahead(iter([[i] for i in range(1000)]))  # type: ignore[list-item]
    assert next(endless) == [0]
    endless.close()  # the reader thread is stopped and joined
