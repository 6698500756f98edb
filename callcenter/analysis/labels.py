"""Reason labels for reports, read from the questionnaire the IVR asks (the list is configuration)."""

from __future__ import annotations

from pathlib import Path

from callcenter.ivr.questionnaire import load_questionnaire


def reason_labels(path: Path | None = None) -> dict[int, str]:
    """Reason code → its full criterion as the questionnaire words it (e.g. 2 → "Tiến độ và kết quả…")."""
    questionnaire = load_questionnaire(path)
    return {reason.code: reason.description for reason in questionnaire.reasons}
