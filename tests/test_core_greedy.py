"""Greedy losslessness of the reference decoder: token for token equal to the target alone."""
import pytest
import torch

from sglang_dflash.reference import generate, target_generate
from sglang_dflash.testing import agreeable_pair, random_drafter, tiny_target

N_PROMPTS, MAX_NEW = 32, 20


def make_prompts(n, vocab, seed=0):
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(1, 24, (n,), generator=g)
    return [torch.randint(2, vocab, (int(k),), generator=g).tolist() for k in lengths]


@pytest.fixture(scope="module", params=["qwen3", "llama"])
def case(request):
    target = tiny_target(request.param)
    prompts = make_prompts(N_PROMPTS, target.config.vocab_size)
    return target, prompts, target_generate(target, prompts, max_new_tokens=MAX_NEW)


@pytest.mark.parametrize("block_size", [2, 4, 8, 16])
def test_random_drafter_matches_target(case, block_size):
    target, prompts, expected = case
    drafter = random_drafter(target, block_size=block_size)
    got = [generate(target, drafter, [p], max_new_tokens=MAX_NEW).tokens[0] for p in prompts[:4]]
    assert got == expected[:4]
    for i in range(0, N_PROMPTS, 4):                                                # batch 4
        out = generate(target, drafter, prompts[i:i + 4], max_new_tokens=MAX_NEW)
        assert out.tokens == expected[i:i + 4]


@pytest.mark.parametrize("kind", ["qwen3", "llama"])
@pytest.mark.parametrize("block_size", [4, 8, 16])
def test_accepted_drafts_keep_output_identical(kind, block_size):
    target = tiny_target(kind, seed=11)
    drafter = agreeable_pair(target, block_size=block_size, strength=3.0)
    prompts = make_prompts(16, target.config.vocab_size, seed=1)
    expected = target_generate(target, prompts, max_new_tokens=40)
    out = generate(target, drafter, prompts, max_new_tokens=40)
    assert out.tokens == expected
    steps = [a for row in out.accept_lens for a in row]
    assert max(steps) == block_size            # whole blocks were accepted
    assert sum(steps) / len(steps) > 1.3       # drafts really are accepted
    assert min(steps) < block_size             # and some blocks only partly


def test_eos_and_max_tokens():
    target = tiny_target("qwen3", seed=3)
    drafter = agreeable_pair(target, block_size=8)
    prompts = make_prompts(8, target.config.vocab_size, seed=2)
    free = target_generate(target, prompts, max_new_tokens=30)
    eos = free[0][5]  # a token the target really emits
    expected = target_generate(target, prompts, max_new_tokens=30, eos_token_id=eos)
    out = generate(target, drafter, prompts, max_new_tokens=30, eos_token_id=eos)
    assert out.tokens == expected
    assert out.tokens[0][-1] == eos and len(out.tokens[0]) <= 6
    assert all(len(t) <= 30 for t in out.tokens)


def test_bad_arguments():
    target = tiny_target("qwen3")
    drafter = random_drafter(target)
    with pytest.raises(ValueError, match="block_size"):
        generate(target, drafter, [[1, 2]], max_new_tokens=4, block_size=1)
    with pytest.raises(ValueError, match="prompts"):
        generate(target, drafter, [[]], max_new_tokens=4)
