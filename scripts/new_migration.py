"""Generate the next migration of one domain branch, restricted to that domain's tables.

    python scripts/new_migration.py campaign "add retry columns" --tables campaigns call_targets \
        --depends-on intake_0001

The revision id is ``<domain>_<NNNN>``; it chains onto the domain's head (or starts the branch).
Review the generated file before committing.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from alembic import command
from alembic.script import ScriptDirectory

from callcenter.core.db import alembic_config

VERSIONS = Path(__file__).resolve().parents[1] / "callcenter" / "migrations" / "versions"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("domain")
    parser.add_argument("message")
    parser.add_argument("--tables", nargs="+", required=True, help="tables this revision may touch")
    parser.add_argument("--depends-on", nargs="*", default=None)
    args = parser.parse_args()

    existing = sorted(p.name for p in VERSIONS.glob(f"{args.domain}_*.py"))
    number = len(existing) + 1
    rev_id = f"{args.domain}_{number:04d}"
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{tmp}/scratch.db"
        cfg = alembic_config(url)
        command.upgrade(cfg, "heads")
        cfg.attributes["only_tables"] = set(args.tables)
        script = ScriptDirectory.from_config(cfg)
        kwargs: dict[str, object] = {}
        if number == 1:
            kwargs.update(head="base", branch_label=args.domain)
        else:
            kwargs.update(head=f"{args.domain}@head")
        if args.depends_on:
            kwargs["depends_on"] = args.depends_on
        del script
        command.revision(cfg, message=args.message, autogenerate=True, rev_id=rev_id, **kwargs)  # type: ignore[arg-type]


if __name__ == "__main__":
    main()
