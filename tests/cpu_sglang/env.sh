# Source this before starting SGLang on CPU for tests:  . tests/cpu_sglang/env.sh
# SGLANG_USE_CPU_ENGINE=1 selects SGLang's CPU platform (and our CPU fixes, see
# sglang_dflash/sglang/cpu_fixes.py); the stubs folder provides sgl_kernel and torchvision.
_cpu_sglang_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
export SGLANG_USE_CPU_ENGINE=1
export HF_HUB_OFFLINE=1
export TRANSFORMERS_OFFLINE=1
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
export PYTHONPATH="$_cpu_sglang_dir/stubs${PYTHONPATH:+:$PYTHONPATH}"
unset _cpu_sglang_dir
