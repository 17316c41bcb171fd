"""Store every draft layer's context K/V into the KV pool: checked wrapper + torch reference.

``store_context_kv`` validates its inputs and launches `kernels/context_kv.py` once for all
layers where Triton runs (CUDA, or TRITON_INTERPRET=1); elsewhere it runs
``store_context_kv_reference``, the same computation in plain torch, layer by layer. Tests
compare the two on random inputs.

Shapes: n tokens, L layers, kvh K/V heads, hd head dim (even), S pool slots, P positions.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from .loader import load_kernels, triton_available
from .step import _check, _pow2


@dataclass(frozen=True)
class LayerBuffers:
    """The key and value buffers of L layers of a KV pool ([S, kvh, hd] each, one dtype).

    The kernel addresses layer l's buffers as the first layer's plus ``k_off[l]`` /
    ``v_off[l]`` elements, computed here once per pool: SGLang allocates every layer's
    buffer on its own, so they share no common base tensor."""

    k_bufs: tuple[torch.Tensor, ...]
    v_bufs: tuple[torch.Tensor, ...]
    k_off: torch.Tensor   # [L] int64
    v_off: torch.Tensor   # [L] int64

    @classmethod
    def of(cls, k_bufs, v_bufs) -> "LayerBuffers":
        k_bufs, v_bufs = tuple(k_bufs), tuple(v_bufs)
        if not k_bufs or len(k_bufs) != len(v_bufs):
            raise ValueError(f"LayerBuffers: expected as many value as key buffers (>= 1), "
                             f"got {len(k_bufs)} and {len(v_bufs)}")
        first = k_bufs[0]
        for i, buf in enumerate(k_bufs + v_bufs):
            name = f"{'k' if i < len(k_bufs) else 'v'}_bufs[{i % len(k_bufs)}]"
            _check(name, buf, tuple(first.shape), first.dtype, first.device)
            if buf.ndim != 3:
                raise ValueError(f"{name}: expected shape [slots, kvh, hd], got {tuple(buf.shape)}")

        def offsets(bufs):
            size = bufs[0].element_size()
            gaps = [b.data_ptr() - bufs[0].data_ptr() for b in bufs]
            if any(g % size for g in gaps):
                raise ValueError(f"LayerBuffers: buffer addresses {gaps} bytes apart are not "
                                 f"multiples of the element size {size}")
            return torch.tensor([g // size for g in gaps], dtype=torch.int64, device=first.device)

        return cls(k_bufs, v_bufs, offsets(k_bufs), offsets(v_bufs))


def store_context_kv_reference(kv, layer, norm_w, cos_sin, positions, slots, k_buf, v_buf,
                               eps: float) -> None:
    """One layer: ``norm_w`` [hd], ``k_buf`` / ``v_buf`` that layer's buffers."""
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
    norm_w: torch.Tensor,     # [L, hd] float32 k_norm weight of each layer
    cos_sin: torch.Tensor,    # [P, hd] cos then sin halves (NeoX layout)
    positions: torch.Tensor,  # [n] int64, < P
    slots: torch.Tensor,      # [n] int64, < S
    buffers: LayerBuffers,    # L layers' [S, kvh, hd] key and value buffers
    eps: float,
    use_triton: bool | None = None,
) -> None:
    if kv.ndim != 5 or kv.shape[2] != 2:
        raise ValueError(f"kv: expected shape [n, L, 2, kvh, hd], got {tuple(kv.shape)}")
    n, L, _, kvh, hd = kv.shape
    dev = kv.device
    if hd % 2:
        raise ValueError(f"kv: expected an even head dim for NeoX RoPE, got {hd}")
    if len(buffers.k_bufs) != L:
        raise ValueError(f"buffers: expected {L} layers (kv's second dim), got {len(buffers.k_bufs)}")
    k0 = buffers.k_bufs[0]
    _check("kv", kv, (n, L, 2, kvh, hd), kv.dtype, dev)
    _check("norm_w", norm_w, (L, hd), torch.float32, dev)
    _check("cos_sin", cos_sin, (cos_sin.shape[0], hd), cos_sin.dtype, dev)
    _check("positions", positions, (n,), torch.int64, dev)
    _check("slots", slots, (n,), torch.int64, dev)
    _check("buffers.k_bufs[0]", k0, (k0.shape[0], kvh, hd), k0.dtype, dev)
    if n == 0:
        return
    if use_triton if use_triton is not None else triton_available(dev):
        load_kernels("context_kv").context_kv_store_kernel[(n, L)](
            kv, norm_w, cos_sin, positions, slots, k0, buffers.v_bufs[0], buffers.k_off,
            buffers.v_off, float(eps), L=L, KVH=kvh, HD=hd, BLOCK_H=_pow2(kvh),
            BLOCK_D=_pow2(hd // 2))
        return
    for layer in range(L):
        store_context_kv_reference(kv, layer, norm_w[layer], cos_sin, positions, slots,
                                   buffers.k_bufs[layer], buffers.v_bufs[layer], eps)
