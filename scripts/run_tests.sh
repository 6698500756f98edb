#!/usr/bin/env bash
# Set up and run every check: services, the test suite (PostgreSQL, Redis, Celery workers), ruff, mypy.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/ensure_services.sh
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy callcenter
.venv/bin/python -m pytest "$@"
