"""Alembic environment: one branch per domain (intake, ivr, campaign, dialer, analysis).

Run with ``alembic upgrade heads`` (plural) or :func:`callcenter.core.db.upgrade_database`.
Revision ids are readable and per-domain (``campaign_0002``) so that work on different domains never
fights over one linear chain; cross-domain foreign keys are expressed with ``depends_on``.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import engine_from_config, pool

from callcenter.models import load_all_models

config = context.config
target_metadata = load_all_models().metadata
# When generating a domain's revision, restrict autogenerate to that domain's tables:
# config.attributes["only_tables"] = {"campaigns", ...} (see scripts/new_migration.py).
_only_tables: set[str] | None = config.attributes.get("only_tables")


def include_object(obj, name, type_, reflected, compare_to):  # type: ignore[no-untyped-def]
    if _only_tables is None:
        return True
    table = name if type_ == "table" else getattr(getattr(obj, "table", None), "name", None)
    return table in _only_tables


def run_migrations_offline() -> None:
    context.configure(
        url=config.get_main_option("sqlalchemy.url"),
        target_metadata=target_metadata,
        literal_binds=True,
        render_as_batch=True,
        include_object=include_object,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connectable = config.attributes.get("connection")
    if connectable is not None:
        context.configure(
            connection=connectable,
            target_metadata=target_metadata,
            render_as_batch=True,
            include_object=include_object,
        )
        with context.begin_transaction():
            context.run_migrations()
        return
    engine = engine_from_config(
        config.get_section(config.config_ini_section, {}), prefix="sqlalchemy.", poolclass=pool.NullPool
    )
    with engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            render_as_batch=True,
            include_object=include_object,
        )
        with context.begin_transaction():
            context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
