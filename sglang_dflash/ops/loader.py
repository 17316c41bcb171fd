"""Find and import kernel files from `kernels/` without that folder ever being importable as
`kernels` (SGLang depends on a PyPI package of that name).

A wheel carries the folder as `sglang_dflash/_kernels/` (package-dir mapping in pyproject); a
source checkout or editable install reads it from the repository root.
"""
from __future__ import annotations

import functools
import importlib.util
import os
from pathlib import Path


def kernel_dir() -> Path:
    here = Path(__file__).resolve().parent.parent
    for candidate in (here / "_kernels", here.parent / "kernels"):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"kernel folder: expected {here / '_kernels'} or {here.parent / 'kernels'}, found neither")


def triton_available(device) -> bool:
    """Triton kernels run on CUDA tensors, or anywhere with TRITON_INTERPRET=1 (CPU tests)."""
    try:
        import triton  # noqa: F401
    except ImportError:
        return False
    return str(device).startswith("cuda") or os.environ.get("TRITON_INTERPRET") == "1"


@functools.lru_cache(maxsize=None)
def load_kernels(name: str):
    path = kernel_dir() / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"sglang_dflash._kernels.{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
