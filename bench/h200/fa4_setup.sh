#!/usr/bin/env bash
# On the GPU machine: install the CuTe DSL runtime that SGLang 0.5.17's vendored
# FlashAttention-4 needs (the bundle leaves it out) from /tmp/extra/fa4-wheels.tar, made here
# from the wheels listed in docs/gpu-tests.md and carried with carry_plan.py / extra_stage.sh.
# Appends /tmp/fa4-site to /tmp/gpu-env.sh, so every later `source /tmp/gpu-env.sh` sees it.
# Usage (there, after the bundle is staged): bash bench/h200/fa4_setup.sh
set -euo pipefail
TAR=${1:-/tmp/extra/fa4-wheels.tar}
[ -s "$TAR" ] || { echo "fa4: $TAR missing (stage it first)"; exit 2; }
rm -rf /tmp/fa4-wheels && mkdir -p /tmp/fa4-wheels && tar -xf "$TAR" -C /tmp/fa4-wheels
python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/fa4-site /tmp/fa4-wheels/*.whl
# the wheels' .pth file (which puts cutlass on sys.path) is not read from a --target folder
grep -q fa4-site /tmp/gpu-env.sh || echo 'export PYTHONPATH=$PYTHONPATH:/tmp/fa4-site:/tmp/fa4-site/nvidia_cutlass_dsl/dsl_packages' >>/tmp/gpu-env.sh
source /tmp/gpu-env.sh
python3 -c "import cutlass, cutlass.cute; print('fa4: cutlass DSL', getattr(cutlass, '__version__', '?'))"
