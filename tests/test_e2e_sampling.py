"""Sampled requests through our DFlashWorker: exact distribution, not a greedy fallback.

The tokens a sampled request emits after its first one come from our verifier
(rejection sampling of the drafts against the target distribution). We draw many
3-token continuations of one prompt and compare the joint distribution of the first
two tokens with the exact one computed from the target with Hugging Face transformers
and the core's ``target_probs`` (chi-square test). A batch mixing greedy and sampled
requests must keep the greedy ones identical to the target's greedy output.
"""

from __future__ import annotations

import math

import pytest

from cpu_sglang import e2e

e2e.require_sglang()
pytestmark = [pytest.mark.sglang, pytest.mark.slow]

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

BLOCK = 4
SAMPLES = 400


@pytest.fixture(scope="module")
def pair():
    return e2e.steered_pair()


@pytest.fixture(scope="module")
def hf_target(pair):
    return e2e.load_hf(pair.target)


@pytest.fixture(scope="module")
def server(pair):
    s = e2e.start("sampling-b4", pair.target, e2e.dflash_args(pair.drafters[BLOCK], BLOCK))
    yield s
    s.stop()


def _probs(logits, sp) -> torch.Tensor:
    from sglang_dflash.sampling import SamplingParams, target_probs

    params = SamplingParams.make(1, temperature=sp["temperature"], top_k=max(sp.get("top_k", 0), 0),
                                 top_p=sp.get("top_p", 1.0), min_p=sp.get("min_p", 0.0))
    return target_probs(logits.view(1, -1), params)[0]


def _exact_joint(model, prompt_ids, sp) -> dict[tuple[int, int], float]:
    """p(t1, t2) = p(t1 | prompt) p(t2 | prompt, t1) under the sampling transform."""
    with torch.no_grad():
        p1 = _probs(model(torch.tensor([prompt_ids])).logits[0, -1], sp)
        joint = {}
        for t1 in torch.nonzero(p1).flatten().tolist():
            p2 = _probs(model(torch.tensor([prompt_ids + [t1]])).logits[0, -1], sp)
            for t2 in torch.nonzero(p2).flatten().tolist():
                joint[(t1, t2)] = float(p1[t1] * p2[t2])
    return joint


def _chi_square_z(counts: dict, expected_p: dict, n: int) -> tuple[float, int]:
    """Pearson chi-square over cells with expected count >= 5 (the rest pooled), returned
    as a Wilson-Hilferty z score (about N(0, 1) when the distributions agree)."""
    big = {c for c, p in expected_p.items() if p * n >= 5}
    stat, cells = 0.0, 0
    for c in big:
        e = expected_p[c] * n
        stat += (counts.get(c, 0) - e) ** 2 / e
        cells += 1
    rest_e = n * sum(p for c, p in expected_p.items() if c not in big)
    rest_o = sum(v for c, v in counts.items() if c not in big)
    if rest_e >= 5:
        stat += (rest_o - rest_e) ** 2 / rest_e
        cells += 1
    else:
        assert rest_o <= max(5, 3 * rest_e), f"{rest_o} samples in cells of total mass {rest_e / n}"
    k = cells - 1
    z = ((stat / k) ** (1 / 3) - (1 - 2 / (9 * k))) / math.sqrt(2 / (9 * k))
    return z, k


@pytest.mark.parametrize("sp", [
    {"temperature": 1.0, "top_k": 6},
    {"temperature": 0.7, "top_p": 0.85, "min_p": 0.05},
], ids=["temp1-topk6", "temp0.7-topp0.85-minp0.05"])
def test_sampled_distribution_is_the_targets(server, hf_target, sp):
    model, tok = hf_target
    prompt_ids = tok.encode(e2e.PROMPTS[3])
    sampling = {**sp, "max_new_tokens": 3, "ignore_eos": True}
    results = server.post("/generate", {"input_ids": [prompt_ids] * SAMPLES,
                                        "sampling_params": sampling})
    pairs = [tuple(r["output_ids"][:2]) for r in results]
    counts: dict = {}
    for p in pairs:
        counts[p] = counts.get(p, 0) + 1
    exact = _exact_joint(model, prompt_ids, sp)
    outside = [p for p in counts if p not in exact]
    assert not outside, f"sampled pairs the target gives zero probability: {outside[:5]}"
    z, dof = _chi_square_z(counts, exact, SAMPLES)
    assert z < 3.7, f"sampled distribution differs from the target's (z={z:.2f}, dof={dof})"
    # The verifier really ran on sampled rows: drafts were accepted in one step
    # (3 tokens after a single verify), and outputs vary.
    one_step = sum(1 for r in results if r["meta_info"]["spec_verify_ct"] == 1)
    assert one_step > 0, "no sampled request accepted a draft"
    assert len(counts) > 1
    assert "falling back to greedy" not in server.log_text()


def test_mixed_greedy_and_sampled_batch(server, hf_target):
    model, tok = hf_target
    prompts = e2e.PROMPTS[:8]
    greedy = {"temperature": 0, "max_new_tokens": e2e.MAX_NEW, "ignore_eos": True}
    sampled = {"temperature": 0.9, "top_p": 0.9, "max_new_tokens": e2e.MAX_NEW, "ignore_eos": True}
    params = [greedy if i % 2 == 0 else sampled for i in range(len(prompts))]
    results = server.post("/generate", {"text": prompts, "sampling_params": params})
    for i, (prompt, r) in enumerate(zip(prompts, results)):
        assert len(r["output_ids"]) == e2e.MAX_NEW
        if i % 2:
            continue
        ids = torch.tensor([tok.encode(prompt)])
        with torch.no_grad():
            ref = model.generate(ids, max_new_tokens=e2e.MAX_NEW, do_sample=False,
                                 eos_token_id=None, pad_token_id=0)[0, ids.shape[1]:].tolist()
        assert r["output_ids"] == ref, f"greedy request {i} changed inside a sampled batch"
