"""Sealing: a clean dossier record → its stored form (PII encrypted, phone hash, content hash).

Pure CPU work with no database, so it can run in a worker process (see ``importer``).

The content hash is what makes an unchanged re-import a no-op. It is keyed (it covers the name and
phone; an unkeyed digest of personal data could be brute-forced). For imports it is the digest of
what the source said — the raw mapped values plus the mapping's fingerprint — so the importer can
recognise an unchanged row *before* parsing and encrypting it (see ``service.find_unchanged``).
Records handed to ``upsert_dossiers`` directly have no raw form; their digest covers the clean
fields instead.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from callcenter.core.pii import PiiCipher
from callcenter.intake.normalise import DossierRecord

# Bump when the hashed fields change, so that every dossier is rewritten once.
CONTENT_HASH_VERSION = "intake-content-hash-v1"


@dataclass(slots=True)  # not frozen: cheaper to build, see DossierRecord
class SealedDossier:
    """A dossier as stored: personal data encrypted; agency and field still by code."""

    code: str
    agency_code: str
    agency_name: str
    field_code: str
    field_name: str
    procedure_name: str | None
    submitter_name_enc: bytes
    phone_enc: bytes
    phone_hash: str
    phone_kind: str
    national_id_enc: bytes | None
    is_organisation: bool
    received_at: datetime
    due_at: datetime | None
    returned_at: datetime | None
    status: str
    timeliness: str
    source_updated_at: datetime | None
    content_hash: str


def _stamp(value: datetime | None) -> str:
    return "" if value is None else repr(value.timestamp())


class Sealer:
    """Encrypts and hashes records with one cipher; build one per import (or per worker process)."""

    def __init__(self, cipher: PiiCipher, *, context: str = "") -> None:
        self._cipher = cipher
        # A content-hash key derived from the phone-hash key through the cipher's public HMAC; the
        # context (the mapping's fingerprint) makes rows read under another mapping count as changed.
        self._content_key = bytes.fromhex(cipher.phone_hash(f"{CONTENT_HASH_VERSION}:{context}"))

    def source_digest(self, values: Sequence[Any]) -> str:
        """Keyed digest of a record's raw values as the source gave them (any types, ``None`` = empty)."""
        try:
            payload = "\x1f".join(values)  # the common case: every value is text
        except TypeError:
            payload = "\x1f".join("" if v is None else v if type(v) is str else str(v) for v in values)
        return hashlib.blake2b(payload.encode(), key=self._content_key, digest_size=32).hexdigest()

    def content_hash(self, record: DossierRecord) -> str:
        """Keyed digest of every stored field of the record (BLAKE2b, 32 bytes, hex)."""
        payload = "\x1f".join(
            (
                record.code,
                record.submitter_name,
                record.phone_e164,
                record.national_id or "",
                "1" if record.is_organisation else "0",
                record.agency_code,
                record.agency_name,
                record.field_code,
                record.field_name,
                record.procedure_name or "",
                _stamp(record.received_at),
                _stamp(record.due_at),
                _stamp(record.returned_at),
                record.status.value,
                record.timeliness.value,
                _stamp(record.source_updated_at),
            )
        )
        return hashlib.blake2b(payload.encode(), key=self._content_key, digest_size=32).hexdigest()

    def seal(self, record: DossierRecord, *, digest: str | None = None) -> SealedDossier:
        """Encrypt and hash a record; ``digest`` is its :meth:`source_digest` when it has a raw form."""
        cipher = self._cipher
        return SealedDossier(
            code=record.code,
            agency_code=record.agency_code,
            agency_name=record.agency_name,
            field_code=record.field_code,
            field_name=record.field_name,
            procedure_name=record.procedure_name,
            submitter_name_enc=cipher.encrypt(record.submitter_name),
            phone_enc=cipher.encrypt(record.phone_e164),
            phone_hash=cipher.phone_hash(record.phone_e164),
            phone_kind=record.phone_kind,
            national_id_enc=cipher.encrypt_optional(record.national_id),
            is_organisation=record.is_organisation,
            received_at=record.received_at,
            due_at=record.due_at,
            returned_at=record.returned_at,
            status=record.status.value,
            timeliness=record.timeliness.value,
            source_updated_at=record.source_updated_at,
            content_hash=digest or self.content_hash(record),
        )


# PostgreSQL COPY text format: backslash, tab, newline and carriage return are escaped; NULL is \N.
# A NUL character has no escape (PostgreSQL text cannot hold one): ``normalise_record`` refuses any
# record containing one, so none reaches this point.
_COPY_ESCAPE = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})
NULL = "\\N"


def copy_text(value: str | None) -> str:
    """A text value in PostgreSQL COPY text format (escaped; ``None`` is ``\\N``)."""
    if value is None:
        return NULL
    # str.translate is slow on non-ASCII text and escaping is rarely needed: test first.
    if "\\" in value or "\t" in value or "\n" in value or "\r" in value:
        return value.translate(_COPY_ESCAPE)
    return value


def _copy_bytes(value: bytes | None) -> str:
    return NULL if value is None else "\\\\x" + value.hex()


def _copy_time(value: datetime | None) -> str:
    return NULL if value is None else value.isoformat()


# The column order of the staging table (see ``service._PG_STAGE``).
STAGE_COLUMNS = (
    "code",
    "agency_code",
    "field_code",
    "procedure_name",
    "submitter_name_enc",
    "phone_enc",
    "phone_hash",
    "phone_kind",
    "national_id_enc",
    "is_organisation",
    "received_at",
    "due_at",
    "returned_at",
    "status",
    "timeliness",
    "source_updated_at",
    "content_hash",
)


def seal_copy_line(sealer: Sealer, record: DossierRecord, *, digest: str | None = None) -> str:
    """``copy_line(sealer.seal(record, digest=digest))`` without building the sealed record.

    The import's hot path: a million rows, so no intermediate dataclass and no extra calls.
    ``tests/intake/test_sealing.py`` checks that both give the same line up to the random nonces.
    """
    encrypt = sealer._cipher.encrypt
    national_id = record.national_id
    return (
        "\t".join(
            (
                copy_text(record.code),
                copy_text(record.agency_code),
                copy_text(record.field_code),
                copy_text(record.procedure_name),
                "\\\\x" + encrypt(record.submitter_name).hex(),
                "\\\\x" + encrypt(record.phone_e164).hex(),
                sealer._cipher.phone_hash(record.phone_e164),
                record.phone_kind,
                NULL if not national_id else "\\\\x" + encrypt(national_id).hex(),
                "t" if record.is_organisation else "f",
                record.received_at.isoformat(),
                _copy_time(record.due_at),
                _copy_time(record.returned_at),
                record.status.value,
                record.timeliness.value,
                _copy_time(record.source_updated_at),
                digest or sealer.content_hash(record),
            )
        )
        + "\n"
    )


def copy_line(sealed: SealedDossier) -> str:
    """One line of PostgreSQL COPY text for the staging table, in :data:`STAGE_COLUMNS` order."""
    return (
        "\t".join(
            (
                copy_text(sealed.code),
                copy_text(sealed.agency_code),
                copy_text(sealed.field_code),
                copy_text(sealed.procedure_name),
                _copy_bytes(sealed.submitter_name_enc),
                _copy_bytes(sealed.phone_enc),
                sealed.phone_hash,
                sealed.phone_kind,
                _copy_bytes(sealed.national_id_enc),
                "t" if sealed.is_organisation else "f",
                _copy_time(sealed.received_at),
                _copy_time(sealed.due_at),
                _copy_time(sealed.returned_at),
                sealed.status,
                sealed.timeliness,
                _copy_time(sealed.source_updated_at),
                sealed.content_hash,
            )
        )
        + "\n"
    )


def copy_payload(sealed: Iterable[SealedDossier]) -> bytes:
    return "".join(copy_line(s) for s in sealed).encode("utf-8")
