"""Logging set-up: one format, personal data masked in every record."""

from __future__ import annotations

import logging

from callcenter.core.pii import PiiMaskingFilter


def configure_logging(level: str = "INFO") -> None:
    """Install a stderr handler whose records never carry a full phone or ID number."""
    root = logging.getLogger()
    for handler in root.handlers:
        if any(isinstance(f, PiiMaskingFilter) for f in handler.filters):
            return
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(PiiMaskingFilter())
    root.addHandler(handler)
    root.setLevel(level)
    # Libraries that narrate every request or migration step at INFO; their warnings still show.
    for noisy in ("alembic", "httpx", "uvicorn.access"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLevelName(level)))
