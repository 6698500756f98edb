"""The migrations build exactly the schema the models declare, on both databases."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine, inspect

from callcenter.models import load_all_models


def test_migrations_match_models(db_engine: Engine) -> None:
    metadata = load_all_models().metadata
    with db_engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), metadata)
    assert diff == [], f"models and migrations disagree: {diff}"


def test_every_table_exists(db_engine: Engine) -> None:
    metadata = load_all_models().metadata
    tables = set(inspect(db_engine).get_table_names())
    assert set(metadata.tables) <= tables
