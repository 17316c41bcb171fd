"""Store one draft layer's context K/V into the KV pool: checked wrapper + torch reference.

``store_context_kv`` validates its inputs and launches `kernels/context_kv.py` where Triton
runs (CUDA, or TRITON_INTERPRET=1); elsewhere it runs ``store_context_kv_reference``, the
same computation in plain torch. Tests compare the two on random inputs.

Shapes: n tokens, L layers, kvh K/V heads, hd head dim (even), S pool slots, P positions.
"""
from __future__ import annotations

import torch

from .loader import load_kernels, triton_available
from .step import _check, _pow2


def store_context_kv_reference(kv, layer, norm_w, cos_sin, positions, slots, k_buf, v_buf,
                               eps: float) -> None:
    half = kv.shape[-1] // 2
    k = kv[:, layer, 0].float()                                        # [n, kvh, hd]
    k = k * torch.rsqrt(k.pow(2).mean(dim=-1, keepdim=True) + eps) * norm_w
    k = k.to(k_buf.dtype).float()
    cs = cos_sin[positions].float()                                    # [n, hd]
    cos, sin = cs[:, None, :half], cs[:, None, half:]
    k1, k2 = k[..., :half], k[..., half:]
    k = torch.cat([k1 * cos - k2 * sin, k2 * cos + k1 * sin], dim=-1)
    k_buf[slots] = k.to(k_buf.dtype)
    v_buf[slots] = kv[:, layer, 1].to(v_buf.dtype)


def store_context_kv(
    kv: torch.Tensor,         # [n, L, 2, kvh, hd] stacked K/V projection
    layer: int,
    norm_w: torch.Tensor,     # [hd] float32 k_norm weight
    cos_sin: torch.Tensor,    # [P, hd] cos then sin halves (NeoX layout)
    positions: torch.Tensor,  # [n] int64, < P
    slots: torch.Tensor,      # [n] int64, < S
    k_buf: torch.Tensor,      # [S, kvh, hd]
    v_buf: torch.Tensor,      # [S, kvh, hd]
    eps: float,
    use_triton: bool | None = None,
) -> None:
    if kv.ndim != 5 or kv.shape[2] != 2:
        raise ValueError(f"kv: expected shape [n, L, 2, kvh, hd], got {tuple(kv.shape)}")
    n, L, _, kvh, hd = kv.shape
    dev = kv.device
    if hd % 2:
        raise ValueError(f"kv: expected an even head dim for NeoX RoPE, got {hd}")
    if not 0 <= layer < L:
        raise ValueError(f"layer: expected 0 <= layer < {L}, got {layer}")
    _check("kv", kv, (n, L, 2, kvh, hd), kv.dtype, dev)
    _check("norm_w", norm_w, (hd,), torch.float32, dev)
    _check("cos_sin", cos_sin, (cos_sin.shape[0], hd), cos_sin.dtype, dev)
    _check("positions", positions, (n,), torch.int64, dev)
    _check("slots", slots, (n,), torch.int64, dev)
    _check("k_buf", k_buf, (k_buf.shape[0], kvh, hd), k_buf.dtype, dev)
    _check("v_buf", v_buf, tuple(k_buf.shape), k_buf.dtype, dev)
    if n == 0:
        return
    if use_triton if use_triton is not None else triton_available(dev):
        load_kernels("context_kv").context_kv_store_kernel[(n,)](
            kv, layer, norm_w, cos_sin, positions, slots, k_buf, v_buf, float(eps),
            L=L, KVH=kvh, HD=hd, BLOCK_H=_pow2(kvh), BLOCK_D=_pow2(hd // 2))
        return
    store_context_kv_reference(kv, layer, norm_w, cos_sin, positions, slots, k_buf, v_buf, eps)
