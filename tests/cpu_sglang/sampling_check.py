"""The sampling check shared by the CPU and GPU end-to-end suites: the exact joint
distribution of a request's first two sampled tokens, computed from the target with Hugging
Face transformers and the core's ``target_probs``, and a chi-square test of sampled counts
against it."""

from __future__ import annotations

import math

import torch

SAMPLES = 400
Z_LIMIT = 3.7  # one-sided, about 1e-4 false-alarm rate for N(0, 1)


def joint_counts(results) -> dict:
    """Counts of (first, second) output token over /generate results."""
    counts: dict = {}
    for r in results:
        pair = tuple(r["output_ids"][:2])
        counts[pair] = counts.get(pair, 0) + 1
    return counts


def probs(logits, sp) -> torch.Tensor:
    from sglang_dflash.sampling import SamplingParams, target_probs

    params = SamplingParams.make(1, temperature=sp["temperature"], top_k=max(sp.get("top_k", 0), 0),
                                 top_p=sp.get("top_p", 1.0), min_p=sp.get("min_p", 0.0))
    return target_probs(logits.view(1, -1), params)[0]


def exact_joint(model, prompt_ids, sp, allowed=None) -> dict[tuple[int, int], float]:
    """p(t1, t2) = p(t1 | prompt) p(t2 | prompt, t1) under the sampling transform.

    ``allowed(output_so_far) -> bool [V]``, if given, is a constraint (a grammar): tokens it
    rules out get logit -inf before the transform, as the server masks them."""
    def next_probs(out: list[int]) -> torch.Tensor:
        logits = model(torch.tensor([prompt_ids + out])).logits[0, -1]
        if allowed is not None:
            logits = logits.masked_fill(~allowed(out), float("-inf"))
        return probs(logits, sp)

    with torch.no_grad():
        p1 = next_probs([])
        joint = {}
        for t1 in torch.nonzero(p1).flatten().tolist():
            p2 = next_probs([t1])
            for t2 in torch.nonzero(p2).flatten().tolist():
                joint[(t1, t2)] = float(p1[t1] * p2[t2])
    return joint


def chi_square_z(counts: dict, expected_p: dict, n: int) -> tuple[float, int]:
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
    assert k >= 1, "the distribution is too peaked for a chi-square test: pick another prompt"
    z = ((stat / k) ** (1 / 3) - (1 - 2 / (9 * k))) / math.sqrt(2 / (9 * k))
    return z, k
