"""Sampled requests through our DFlashWorker: exact distribution, not a greedy fallback.

The tokens a sampled request emits after its first one come from our verifier
(rejection sampling of the drafts against the target distribution). We draw many
3-token continuations of one prompt and compare the joint distribution of the first
two tokens with the exact one computed from the target with Hugging Face transformers
and the core's ``target_probs`` (chi-square test). A batch mixing greedy and sampled
requests must keep the greedy ones identical to the target's greedy output.
"""

from __future__ import annotations

import pytest

from cpu_sglang import e2e
from cpu_sglang import sampling_check as sc

e2e.require_sglang()
pytestmark = [pytest.mark.sglang, pytest.mark.slow]

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

BLOCK = 4
SAMPLES = sc.SAMPLES


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
    counts = sc.joint_counts(results)
    exact = sc.exact_joint(model, prompt_ids, sp)
    outside = [p for p in counts if p not in exact]
    assert not outside, f"sampled pairs the target gives zero probability: {outside[:5]}"
    z, dof = sc.chi_square_z(counts, exact, SAMPLES)
    assert z < sc.Z_LIMIT, f"sampled distribution differs from the target's (z={z:.2f}, dof={dof})"
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
