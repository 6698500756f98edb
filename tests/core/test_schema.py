"""The migrations build exactly the schema the models declare, on both databases."""

from __future__ import annotations

from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine, create_engine, inspect

from callcenter.core.db import upgrade_database
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


def test_a_fresh_clone_upgrades_its_embedded_database(tmp_path: Path) -> None:
    # A fresh clone has no var/ (it is ignored by git): SQLite creates the file, never its folder.
    url = f"sqlite:///{tmp_path / 'var' / 'callcenter.db'}"
    upgrade_database(url)
    engine = create_engine(url)
    try:
        assert "dossiers" in inspect(engine).get_table_names()
    finally:
        engine.dispose()
