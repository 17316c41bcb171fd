"""Verifier unit cases written as token lists."""
import pytest
import torch

from sglang_dflash.sampling import SamplingParams, target_probs
from sglang_dflash.verify import greedy_verify, sampling_verify, verify_block

V = 10


def logits_for(argmaxes):
    """Target logits whose argmax per block position is the given token list."""
    x = torch.zeros(1, len(argmaxes), V)
    for j, t in enumerate(argmaxes):
        x[0, j, t] = 5.0
    return x


@pytest.mark.parametrize("draft, target, accepted, bonus", [
    ([1, 2, 3], [1, 5, 3, 4], 1, 5),     # second draft refused: keep 1, bonus 5
    ([1, 2, 3], [1, 2, 3, 4], 3, 4),     # all kept, bonus from the last row
    ([7, 2, 3], [1, 2, 3, 4], 0, 1),     # first refused: nothing kept, bonus 1
    ([1, 9, 3], [1, 2, 3, 4], 1, 2),     # a later match after a miss does not count
    ([4], [4, 8], 1, 8),                 # block of 2
    ([4], [3, 8], 0, 3),
])
def test_greedy_cases(draft, target, accepted, bonus):
    r = greedy_verify(torch.tensor([draft]), logits_for(target))
    assert int(r.accept_len) == accepted and int(r.bonus) == bonus
    expected = draft[:accepted] + [bonus] + [-1] * (len(draft) - accepted)
    assert r.commit_tokens[0].tolist() == expected


def test_greedy_batch_rows_are_independent():
    drafts = torch.tensor([[1, 2, 3], [1, 2, 3], [9, 9, 9]])
    logits = torch.cat([logits_for([1, 2, 3, 4]), logits_for([1, 5, 3, 4]), logits_for([0, 0, 0, 0])])
    r = greedy_verify(drafts, logits)
    assert r.accept_len.tolist() == [3, 1, 0] and r.bonus.tolist() == [4, 5, 0]


def test_point_mass_sampling_equals_greedy():
    """Temperature 0 rows inside a sampled batch behave exactly like greedy verification."""
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(64, 5, V, generator=g)
    draft = torch.randint(0, V, (64, 4), generator=g)
    draft[::2] = logits[::2, :-1].argmax(-1)  # half the rows fully agree
    params = SamplingParams.make(64, temperature=0.0)
    params.temperature[1::4] = 1.0  # a few sampled rows force the sampling path
    r = verify_block(draft, logits, params, generator=g)
    greedy = greedy_verify(draft, logits)
    rows = params.temperature == 0
    assert torch.equal(r.accept_len[rows], greedy.accept_len[rows])
    assert torch.equal(r.bonus[rows], greedy.bonus[rows])


def test_sampling_never_emits_zero_probability_tokens():
    g = torch.Generator().manual_seed(1)
    logits = torch.randn(500, 4, V, generator=g)
    params = SamplingParams.make(500, temperature=1.0, top_k=3)
    probs = target_probs(logits, params)
    draft = torch.randint(0, V, (500, 3), generator=g)
    r = sampling_verify(draft, probs, generator=g)
    for i in range(500):
        a = int(r.accept_len[i])
        for j, tok in enumerate(r.commit_tokens[i, : a + 1].tolist()):
            assert probs[i, j, tok] > 0


def test_sampling_params_reject_bad_values():
    with pytest.raises(ValueError, match="top_p"):
        SamplingParams.make(1, temperature=1.0, top_p=0.0)
    with pytest.raises(ValueError, match="temperature"):
        SamplingParams.make(1, temperature=-1.0)
    with pytest.raises(ValueError, match="min_p"):
        SamplingParams.make(1, min_p=1.5)


def test_target_probs_filters():
    logits = torch.log(torch.tensor([[0.5, 0.25, 0.15, 0.1]]))
    def probs(**kw):
        return target_probs(logits, SamplingParams.make(1, temperature=1.0, **kw))[0]
    assert torch.allclose(probs(), torch.tensor([0.5, 0.25, 0.15, 0.1]))
    assert torch.allclose(probs(top_k=2), torch.tensor([2 / 3, 1 / 3, 0, 0]))
    # top_p keeps a token while the mass ranked above it is <= top_p
    assert torch.allclose(probs(top_p=0.5), torch.tensor([2 / 3, 1 / 3, 0, 0]))
    assert torch.allclose(probs(top_p=0.4), torch.tensor([1.0, 0, 0, 0]))
    assert torch.allclose(probs(min_p=0.35), torch.tensor([0.5, 0.25, 0.0, 0.0]) / 0.75)
    hot = target_probs(logits, SamplingParams.make(1, temperature=0.0))[0]
    assert hot.tolist() == [1.0, 0.0, 0.0, 0.0]
