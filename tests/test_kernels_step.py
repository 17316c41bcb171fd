"""Triton step kernels vs the torch reference, on random inputs over batch and block sizes.

On a CPU machine the kernels run in Triton's interpreter (TRITON_INTERPRET=1); on a GPU they run
compiled. Skipped only when Triton itself is not installed.
"""
import os

import pytest
import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")
pytest.importorskip("triton")

from sglang_dflash.ops import step  # noqa: E402
from sglang_dflash.sampling import SamplingParams, target_probs  # noqa: E402

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
CASES = [(1, 2), (3, 4), (8, 8), (5, 16), (33, 16)]


def both(fn, *args):
    return fn(*args, use_triton=True), fn(*args, use_triton=False)


def _table(rows, width, g):
    """A req_to_token table with distinct random slots, and a view of it with a wider row
    stride (SGLang's table is a full [rows, max_context_len] tensor)."""
    full = torch.randperm(rows * (width + 3), generator=g).to(torch.int32).view(rows, width + 3)
    return full[:, :width]


@pytest.mark.parametrize("b, B", CASES)
def test_prepare_block(b, B):
    g = torch.Generator().manual_seed(b * 100 + B)
    anchor = torch.randint(0, 1000, (b,), generator=g).to(DEVICE)
    committed = torch.randint(1, 500, (b,), generator=g).to(DEVICE)
    table = _table(b + 4, 500 + B, g).to(DEVICE)
    pool_idx = torch.randperm(b + 4, generator=g)[:b].to(DEVICE)
    (ids, pos, slots), (ref_ids, ref_pos, ref_slots) = both(
        step.prepare_block, anchor, committed, pool_idx, table, B, 7)
    assert torch.equal(ids, ref_ids) and torch.equal(pos, ref_pos) and torch.equal(slots, ref_slots)
    assert ids[:, 0].tolist() == anchor.tolist() and (ids[:, 1:] == 7).all()
    assert slots.dtype == torch.int64
    for i in range(b):  # the slot of position committed + j of request i's table row
        row = table[pool_idx[i]].tolist()
        assert slots[i].tolist() == [row[p] for p in pos[i].tolist()]


@pytest.mark.parametrize("b, B", CASES)
def test_greedy_accept(b, B):
    g = torch.Generator().manual_seed(b * 10 + B)
    best = torch.randint(0, 5, (b, B), generator=g)
    draft = best[:, :-1].clone()
    cut = torch.randint(0, B, (b,), generator=g)              # force every accept length to occur
    for i in range(b):
        if cut[i] < B - 1:
            draft[i, cut[i]] = (best[i, cut[i]] + 1) % 5
    committed = torch.randint(0, 100, (b,), generator=g)
    fast, ref = both(step.greedy_accept, draft.to(DEVICE), best.to(DEVICE), committed.to(DEVICE))
    for name in ("accept_len", "commit_len", "bonus", "commit_tokens", "new_len"):
        assert torch.equal(getattr(fast, name), getattr(ref, name)), name
    accept = cut.clamp(max=B - 1)
    assert torch.equal(ref.accept_len.cpu(), accept.to(torch.int32))
    assert torch.equal(ref.commit_len.cpu(), (accept + 1).to(torch.int32))
    for i in range(b):  # d_1 .. d_A, bonus = best[A], then zeros
        a = int(accept[i])
        assert fast.commit_tokens[i].tolist() == draft[i, :a].tolist() + [int(best[i, a])] + [0] * (B - a - 1)


@pytest.mark.parametrize("b, B", CASES)
@pytest.mark.parametrize("V", [7, 300])
def test_sampling_accept(b, B, V):
    g = torch.Generator().manual_seed(b * 1000 + B * 10 + V)
    logits = torch.randn(b, B, V, generator=g) * 2
    params = SamplingParams.make(b, temperature=0.9, top_k=V // 2 + 1, top_p=0.95, min_p=0.01)
    probs = target_probs(logits, params).contiguous()
    # drafts: the target's favourite half the time, so all accept lengths show up
    fav = probs[:, :-1].argmax(-1)
    other = torch.randint(0, V, (b, B - 1), generator=g)
    draft = torch.where(torch.rand(b, B - 1, generator=g) < 0.7, fav, other)
    accept_u = torch.rand(b, B - 1, generator=g)
    bonus_u = torch.rand(b, generator=g)
    committed = torch.randint(0, 100, (b,), generator=g)
    args = [t.to(DEVICE) for t in (draft, probs, accept_u, bonus_u, committed)]
    fast, ref = both(step.sampling_accept, *args)
    assert torch.equal(fast.accept_len, ref.accept_len)
    assert torch.equal(fast.commit_len, ref.commit_len)
    assert torch.equal(fast.new_len, ref.new_len)
    # the bonus is an inverse-CDF draw: float sums in another order may differ only at a boundary
    differ = (fast.bonus != ref.bonus).sum().item()
    assert differ <= max(1, b // 20)
    same = fast.bonus == ref.bonus
    assert torch.equal(fast.commit_tokens[same], ref.commit_tokens[same])
    rows = torch.arange(b, device=fast.bonus.device)
    assert (probs.to(DEVICE)[rows, fast.accept_len, fast.bonus] > 0).all()


def test_wrappers_check_inputs():
    with pytest.raises(ValueError, match="draft: expected shape"):
        step.greedy_accept(torch.zeros(2, 3, dtype=torch.long), torch.zeros(2, 3, dtype=torch.long),
                           torch.zeros(2, dtype=torch.long))
    with pytest.raises(ValueError, match="probs: expected dtype"):
        step.sampling_accept(torch.zeros(1, 1, dtype=torch.long), torch.zeros(1, 2, 4, dtype=torch.float64),
                             torch.zeros(1, 1), torch.zeros(1), torch.zeros(1, dtype=torch.long))
    one, table = torch.zeros(1, dtype=torch.long), torch.zeros(1, 8, dtype=torch.int32)
    with pytest.raises(ValueError, match="block_size"):
        step.prepare_block(one, one, one, table, 1, 0)
    with pytest.raises(ValueError, match="req_pool_indices: expected dtype"):
        step.prepare_block(one, one, one.int(), table, 4, 0)
    with pytest.raises(ValueError, match="req_to_token: expected a row-major"):
        step.prepare_block(one, one, one, table.long(), 4, 0)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="compiled kernels exist on a GPU only")
def test_unaligned_batch_views_reuse_the_compiled_kernels():
    """SGLang may hand the step views at odd offsets: the same compiled kernels must serve them
    (a second compile would stall the step the first time it happens)."""
    from sglang_dflash.ops.loader import load_kernels

    kernels = load_kernels("dflash_step")
    fns = (kernels.prepare_block_kernel, kernels.greedy_accept_kernel)
    caches = [getattr(fn, "device_caches", None) for fn in fns]
    if any(c is None for c in caches):
        pytest.skip("this Triton keeps no per-device kernel cache to inspect")

    def compiled():
        return [sum(len(entry[0]) for entry in c.values()) for c in caches]

    def run(offset):
        buf = torch.arange(3, 3 + 9 + offset, device="cuda", dtype=torch.int64)
        anchor, committed = buf[offset: offset + 4], buf[offset + 4: offset + 8]
        pool_idx = torch.arange(0, 8, device="cuda")[offset: offset + 4]
        table = torch.zeros(16, 64, dtype=torch.int32, device="cuda")
        step.prepare_block(anchor, committed, pool_idx, table, 8, 0)
        best = torch.randint(0, 50, (4, 8), device="cuda")
        step.greedy_accept(best[:, 1:].contiguous(), best, committed)

    run(0)
    before = compiled()
    run(1)  # every input view 8 bytes off 16-byte alignment
    torch.cuda.synchronize()
    assert compiled() == before
    for b in (1, 2, 3, 5, 6):  # output rows at every batch-size residue
        best = torch.randint(0, 50, (b, 8), device="cuda")
        step.greedy_accept(best[:, 1:].contiguous(), best, torch.zeros(b, dtype=torch.long, device="cuda"))
    torch.cuda.synchronize()
    assert compiled() == before
