"""Per-step glue of a DFlash decode step, fast path + checks.

Each function validates its inputs, launches the Triton kernel from `kernels/dflash_step.py`
when it can run (CUDA, or TRITON_INTERPRET=1), and otherwise computes the same thing with the
torch reference (`sglang_dflash.verify`). Tests compare both paths on random inputs.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from .. import verify
from .loader import load_kernels, triton_available


@dataclass
class StepOutput:
    """In the form the worker hands to SGLang, so no conversion runs after the kernel."""

    accept_len: torch.Tensor     # [b] int32, A
    commit_len: torch.Tensor     # [b] int32, A + 1: tokens emitted this step
    bonus: torch.Tensor          # [b] int64
    commit_tokens: torch.Tensor  # [b, B] int64: draft[:A], bonus, 0 ...
    new_len: torch.Tensor        # [b] int64: committed + A + 1

    @classmethod
    def from_verify(cls, r, committed: torch.Tensor) -> "StepOutput":
        """From the torch verifier's ``VerifyResult`` (int64, -1 padded)."""
        return cls(r.accept_len.to(torch.int32), (r.accept_len + 1).to(torch.int32),
                   r.bonus.to(torch.int64), r.commit_tokens.clamp_min(0),
                   committed + r.accept_len + 1)


def _check(name: str, t: torch.Tensor, shape: tuple, dtype: torch.dtype, device) -> None:
    if tuple(t.shape) != tuple(shape):
        raise ValueError(f"{name}: expected shape {tuple(shape)}, got {tuple(t.shape)}")
    if t.dtype != dtype:
        raise ValueError(f"{name}: expected dtype {dtype}, got {t.dtype}")
    if t.device != device:
        raise ValueError(f"{name}: expected device {device}, got {t.device}")
    if not t.is_contiguous():
        raise ValueError(f"{name}: expected a contiguous tensor")


def _pow2(n: int) -> int:
    return 1 << max(n - 1, 0).bit_length()


def prepare_block(anchor: torch.Tensor, committed: torch.Tensor, req_pool_indices: torch.Tensor,
                  req_to_token: torch.Tensor, block_size: int, mask_id: int,
                  use_triton: bool | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """anchor [b], committed [b], req_pool_indices [b] int64, req_to_token [rows, max_len]
    int32 -> block ids [b, B] = [anchor, MASK..], positions [b, B] = committed + j, and
    the KV slots of those positions [b, B] int64 (every position must lie inside its row,
    which SGLang's reservation of 2 * B slots past the committed length guarantees)."""
    b, dev = anchor.shape[0], anchor.device
    _check("anchor", anchor, (b,), torch.int64, dev)
    _check("committed", committed, (b,), torch.int64, dev)
    _check("req_pool_indices", req_pool_indices, (b,), torch.int64, dev)
    if req_to_token.ndim != 2 or req_to_token.dtype != torch.int32 or req_to_token.device != dev \
            or req_to_token.stride(1) != 1:
        raise ValueError(f"req_to_token: expected a row-major [rows, max_len] int32 table on {dev}, "
                         f"got {tuple(req_to_token.shape)} {req_to_token.dtype} on {req_to_token.device}")
    if block_size < 2:
        raise ValueError(f"block_size: expected >= 2, got {block_size}")
    if use_triton if use_triton is not None else triton_available(dev):
        ids, pos, slots = torch.empty(3, b, block_size, dtype=torch.int64, device=dev).unbind(0)
        if b:
            load_kernels("dflash_step").prepare_block_kernel[(b,)](
                anchor, committed, req_pool_indices, req_to_token, req_to_token.stride(0),
                ids, pos, slots, mask_id, B=block_size, BLOCK_B=_pow2(block_size))
        return ids, pos, slots
    ids = torch.full((b, block_size), mask_id, dtype=torch.int64, device=dev)
    ids[:, 0] = anchor
    pos = committed.unsqueeze(1) + torch.arange(block_size, device=dev)
    return ids, pos, req_to_token[req_pool_indices[:, None], pos].to(torch.int64)


def greedy_accept(draft: torch.Tensor, target_best: torch.Tensor, committed: torch.Tensor,
                  use_triton: bool | None = None) -> StepOutput:
    """draft [b, B-1], target_best [b, B] (argmax per block position), committed [b]."""
    b, B, dev = target_best.shape[0], target_best.shape[1], target_best.device
    _check("draft", draft, (b, B - 1), torch.int64, dev)
    _check("target_best", target_best, (b, B), torch.int64, dev)
    _check("committed", committed, (b,), torch.int64, dev)
    if use_triton if use_triton is not None else triton_available(dev):
        out = _empty_out(b, B, dev)
        if b:
            load_kernels("dflash_step").greedy_accept_kernel[(b,)](
                draft, target_best, committed, out.accept_len, out.commit_len, out.bonus,
                out.commit_tokens, out.new_len, B=B, BLOCK_B=_pow2(B))
        return out
    accept_len = verify.leading_true(draft == target_best[:, :-1])
    bonus = target_best.gather(1, accept_len.unsqueeze(1)).squeeze(1)
    return StepOutput.from_verify(verify._result(draft, accept_len, bonus), committed)


def sampling_accept(draft: torch.Tensor, probs: torch.Tensor, accept_u: torch.Tensor, bonus_u: torch.Tensor,
                    committed: torch.Tensor, use_triton: bool | None = None) -> StepOutput:
    """draft [b, B-1], probs [b, B, V] float32 target probabilities, accept_u [b, B-1] and
    bonus_u [b] float32 uniforms in [0, 1), committed [b]."""
    b, B, V = probs.shape
    dev = probs.device
    _check("draft", draft, (b, B - 1), torch.int64, dev)
    _check("probs", probs, (b, B, V), torch.float32, dev)
    _check("accept_u", accept_u, (b, B - 1), torch.float32, dev)
    _check("bonus_u", bonus_u, (b,), torch.float32, dev)
    _check("committed", committed, (b,), torch.int64, dev)
    if use_triton if use_triton is not None else triton_available(dev):
        out = _empty_out(b, B, dev)
        if b:
            load_kernels("dflash_step").sampling_accept_kernel[(b,)](
                draft, probs, accept_u, bonus_u, committed, out.accept_len, out.commit_len,
                out.bonus, out.commit_tokens, out.new_len, V, B=B, BLOCK_B=_pow2(B),
                BLOCK_V=min(_pow2(V), 4096))
        return out
    r = verify.sampling_verify(draft, probs, uniforms=(accept_u, bonus_u))
    return StepOutput.from_verify(r, committed)


def _empty_out(b: int, B: int, dev) -> StepOutput:
    i32 = torch.empty(2, b, dtype=torch.int32, device=dev)   # accept_len, commit_len rows
    i64 = torch.empty(2, b, dtype=torch.int64, device=dev)   # bonus, new_len rows
    return StepOutput(i32[0], i32[1], i64[0], torch.empty(b, B, dtype=torch.int64, device=dev),
                      i64[1])
