#!/usr/bin/env bash
# Set up a fresh clone and run the main job on the embedded default (SQLite, simulator trunk).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/callcenter demo "$@"
