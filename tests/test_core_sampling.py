"""Speculative sampling is distribution-preserving; a wrong verifier is caught by the same bound."""
import pytest
import torch

from sglang_dflash.reference import generate
from sglang_dflash.sampling import SamplingParams, sample, target_probs
from sglang_dflash.testing import random_drafter, tiny_target
from sglang_dflash.verify import _result, leading_true, sampling_verify

PARAMS = [
    dict(temperature=1.0),
    dict(temperature=0.7, top_k=4),
    dict(temperature=1.3, top_p=0.8),
    dict(temperature=1.0, min_p=0.1),
    dict(temperature=0.9, top_k=6, top_p=0.9, min_p=0.05),
]


def chi2_excess(counts: torch.Tensor, probs: torch.Tensor) -> float:
    """Pearson chi-square over cells with expected count >= 5, in standard deviations above its
    mean (df). Cells the target gives zero mass must be empty."""
    n = counts.sum()
    assert counts[probs == 0].sum() == 0, "a token with zero target probability was emitted"
    expected = probs * n
    cells = expected >= 5
    stat = ((counts[cells] - expected[cells]) ** 2 / expected[cells]).sum()
    df = max(int(cells.sum()) - 1, 1)
    return float((stat - df) / (2 * df) ** 0.5)


def wrong_verify(draft, probs, generator=None):
    """Deliberately wrong: on rejection draws the bonus from p itself, without removing the draft."""
    b, n = draft.shape
    p_draft = probs[:, :-1].gather(2, draft.unsqueeze(-1)).squeeze(-1)
    accept_len = leading_true(torch.rand((b, n), generator=generator) < p_draft)
    row = probs[torch.arange(b), accept_len]
    return _result(draft, accept_len, sample(row, generator))


@pytest.mark.parametrize("kw", PARAMS)
def test_verifier_emits_target_distribution(kw):
    g = torch.Generator().manual_seed(3)
    V, B, N = 12, 4, 40000
    logits = torch.randn(1, B, V, generator=g).mul(1.5).expand(N, -1, -1)
    probs = target_probs(logits, SamplingParams.make(N, **kw))
    draft = probs[0, :-1].argsort(-1, descending=True)[:, 1].expand(N, -1).contiguous()  # plausible drafts
    for verifier, ok in ((sampling_verify, True), (wrong_verify, False)):
        r = verifier(draft, probs, generator=g)
        first = torch.bincount(r.commit_tokens[:, 0], minlength=V).float()
        # given the first draft was kept, the second emitted token follows row 1
        kept = r.accept_len >= 1
        second = torch.bincount(r.commit_tokens[kept, 1], minlength=V).float()
        excess = max(chi2_excess(first, probs[0, 0]), chi2_excess(second, probs[0, 1]))
        if ok:
            assert excess < 6, f"correct verifier rejected: {excess:.1f} sd"
        else:
            assert excess > 6, f"wrong verifier not caught: {excess:.1f} sd"


@pytest.mark.parametrize("kw", [PARAMS[0], PARAMS[4]])
def test_decoder_sampling_matches_target(kw):
    """First two generated tokens of the speculative decoder vs the exact target distribution
    (the second comes out of a speculative step)."""
    V, N = 16, 6000
    target = tiny_target("qwen3", vocab=V, hidden=32, layers=2, seed=5)
    drafter = random_drafter(target, block_size=4, mask_token_id=1, layers=1)
    prompt = [3, 9, 4, 11, 2]
    params = SamplingParams.make(N, **kw)
    out = generate(target, drafter, [prompt] * N, max_new_tokens=2, sampling=params,
                   generator=torch.Generator().manual_seed(7))
    pairs = torch.tensor([t[0] * V + t[1] for t in out.tokens])
    counts = torch.bincount(pairs, minlength=V * V).float()
    with torch.no_grad():
        one = SamplingParams.make(1, **kw)
        p1 = target_probs(target(torch.tensor([prompt])).logits[:, -1], one)[0]
        nxt = torch.tensor([prompt + [t] for t in range(V)])
        p2 = target_probs(target(nxt).logits[:, -1], SamplingParams.make(V, **kw))
    exact = (p1.unsqueeze(1) * p2).flatten()
    assert chi2_excess(counts, exact) < 6
