#!/usr/bin/env bash
# Set up a fresh clone: system packages (espeak-ng for offline Vietnamese speech, sox, libsndfile,
# chromium for the report test),
# a virtualenv in .venv and the project with its test and speech extras. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."
need_apt=()
command -v espeak-ng >/dev/null 2>&1 || need_apt+=(espeak-ng)
command -v sox >/dev/null 2>&1 || need_apt+=(sox)
# Not `grep -q`: it exits at the first match, ldconfig then dies of SIGPIPE and pipefail reports a miss.
ldconfig -p 2>/dev/null | grep libsndfile >/dev/null || need_apt+=(libsndfile1)
# Headless Chromium opens the HTML report in a test (its charts must render).
command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || need_apt+=(chromium)
if [ ${#need_apt[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null
  else
    echo "warning: missing system packages ${need_apt[*]} (install them with apt-get)" >&2
  fi
fi
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
stamp=.venv/.installed-$(sha1sum pyproject.toml | cut -c1-12)
if [ ! -f "$stamp" ]; then
  .venv/bin/pip install -q --upgrade pip
  .venv/bin/pip install -q -e ".[test,speech]"
  rm -f .venv/.installed-*
  touch "$stamp"
fi
