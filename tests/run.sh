#!/usr/bin/env bash
# The project's test command: builds a virtualenv with everything the tests need (on a CPU-only
# machine: the CPU build of torch, and SGLang 0.5.17 with its CPU test harness), then runs pytest.
# SGLANG_DFLASH_SKIP_SGLANG=1 leaves SGLang out (its end-to-end tests then skip).
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
if [ "${SGLANG_DFLASH_SKIP_SGLANG:-0}" != 1 ]; then
  # SGLang 0.5.17 for the CPU end-to-end tests: the package without its CUDA dependencies,
  # then the pinned CPU set (installed last, so its pins win); see tests/cpu_sglang/.
  echo "== installing SGLang 0.5.17 and its CPU test harness dependencies"
  "$VENV/bin/pip" install -q --no-deps sglang==0.5.17
  "$VENV/bin/pip" install -q --no-deps -r tests/cpu_sglang/requirements-0.5.17-cpu.txt
fi
echo "== running tests"
exec "$VENV/bin/python" -m pytest "$@"
