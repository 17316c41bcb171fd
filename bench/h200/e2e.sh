#!/usr/bin/env bash
# The end-to-end suite of our DFLASH worker on one GPU, in one go (docs/gpu-tests.md):
# bf16 (near-tie criterion) and fp32 (exact) against plain serving, SGLang's built-in DFLASH
# under the same criterion, 1/8/32/48 requests in flight, a long prompt, an abort, the fa4 (and
# optionally flashinfer) draft backend, and SmolLM2-135M when its GGUF is given.
#
# Needs only this repo and SGLang 0.5.17 importable (on the H200: source /tmp/gpu-env.sh after
# staging ../shared/gpu's bundle); no network. pytest comes from the interpreter, else from
# wheels in .gpu/pytest/ (carry it; see docs/gpu-tests.md).
# Usage: bash bench/h200/e2e.sh OUTDIR
#   SGLANG_DFLASH_SMOLLM2_GGUF=/tmp/smol.gguf   also serve SmolLM2 (converted on the fly)
#   SGLANG_DFLASH_E2E_FLASHINFER=1              also the flashinfer draft backend (slow 1st time)
#   SGLANG_DFLASH_E2E_DEVICE=cpu PYTHON=...     dry run on CPU (fp32) with the CPU harness venv
#   E2E_BUDGET_S=480                            pytest is interrupted after this many seconds
#   E2E_SKIP_INSTALL=1                          leave the interpreter's packages alone (a shared venv)
#   E2E_PYTEST_ARGS="-k fa4"                    extra pytest arguments, e.g. a subset of the tests
set -uo pipefail
OUT=$(mkdir -p "${1:?usage: e2e.sh OUTDIR}" && cd "$1" && pwd)
cd "$(dirname "$0")/../.."
PY=${PYTHON:-python3}
export SGLANG_DFLASH_E2E_DEVICE=${SGLANG_DFLASH_E2E_DEVICE:-cuda}
export SGLANG_DFLASH_TEST_LOGS="$OUT/logs" SGLANG_DFLASH_E2E_RECORDS="$OUT/records.jsonl"
export SGLANG_DFLASH_TEST_MODELS=${SGLANG_DFLASH_TEST_MODELS:-/tmp/sglang-dflash-e2e-models}
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
mkdir -p "$OUT/logs" && rm -f "$OUT/records.jsonl" "$OUT/junit.xml"
t0=$(date +%s)

# our plugin is found through its entry point: install the package metadata (no deps, offline)
[ "${E2E_SKIP_INSTALL:-0}" = 1 ] || "$PY" -m pip install -q --no-deps --no-build-isolation \
  --no-index -e . >"$OUT/pip.log" 2>&1 || echo "warning: editable install failed (see $OUT/pip.log); our plugin may not be registered"

if ! "$PY" -c "import pytest" 2>/dev/null; then
  if ls .gpu/pytest/*.whl >/dev/null 2>&1; then
    "$PY" -m pip install -q --no-deps --no-index --target /tmp/sglang-dflash-e2e-pytest \
      .gpu/pytest/*.whl >>"$OUT/pip.log" 2>&1
    export PYTHONPATH="$PYTHONPATH:/tmp/sglang-dflash-e2e-pytest"
  fi
  "$PY" -c "import pytest" 2>/dev/null || {
    echo "error: no pytest: carry .gpu/pytest/ (pytest, pluggy, iniconfig wheels), see docs/gpu-tests.md"
    exit 2; }
fi

if [ -n "${SGLANG_DFLASH_SMOLLM2_GGUF:-}" ]; then
  export SGLANG_DFLASH_SMOLLM2_DIR=${SGLANG_DFLASH_SMOLLM2_DIR:-/tmp/sglang-dflash-e2e-smollm2}
  if "$PY" -m sglang_dflash.smollm2 --out "$SGLANG_DFLASH_SMOLLM2_DIR" >"$OUT/smollm2-convert.log" 2>&1; then
    export SGLANG_DFLASH_E2E_SMOLLM2=1
  else
    echo "warning: SmolLM2 conversion failed (see $OUT/smollm2-convert.log); its test is skipped"
  fi
fi
echo "== device e2e on $SGLANG_DFLASH_E2E_DEVICE (setup $(( $(date +%s) - t0 )) s); logs in $OUT/logs"

# SIGINT lets pytest stop its servers and still write junit.xml when the budget runs out
timeout -s INT -k 30 "${E2E_BUDGET_S:-480}" "$PY" -m pytest -p no:cacheprovider -q -rfEs \
  --tb=short --junitxml "$OUT/junit.xml" ${E2E_PYTEST_ARGS:-} tests/test_greedy_match.py tests/test_e2e_device.py \
  >"$OUT/pytest.log" 2>&1
rc=$?
grep -E "^(FAILED|ERROR|SKIPPED)|passed|failed" "$OUT/pytest.log" | tail -n 30
"$PY" bench/h200/e2e_summary.py "$OUT" "$rc"
echo "== done in $(( $(date +%s) - t0 )) s, pytest exit $rc; full output: $OUT/pytest.log"
exit $rc
