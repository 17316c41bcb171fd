"""The context-K/V store kernel against its torch reference (Triton's interpreter on CPU,
compiled on a GPU), over shapes that include non-power-of-two heads and head dims."""

import os

import pytest
import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")
pytest.importorskip("triton")

from sglang_dflash.ops.context_kv import (  # noqa: E402
    LayerBuffers,
    store_context_kv,
    store_context_kv_reference,
)
from sglang_dflash.ops.loader import triton_available  # noqa: E402

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"


def _case(n, L, kvh, hd, dtype, seed):
    g = torch.Generator().manual_seed(seed)
    kv = (torch.randn(n, L, 2, kvh, hd, generator=g) * 3).to(dtype).to(DEVICE)
    norm_w = (torch.rand(L, hd, generator=g) + 0.5).to(DEVICE)
    P = 64
    ang = torch.rand(P, hd // 2, generator=g) * 6.28
    cos_sin = torch.cat([ang.cos(), ang.sin()], dim=-1).to(DEVICE)
    positions = torch.randint(0, P, (n,), generator=g).to(DEVICE)
    slots = torch.randperm(3 * n + 1, generator=g)[:n].to(DEVICE)

    def pool():  # L key and L value buffers, allocated one by one as SGLang does
        return [torch.zeros(3 * n + 1, kvh, hd, dtype=dtype, device=DEVICE) for _ in range(2 * L)]
    return kv, norm_w, cos_sin, positions, slots, pool(), pool()


@pytest.mark.parametrize("n,L,kvh,hd", [(1, 1, 1, 2), (7, 3, 2, 16), (5, 5, 3, 80), (16, 2, 8, 128)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_kernel_matches_reference(n, L, kvh, hd, dtype):
    assert triton_available(DEVICE)
    kv, norm_w, cos_sin, positions, slots, fast, ref = _case(n, L, kvh, hd, dtype, seed=n + hd)
    # interleave: the kernel must reach buffers before and after the first one in memory
    bufs = LayerBuffers.of(fast[1::2], fast[0::2])
    store_context_kv(kv, norm_w, cos_sin, positions, slots, bufs, 1e-6, use_triton=True)
    for layer in range(L):
        k1, v1 = fast[2 * layer + 1], fast[2 * layer]
        k2, v2 = ref[2 * layer + 1], ref[2 * layer]
        store_context_kv_reference(kv, layer, norm_w[layer], cos_sin, positions, slots, k2, v2, 1e-6)
        tol = dict(atol=1e-5, rtol=1e-5) if dtype == torch.float32 else dict(atol=2e-2, rtol=2e-2)
        torch.testing.assert_close(k1, k2, **tol)
        assert torch.equal(v1, v2)
        untouched = torch.ones(k1.shape[0], dtype=torch.bool, device=DEVICE)
        untouched[slots] = False
        assert not k1[untouched].any() and not v1[untouched].any()


def test_torch_path_equals_the_layer_by_layer_reference():
    kv, norm_w, cos_sin, positions, slots, fast, ref = _case(6, 3, 2, 16, torch.float32, seed=3)
    store_context_kv(kv, norm_w, cos_sin, positions, slots, LayerBuffers.of(fast[:3], fast[3:]),
                     1e-6, use_triton=False)
    for layer in range(3):
        store_context_kv_reference(kv, layer, norm_w[layer], cos_sin, positions, slots,
                                   ref[layer], ref[3 + layer], 1e-6)
    assert all(torch.equal(a, b) for a, b in zip(fast, ref))


def test_checks_name_the_argument():
    kv, norm_w, cos_sin, positions, slots, bufs, _ = _case(4, 2, 2, 16, torch.float32, 0)
    layers = LayerBuffers.of(bufs[:2], bufs[2:])
    with pytest.raises(ValueError, match="norm_w"):
        store_context_kv(kv, norm_w.double(), cos_sin, positions, slots, layers, 1e-6)
    with pytest.raises(ValueError, match="buffers: expected 2 layers"):
        store_context_kv(kv, norm_w, cos_sin, positions, slots, LayerBuffers.of(bufs[:1], bufs[2:3]), 1e-6)
    with pytest.raises(ValueError, match=r"v_bufs\[1\]"):
        LayerBuffers.of(bufs[:2], [bufs[2], bufs[3][:, :1]])
    with pytest.raises(ValueError, match="positions"):
        store_context_kv(kv, norm_w, cos_sin, positions.int(), slots, layers, 1e-6)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="compiled kernels exist on a GPU only")
def test_slot_and_position_views_at_any_offset_reuse_the_compiled_kernel():
    from sglang_dflash.ops.loader import load_kernels

    cache = getattr(load_kernels("context_kv").context_kv_store_kernel, "device_caches", None)
    if cache is None:
        pytest.skip("this Triton keeps no per-device kernel cache to inspect")
    kv, norm_w, cos_sin, positions, slots, bufs, _ = _case(6, 2, 2, 16, torch.bfloat16, 1)
    layers = LayerBuffers.of(bufs[:2], bufs[2:])
    store_context_kv(kv, norm_w, cos_sin, positions, slots, layers, 1e-6)
    before = sum(len(entry[0]) for entry in cache.values())
    odd_pos = torch.cat([positions[:1], positions])[1:]   # views 8 bytes off alignment
    odd_slots = torch.cat([slots[:1], slots])[1:]
    store_context_kv(kv, norm_w, cos_sin, odd_pos, odd_slots, layers, 1e-6)
    torch.cuda.synchronize()
    assert sum(len(entry[0]) for entry in cache.values()) == before


def _writer(L=2, kvh=2, hd=16, H=32):
    """A ContextKVWriter over stand-in layers (only the attributes it reads)."""
    from types import SimpleNamespace as NS

    from sglang_dflash.sglang.context_kv import ContextKVWriter

    class Rope:  # the cache the kernel reads; the torch path's call leaves keys unrotated
        cos_sin_cache = torch.rand(64, hd, device=DEVICE)
        is_neox_style, rotary_dim = True, hd

        def __call__(self, positions, q, k):
            return q, k

    rope = Rope()
    layers = [NS(self_attn=NS(
        qkv_proj=NS(weight=torch.randn(kvh * hd * 3, H, device=DEVICE), bias=None),
        q_size=kvh * hd, num_kv_heads=kvh, head_dim=hd, rotary_emb=rope,
        k_norm=NS(weight=torch.ones(hd, device=DEVICE), variance_epsilon=1e-6),
        attn=NS(layer_id=i, k_scale=None, v_scale=None))) for i in range(L)]
    return ContextKVWriter(layers, max_positions=64)


class _Pool:
    def __init__(self, k, v):
        self.k, self.v, self.dtype, self.store_dtype = k, v, k[0].dtype, k[0].dtype

    def get_key_buffer(self, i):
        return self.k[i]

    def get_value_buffer(self, i):
        return self.v[i]

    def set_kv_buffer(self, attn, loc, k, v, k_scale, v_scale):  # SGLang's per-layer store
        self.k[attn.layer_id][loc] = k
        self.v[attn.layer_id][loc] = v


def test_writer_uses_the_one_launch_store_only_when_every_layer_buffer_is_alike():
    writer = _writer()
    alike = _Pool([torch.zeros(10, 2, 16, device=DEVICE) for _ in range(2)],
                  [torch.zeros(10, 2, 16, device=DEVICE) for _ in range(2)])
    assert writer._kernel_applies(alike, DEVICE)
    writer = _writer()  # e.g. a pool whose layers have different slot counts
    differ = _Pool([torch.zeros(10, 2, 16, device=DEVICE), torch.zeros(12, 2, 16, device=DEVICE)],
                   [torch.zeros(10, 2, 16, device=DEVICE), torch.zeros(12, 2, 16, device=DEVICE)])
    assert not writer._kernel_applies(differ, DEVICE)
    # and the write still lands, through the per-layer torch path
    ctx = torch.randn(3, 32, device=DEVICE)
    writer.write(ctx, torch.tensor([1, 5, 9], device=DEVICE), torch.tensor([0, 4, 9], device=DEVICE), differ)
    assert differ.k[1][[0, 4, 9]].abs().sum() > 0 and differ.v[0][[0, 4, 9]].abs().sum() > 0
