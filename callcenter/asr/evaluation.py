"""Scoring the comment classifier on a labelled set (used by the tests and ``scripts/bench_asr.py``)."""

from __future__ import annotations

import csv
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from callcenter.asr.classify import ReasonHit
from callcenter.core.errors import ValidationError


@dataclass(frozen=True, slots=True)
class LabelledComment:
    text: str
    reasons: frozenset[int]


@dataclass(frozen=True, slots=True)
class ReasonScore:
    code: int
    true_positives: int
    false_positives: int
    false_negatives: int

    @property
    def support(self) -> int:
        return self.true_positives + self.false_negatives

    @property
    def precision(self) -> float:
        found = self.true_positives + self.false_positives
        return self.true_positives / found if found else 1.0

    @property
    def recall(self) -> float:
        return self.true_positives / self.support if self.support else 1.0


def load_labelled(path: Path, *, codes: Sequence[int] = range(1, 10)) -> list[LabelledComment]:
    """Rows of ``text<TAB>reasons`` (reasons like ``2;4``, empty for none); bad rows name their line."""
    rows: list[LabelledComment] = []
    with path.open(encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
        if reader.fieldnames != ["text", "reasons"]:
            raise ValidationError(f"{path.name}: header must be 'text<TAB>reasons', got {reader.fieldnames}")
        for line, row in enumerate(reader, start=2):
            text = (row["text"] or "").strip()
            if not text:
                raise ValidationError("empty text", row=f"{path.name}:{line}", field="text")
            try:
                reasons = frozenset(int(c) for c in (row["reasons"] or "").split(";") if c.strip())
            except ValueError as exc:
                raise ValidationError(
                    f"{row['reasons']!r} is not a ';'-separated list of codes",
                    row=f"{path.name}:{line}",
                    field="reasons",
                ) from exc
            unknown = reasons - set(codes)
            if unknown:
                raise ValidationError(
                    f"unknown reason codes {sorted(unknown)}", row=f"{path.name}:{line}", field="reasons"
                )
            rows.append(LabelledComment(text, reasons))
    return rows


def score(
    rows: Sequence[LabelledComment],
    classify: Callable[[str], list[ReasonHit]],
    *,
    codes: Sequence[int] = range(1, 10),
) -> dict[int, ReasonScore]:
    """Precision and recall per reason code of ``classify`` on ``rows``."""
    counts = {code: [0, 0, 0] for code in codes}
    for row in rows:
        found = {hit.code for hit in classify(row.text)}
        for code in codes:
            if code in found and code in row.reasons:
                counts[code][0] += 1
            elif code in found:
                counts[code][1] += 1
            elif code in row.reasons:
                counts[code][2] += 1
    return {code: ReasonScore(code, *c) for code, c in counts.items()}


def micro_average(scores: dict[int, ReasonScore]) -> ReasonScore:
    """All reasons pooled: one precision and one recall for the whole set."""
    return ReasonScore(
        0,
        sum(s.true_positives for s in scores.values()),
        sum(s.false_positives for s in scores.values()),
        sum(s.false_negatives for s in scores.values()),
    )
