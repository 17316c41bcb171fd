"""The context-K/V store kernel against its torch reference (Triton's interpreter on CPU,
compiled on a GPU), over shapes that include non-power-of-two heads and head dims."""

import os

import pytest
import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")
pytest.importorskip("triton")

from sglang_dflash.ops.context_kv import store_context_kv, store_context_kv_reference  # noqa: E402
from sglang_dflash.ops.loader import triton_available  # noqa: E402

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"


def _case(n, L, kvh, hd, dtype, seed):
    g = torch.Generator().manual_seed(seed)
    kv = (torch.randn(n, L, 2, kvh, hd, generator=g) * 3).to(dtype).to(DEVICE)
    norm_w = (torch.rand(hd, generator=g) + 0.5).to(DEVICE)
    P = 64
    ang = torch.rand(P, hd // 2, generator=g) * 6.28
    cos_sin = torch.cat([ang.cos(), ang.sin()], dim=-1).to(DEVICE)
    positions = torch.randint(0, P, (n,), generator=g).to(DEVICE)
    slots = torch.randperm(3 * n + 1, generator=g)[:n].to(DEVICE)
    bufs = [torch.zeros(3 * n + 1, kvh, hd, dtype=dtype, device=DEVICE) for _ in range(4)]
    return kv, norm_w, cos_sin, positions, slots, bufs


@pytest.mark.parametrize("n,L,kvh,hd", [(1, 1, 1, 2), (7, 3, 2, 16), (5, 5, 3, 80), (16, 2, 8, 128)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_kernel_matches_reference(n, L, kvh, hd, dtype):
    assert triton_available(DEVICE)
    kv, norm_w, cos_sin, positions, slots, (k1, v1, k2, v2) = _case(n, L, kvh, hd, dtype, seed=n + hd)
    for layer in range(L):
        store_context_kv(kv, layer, norm_w, cos_sin, positions, slots, k1, v1, 1e-6, use_triton=True)
        store_context_kv_reference(kv, layer, norm_w, cos_sin, positions, slots, k2, v2, 1e-6)
        tol = dict(atol=1e-5, rtol=1e-5) if dtype == torch.float32 else dict(atol=2e-2, rtol=2e-2)
        torch.testing.assert_close(k1, k2, **tol)
        assert torch.equal(v1, v2)
        untouched = torch.ones(k1.shape[0], dtype=torch.bool, device=DEVICE)
        untouched[slots] = False
        assert not k1[untouched].any() and not v1[untouched].any()


def test_checks_name_the_argument():
    kv, norm_w, cos_sin, positions, slots, (k, v, _, _) = _case(4, 2, 2, 16, torch.float32, 0)
    with pytest.raises(ValueError, match="norm_w"):
        store_context_kv(kv, 0, norm_w.double(), cos_sin, positions, slots, k, v, 1e-6)
    with pytest.raises(ValueError, match="layer"):
        store_context_kv(kv, 2, norm_w, cos_sin, positions, slots, k, v, 1e-6)
    with pytest.raises(ValueError, match="v_buf"):
        store_context_kv(kv, 0, norm_w, cos_sin, positions, slots, k, v[:, :1], 1e-6)
    with pytest.raises(ValueError, match="positions"):
        store_context_kv(kv, 0, norm_w, cos_sin, positions.int(), slots, k, v, 1e-6)
