#!/usr/bin/env bash
# Build (or complete) the CPU-only SGLang 0.5.17 venv used by the end-to-end tests.
#
#   tests/cpu_sglang/setup_venv.sh VENV      # VENV may already exist (e.g. tests/run.sh's .venv)
#
# torch==2.13.0 resolves to the local CPU wheel on this project's machines (no CUDA
# stack); sglang is installed without its dependencies (they pin the CUDA build of
# torch, flashinfer, sglang-kernel, ...) and the pins it needs on the CPU path come
# from requirements-0.5.17-cpu.txt. sglang-dflash itself is installed editable so its
# `sglang.srt.plugins` entry point is visible to every SGLang process.
# At run time source tests/cpu_sglang/env.sh (sgl_kernel and torchvision stubs).
set -euo pipefail
VENV=${1:?usage: setup_venv.sh VENV}
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)

[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
"$VENV/bin/pip" install -q --upgrade pip
"$VENV/bin/pip" install -q torch==2.13.0
"$VENV/bin/pip" install -q --no-deps sglang==0.5.17
"$VENV/bin/pip" install -q --no-deps -r "$HERE/requirements-0.5.17-cpu.txt"
"$VENV/bin/pip" install -q pytest
"$VENV/bin/pip" install -q --no-deps --no-build-isolation -e "$REPO"

# Smoke check: sglang imports with the stubs on the path, and our plugin is discoverable.
. "$HERE/env.sh"
"$VENV/bin/python" - <<'PY'
import importlib.metadata as md
import sglang, torch, transformers
eps = [e.name for e in md.entry_points(group="sglang.srt.plugins")]
assert "dflash" in eps, f"sglang-dflash plugin entry point missing; found {eps}"
print("sglang", sglang.__version__, "torch", torch.__version__,
      "transformers", transformers.__version__, "plugins", eps)
PY
