"""Seeded coins (sglang_dflash/coins.py): a hash that behaves like independent uniforms, and an
accept step that stays exact with them. That the worker's accept step uses them, and that a
request's decision then no longer depends on its batch: tests/test_sglang_plugin.py."""
import pytest
import torch

from sglang_dflash.coins import ACCEPT, BONUS, coin, step_coins
from sglang_dflash.ops import step as step_ops
from sglang_dflash.sampling import SamplingParams, target_probs
from test_core_sampling import chi2_excess

MASK64 = (1 << 64) - 1


def splitmix_reference(seed: int, position: int, stream: int) -> float:
    """The same hash on Python integers with explicit 64-bit wrapping."""
    def mix(x):
        x = (x + 0x9E3779B97F4A7C15) & MASK64
        x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
        x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & MASK64
        return x ^ (x >> 31)
    h = mix(mix(mix(seed & MASK64) ^ position) ^ stream)
    return (h >> 40) / 2 ** 24


def test_coin_equals_the_wrapping_reference():
    seeds = [0, 1, 42, 2 ** 40 + 7, -5, 2 ** 63 - 1]
    positions = [0, 3, 17, 1000, 123456, 2 ** 31 + 9]
    for s in seeds:
        for p in positions:
            for stream in (ACCEPT, BONUS):
                got = coin(torch.tensor([s]), torch.tensor([p]), stream)
                assert got.dtype == torch.float32
                assert got.item() == splitmix_reference(s, p, stream), (s, p, stream)


def test_coins_look_uniform_and_independent():
    n = 1 << 18
    pos = torch.arange(n, dtype=torch.int64)
    u = coin(torch.full((n,), 42), pos, ACCEPT)
    assert 0.0 <= u.min() and u.max() < 1.0
    counts = torch.bincount((u * 64).long(), minlength=64).float()
    assert chi2_excess(counts, torch.full((64,), 1 / 64)) < 6
    # neighbours in position, in seed and across streams are uncorrelated
    v_seed = coin(torch.full((n,), 43), pos, ACCEPT)
    v_stream = coin(torch.full((n,), 42), pos, BONUS)
    for a, b in ((u[1:], u[:-1]), (u, v_seed), (u, v_stream)):
        assert abs(torch.corrcoef(torch.stack([a, b]))[0, 1]) < 0.01


def test_step_coins_key_drafts_by_their_position():
    seed, committed = torch.tensor([7, 7, 8]), torch.tensor([10, 12, 10])
    acc, bonus = step_coins(seed, committed, 5)
    assert acc.shape == (3, 4) and bonus.shape == (3,)
    # the draft at position 13 has the same coin in row 0 (p=10, j=3) and row 1 (p=12, j=1)
    assert acc[0, 2] == acc[1, 0]
    assert acc[0, 0] != acc[2, 0]  # another seed
    assert bonus[0] != bonus[1] and bonus[0] == coin(torch.tensor(7), torch.tensor(10), BONUS)


def same_coin_for_every_draft(seed, committed, block_size):
    """Deliberately wrong keying: one coin per step, shared by all drafts."""
    acc, bonus = step_coins(seed, committed, block_size)
    return acc[:, :1].expand_as(acc).contiguous(), bonus


@pytest.mark.parametrize("coins, ok", [(step_coins, True), (same_coin_for_every_draft, False)])
def test_seeded_accept_emits_the_target_distribution(coins, ok):
    """Requests that differ only in their seed: their first two tokens follow the target's
    distribution; sharing one coin among a step's drafts is caught by the same bound."""
    g = torch.Generator().manual_seed(11)
    V, B, N = 10, 4, 40000
    logits = torch.randn(1, B, V, generator=g).mul(1.2).expand(N, -1, -1)
    probs = target_probs(logits, SamplingParams.make(N, temperature=1.0)).float().contiguous()
    draft = probs[0, :-1].argsort(-1, descending=True)[:, 0].expand(N, -1).contiguous()
    committed = torch.full((N,), 30, dtype=torch.int64)
    acc, bonus = coins(torch.arange(N, dtype=torch.int64) * 7919, committed, B)
    r = step_ops.sampling_accept(draft, probs, acc, bonus, committed, use_triton=False)
    first = torch.bincount(r.commit_tokens[:, 0], minlength=V).float()
    kept = r.accept_len >= 1
    second = torch.bincount(r.commit_tokens[kept, 1], minlength=V).float()
    excess = max(chi2_excess(first, probs[0, 0]), chi2_excess(second, probs[0, 1]))
    assert (excess < 6) == ok, f"{coins.__name__}: {excess:.1f} sd"


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_coins_on_the_gpu_equal_the_cpu():
    seed = torch.tensor([0, 42, -3, 2 ** 50])
    committed = torch.tensor([5, 5, 900, 2 ** 31])
    cpu = step_coins(seed, committed, 16)
    gpu = step_coins(seed.cuda(), committed.cuda(), 16)
    for a, b in zip(cpu, gpu):
        assert torch.equal(a, b.cpu())
