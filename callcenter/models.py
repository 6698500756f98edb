"""Every domain's tables, imported in dependency order so that metadata and Alembic see them all.

This is the one deliberate import-for-registration in the project: Alembic's env and the schema
drift test need the full metadata. Add a domain's models module here when it gains one.
"""

from __future__ import annotations

import importlib

from callcenter.core.db import Base

MODEL_MODULES = (
    "callcenter.core.models",
    "callcenter.intake.models",
    "callcenter.ivr.models",
    "callcenter.campaign.models",
    "callcenter.dialer.models",
    "callcenter.analysis.models",
)


def load_all_models() -> type[Base]:
    """Import every domain's models module that exists and return the shared declarative base."""
    for name in MODEL_MODULES:
        try:
            importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise
    return Base
