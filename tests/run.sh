#!/usr/bin/env bash
# The project's test command: builds a virtualenv with everything the tests need (on a CPU-only
# machine: the CPU build of torch, and SGLang 0.5.17 with its CPU test harness), then runs pytest.
# Usage: bash tests/run.sh [pytest args...]      (VENV=path to reuse another virtualenv)
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
PY=${PYTHON:-python3}
if [ ! -x "$VENV/bin/python" ]; then
  echo "== creating $VENV"
  "$PY" -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install -q --upgrade pip "setuptools>=61" wheel >/dev/null
if ! "$VENV/bin/python" -c "import torch" 2>/dev/null; then
  echo "== installing torch (CPU build)"
  "$VENV/bin/pip" install -q torch==2.13.0
fi
echo "== installing sglang-dflash with test extras"
"$VENV/bin/pip" install -q -e ".[test]"
echo "== running tests"
exec "$VENV/bin/python" -m pytest "$@"
