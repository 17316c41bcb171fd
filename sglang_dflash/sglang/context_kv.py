"""Context K/V of every draft layer from one projection ("KV injection", fused).

Each draft layer turns the projected target features ``ctx`` of committed tokens into
keys and values: ``k = rope(k_norm(W_k ctx))``, ``v = W_v ctx``. Done layer by layer
(``SGLangDFlashDrafter.write_context_kv_per_layer``) that is one QKV projection per layer,
whose query third is thrown away, plus a norm, a rotation and a store: about thirty kernel
launches per step for five layers. Here the key and value rows of all layers are stacked
into one weight, so a single matmul produces every layer's K and V, one vectorised RMSNorm
normalises all keys, and one RoPE call rotates them (all layers share the rotary
embedding); only the stores remain per layer. On a GPU with a plain (unquantized, NHD)
KV pool, norm + RoPE + store of all layers run as one Triton kernel
(``sglang_dflash.ops.context_kv``), so a step costs the matmul and one small launch: this
runs after the step's publish, where every host microsecond the next step waits for counts.

Shapes: ``n`` tokens, ``L`` draft layers, ``kvh`` K/V heads on this rank, ``hd`` head dim.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..ops.context_kv import LayerBuffers, store_context_kv
from ..ops.loader import triton_available


class ContextKVWriter:
    def __init__(self, layers, max_positions: int):
        self.max_positions = int(max_positions)   # every position a token can have
        attns = [layer.self_attn for layer in layers]
        first = attns[0]
        self.attns = attns
        self.num_layers = len(attns)                      # L
        self.kv_heads = first.num_kv_heads                # kvh
        self.head_dim = first.head_dim                    # hd
        self.rotary_emb = first.rotary_emb
        self.eps = float(first.k_norm.variance_epsilon)
        q_size = first.q_size
        # w_kv [L * 2 * kvh * hd, H]: per layer its K rows then its V rows
        self.w_kv = torch.cat([a.qkv_proj.weight[q_size:] for a in attns]).contiguous()
        biases = [getattr(a.qkv_proj, "bias", None) for a in attns]
        self.b_kv = (torch.cat([b[q_size:] for b in biases]).contiguous()
                     if biases[0] is not None else None)
        # k_norm_w [L, hd] float32
        self.k_norm_w = torch.stack([a.k_norm.weight.float() for a in attns]).contiguous()
        self._kernel_ok: bool | None = None  # decided on the first write (needs the pool)
        self._buffers: tuple[object, LayerBuffers] | None = None  # (pool, its layer buffers)

    @staticmethod
    def supported(layers) -> str | None:
        """None when the fused path applies to these layers, else the reason it does not."""
        attns = [layer.self_attn for layer in layers]
        if not attns:
            return "no draft layers"
        w = getattr(attns[0].qkv_proj, "weight", None)
        if w is None or not torch.is_floating_point(w) or w.dtype == torch.float8_e4m3fn:
            return "quantized or missing qkv_proj weight"
        if any(a.rotary_emb is not attns[0].rotary_emb for a in attns):
            return "layers with different rotary embeddings"
        if any(a.k_norm.variance_epsilon != attns[0].k_norm.variance_epsilon for a in attns):
            return "layers with different k_norm eps"
        return None

    @torch.no_grad()
    def write(self, ctx: torch.Tensor, positions: torch.Tensor, cache_loc: torch.Tensor,
              kv_pool) -> None:
        """ctx [n, H] projected target features, positions [n], cache_loc [n] slot ids."""
        n, L, kvh, hd = ctx.shape[0], self.num_layers, self.kv_heads, self.head_dim
        kv = F.linear(ctx.to(self.w_kv.dtype), self.w_kv, self.b_kv).view(n, L, 2, kvh, hd)
        if self._kernel_ok is None:
            self._kernel_ok = self._kernel_applies(kv_pool, ctx.device)
        if self._kernel_ok:
            store_context_kv(kv, self.k_norm_w, self.rotary_emb.cos_sin_cache, positions,
                             cache_loc, self._layer_buffers(kv_pool), self.eps, use_triton=True)
            return
        k32 = kv[:, :, 0].float()                                           # [n, L, kvh, hd]
        k32 = k32 * torch.rsqrt(k32.pow(2).mean(dim=-1, keepdim=True) + self.eps)
        k = (k32 * self.k_norm_w[:, None]).to(kv.dtype).reshape(n, L * kvh * hd)
        # the rotary op rotates a query and a key together; a one-head scratch query
        q_scratch = k.new_zeros(n, hd)
        _, k = self.rotary_emb(positions, q_scratch, k)
        k = k.reshape(n, L, kvh, hd).transpose(0, 1).contiguous()            # [L, n, kvh, hd]
        v = kv[:, :, 1].transpose(0, 1).contiguous()                         # [L, n, kvh, hd]
        for i, attn in enumerate(self.attns):
            kv_pool.set_kv_buffer(attn.attn, cache_loc, k[i], v[i],
                                  attn.attn.k_scale, attn.attn.v_scale)

    def _layer_buffers(self, kv_pool) -> LayerBuffers:
        """The pool's buffers of our layers (fixed for the pool's life), built once."""
        if self._buffers is None or self._buffers[0] is not kv_pool:
            ids = [a.attn.layer_id for a in self.attns]
            self._buffers = (kv_pool, LayerBuffers.of([kv_pool.get_key_buffer(i) for i in ids],
                                                      [kv_pool.get_value_buffer(i) for i in ids]))
        return self._buffers[1]

    def _kernel_applies(self, kv_pool, device) -> bool:
        """The fused store writes rows straight into the pool's per-layer buffers, so it
        needs a plain pool (one [slots, kvh, hd] tensor per layer, all alike, no
        quantization or scales) and a plain NeoX rotary cache covering every position."""
        rope = self.rotary_emb
        cache = getattr(rope, "cos_sin_cache", None)
        attn0 = self.attns[0].attn
        try:
            k_buf = kv_pool.get_key_buffer(attn0.layer_id)
        except Exception:  # pools without per-layer buffers (e.g. hybrid / offloaded)
            return False
        try:
            self._layer_buffers(kv_pool)
        except (ValueError, RuntimeError):  # layers' buffers differ (e.g. shape or dtype)
            return False
        return bool(
            triton_available(device)
            and not getattr(kv_pool, "is_quantized_kv_cache", False)
            and getattr(kv_pool, "store_dtype", None) == getattr(kv_pool, "dtype", None)
            and not getattr(kv_pool, "use_hnd", False)
            and isinstance(k_buf, torch.Tensor)
            and tuple(k_buf.shape[1:]) == (self.kv_heads, self.head_dim)
            and all(getattr(a.attn, s, None) in (None, 1.0)
                    for a in self.attns for s in ("k_scale", "v_scale"))
            and getattr(rope, "is_neox_style", False)
            and getattr(rope, "rotary_dim", None) == self.head_dim
            and isinstance(cache, torch.Tensor) and cache.ndim == 2
            and cache.shape[1] == self.head_dim
            and cache.shape[0] >= self.max_positions)
