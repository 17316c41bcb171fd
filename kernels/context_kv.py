"""Triton kernel: store every draft layer's context K/V (norm + RoPE + scatter into the KV pool).

Input is the stacked K/V projection of the committed tokens' target features, all layers.
Per token and layer: RMS-normalise each key head (float32, times the layer's k_norm weight,
rounded to the pool dtype like the model's RMSNorm), rotate it NeoX-style with the cached
cos/sin of its position, and write key and value rows to the token's slot in that layer's
buffers. One program per (token, layer), so a step costs one launch for all layers.

SGLang allocates each layer's K (and V) buffer separately; the kernel reaches layer l's at
``k_out_ptr + k_off[l]`` (element offsets from the first layer's buffer, same dtype and
shape), which the wrapper computes once per pool.

Loaded by path from `sglang_dflash/ops/context_kv.py` (the checked wrapper); this folder is
never importable as `kernels`.
"""
import triton
import triton.language as tl


@triton.jit(do_not_specialize_on_alignment=["pos_ptr", "slot_ptr"])
def context_kv_store_kernel(
    kv_ptr,          # [n, L, 2, KVH, HD] projection output (K rows then V rows per layer)
    norm_w_ptr,      # [L, HD] float32 k_norm weight of each layer
    cos_sin_ptr,     # [max_pos, HD] cos (first HD/2) then sin (last HD/2)
    pos_ptr,         # [n] int64 positions
    slot_ptr,        # [n] int64 KV slots
    k_out_ptr,       # [slots, KVH, HD] the first layer's key buffer
    v_out_ptr,       # [slots, KVH, HD] the first layer's value buffer
    k_off_ptr,       # [L] int64 element offset of each layer's key buffer from k_out_ptr
    v_off_ptr,       # [L] int64 the same for the value buffers
    eps,
    L: tl.constexpr,
    KVH: tl.constexpr,
    HD: tl.constexpr,
    BLOCK_H: tl.constexpr,   # KVH padded to a power of two
    BLOCK_D: tl.constexpr,   # HD / 2 padded to a power of two
):
    t = tl.program_id(0).to(tl.int64)
    layer = tl.program_id(1)
    half: tl.constexpr = HD // 2
    h = tl.arange(0, BLOCK_H)[:, None]             # [BLOCK_H, 1]
    d = tl.arange(0, BLOCK_D)[None, :]             # [1, BLOCK_D]
    live = (h < KVH) & (d < half)
    row = KVH * HD
    k_base = kv_ptr + ((t * L + layer) * 2) * row
    v_base = k_base + row

    k1 = tl.load(k_base + h * HD + d, mask=live, other=0.0).to(tl.float32)
    k2 = tl.load(k_base + h * HD + half + d, mask=live, other=0.0).to(tl.float32)
    var = (tl.sum(k1 * k1, axis=1) + tl.sum(k2 * k2, axis=1)) / HD          # [BLOCK_H]
    inv = 1.0 / tl.sqrt(var + eps)
    w1 = tl.load(norm_w_ptr + layer * HD + d, mask=d < half, other=0.0)
    w2 = tl.load(norm_w_ptr + layer * HD + half + d, mask=d < half, other=0.0)
    # the model's RMSNorm rounds to the activation dtype before RoPE
    k1 = (k1 * inv[:, None] * w1).to(k_out_ptr.dtype.element_ty).to(tl.float32)
    k2 = (k2 * inv[:, None] * w2).to(k_out_ptr.dtype.element_ty).to(tl.float32)

    pos = tl.load(pos_ptr + t)
    cos = tl.load(cos_sin_ptr + pos * HD + d, mask=d < half, other=0.0).to(tl.float32)
    sin = tl.load(cos_sin_ptr + pos * HD + half + d, mask=d < half, other=0.0).to(tl.float32)
    r1 = k1 * cos - k2 * sin
    r2 = k2 * cos + k1 * sin

    slot = tl.load(slot_ptr + t)
    out = slot * row + h * HD + d
    k_dst = k_out_ptr + tl.load(k_off_ptr + layer)
    v_dst = v_out_ptr + tl.load(v_off_ptr + layer)
    tl.store(k_dst + out, r1.to(k_out_ptr.dtype.element_ty), mask=live)
    tl.store(k_dst + out + half, r2.to(k_out_ptr.dtype.element_ty), mask=live)
    v1 = tl.load(v_base + h * HD + d, mask=live, other=0.0)
    v2 = tl.load(v_base + h * HD + half + d, mask=live, other=0.0)
    tl.store(v_dst + out, v1.to(v_out_ptr.dtype.element_ty), mask=live)
    tl.store(v_dst + out + half, v2.to(v_out_ptr.dtype.element_ty), mask=live)
