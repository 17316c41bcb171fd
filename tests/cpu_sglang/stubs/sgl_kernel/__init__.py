"""A pure-PyTorch `sgl_kernel` for running SGLang 0.5.17's CPU engine in tests.

Why: with ``SGLANG_USE_CPU_ENGINE=1`` SGLang imports a few ``*_cpu`` helpers from
``sgl_kernel`` at module import time. Those live only in the CPU build of
sgl-kernel, which is not published on PyPI. This folder is put first on
``PYTHONPATH`` (see ``tests/cpu_sglang/env.sh``) and provides just what the CPU
test path calls. Speed does not matter here, only exact semantics.

This module deliberately registers no ``torch.ops.sgl_kernel.*`` op, so SGLang's
``cpu_has_amx_support()`` stays False and every AMX-fused path stays off.

Any other name still imports (SGLang imports many names it never calls on CPU),
but calling it raises ``NotImplementedError`` naming the op, so a new code path
fails loudly instead of silently doing nothing.
"""

from __future__ import annotations

import ctypes
import os


__version__ = "0.0.0+sglang_dflash_cpu_stub"

_LOG_CALLS = os.environ.get("SGLANG_DFLASH_STUB_TRACE") == "1"


def _note(op: str) -> None:
    if _LOG_CALLS:
        print(f"[sgl_kernel stub] {op}", flush=True)


def _spans(req_pool_indices, start_offset, end_offset):
    """Yield (row, start, end, offset-in-flat-buffer) for each request."""
    offset = 0
    for row, start, end in zip(
        req_pool_indices.tolist(), start_offset.tolist(), end_offset.tolist()
    ):
        yield int(row), int(start), int(end), offset
        offset += max(int(end) - int(start), 0)


def assign_req_to_token_pool_cpu(
    req_pool_indices,  # [bs]
    req_to_token,  # [pool_rows, max_context] int32
    start_offset,  # [bs]
    end_offset,  # [bs]
    out_cache_loc,  # [sum(end - start)] slot ids, requests back to back
    pool_len,  # = req_to_token.shape[1]; unused, kept for the real signature
):
    """Write freshly allocated slots into the request -> token table."""
    _note("assign_req_to_token_pool_cpu")
    for row, start, end, off in _spans(req_pool_indices, start_offset, end_offset):
        if end > start:
            req_to_token[row, start:end] = out_cache_loc[off : off + end - start].to(
                req_to_token.dtype
            )


def assign_extend_cache_locs_cpu(
    req_pool_indices,  # [bs]
    req_to_token,  # [pool_rows, max_context]
    start_offset,  # [bs]
    end_offset,  # [bs]
    out_cache_loc,  # [sum(end - start)] output, requests back to back
    pool_len,
):
    """The inverse: read slot ids of [start, end) of each request into a flat buffer."""
    _note("assign_extend_cache_locs_cpu")
    for row, start, end, off in _spans(req_pool_indices, start_offset, end_offset):
        if end > start:
            out_cache_loc[off : off + end - start] = req_to_token[row, start:end].to(
                out_cache_loc.dtype
            )


def assign_draft_cache_locs_contiguous_cpu(
    req_pool_indices, req_to_token, seq_lens, out_cache_loc, pool_len, topk, num_steps
):
    """EAGLE-family helper: ``topk * num_steps`` slots after each request's seq_len."""
    _note("assign_draft_cache_locs_contiguous_cpu")
    n = int(topk) * int(num_steps)
    for i, (row, start) in enumerate(zip(req_pool_indices.tolist(), seq_lens.tolist())):
        out_cache_loc[i * n : (i + 1) * n] = req_to_token[row, start : start + n].to(
            out_cache_loc.dtype
        )


def copy_all_layer_kv_cache_cpu(
    data_ptrs,  # [num_buffers] int64 base address of each per-layer K or V buffer
    strides,  # [num_buffers] bytes per slot (row) of that buffer
    tgt_loc,  # [n] destination slots
    src_loc,  # [n] source slots
):
    """Copy slot rows src -> tgt in every KV buffer, given raw addresses.

    All source rows of a buffer are read before any is written, so overlapping
    source/target sets behave like a gather followed by a scatter."""
    _note("copy_all_layer_kv_cache_cpu")
    src = [int(s) for s in src_loc.tolist()]
    tgt = [int(t) for t in tgt_loc.tolist()]
    if not src:
        return
    for base, stride in zip(data_ptrs.tolist(), strides.tolist()):
        base, stride = int(base), int(stride)
        saved = [ctypes.string_at(base + s * stride, stride) for s in src]
        for t, row in zip(tgt, saved):
            ctypes.memmove(base + t * stride, row, stride)


class _NotOnCpu:
    """Placeholder for an op the CPU test path is not expected to call."""

    def __init__(self, name: str):
        self.__name__ = self.__qualname__ = name

    def __call__(self, *args, **kwargs):
        raise NotImplementedError(
            f"sgl_kernel CPU stub (tests/cpu_sglang/stubs): op {self.__name__!r} has no "
            "PyTorch version here; add one if this CPU code path is intended"
        )

    def __repr__(self) -> str:
        return f"<sgl_kernel stub: {self.__name__} not implemented>"


def __getattr__(name: str):
    if name.startswith("__"):
        raise AttributeError(name)
    return _NotOnCpu(name)
