"""A drafter with a sliding-window layer (z-lab's `layer_types: sliding_attention`) inside
SGLang: within the window its block attends causally, beyond it not at all. Our worker must
propose what the core PyTorch drafter proposes (same verify steps as the reference loop), and
the output must stay the target's own greedy output."""

from __future__ import annotations

import os

import pytest

from cpu_sglang import e2e, models

e2e.require_sglang()
pytestmark = [pytest.mark.sglang, pytest.mark.slow]

BLOCK = 8
WINDOW = 6  # far shorter than the prompts, so the window decides what the layer sees
MIX = 0.3   # output-projection scale: large enough for attention to move the drafts, small
            # enough for drafts to be accepted (the steered pair of cpu_sglang.models)


def _build(pair, window: int) -> str:
    from transformers import AutoConfig

    out = os.path.join(e2e.models_dir(), f"steered-sliding{window}-mix{MIX}-drafter-b{BLOCK}")
    if not os.path.exists(os.path.join(out, "config.json")):
        models.build_drafter(out, AutoConfig.from_pretrained(pair.target), block_size=BLOCK,
                             seed=5, draft_mix=MIX, config_overrides={
                                 "layer_types": ["sliding_attention", "full_attention"],
                                 "sliding_window": window})
    return out


@pytest.fixture(scope="module")
def pair():
    return e2e.steered_pair()


@pytest.fixture(scope="module")
def sliding_drafter(pair):
    return _build(pair, WINDOW)


@pytest.fixture(scope="module")
def server(pair, sliding_drafter):
    srv = e2e.start("sliding-ours", pair.target, e2e.dflash_args(sliding_drafter, BLOCK))
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def reference(pair, sliding_drafter):
    """The core reference loop with this drafter, and with its twin whose window covers
    everything: the two must differ, or the comparison below could not see the window."""
    torch = pytest.importorskip("torch")
    from sglang_dflash.model import DFlashDrafter
    from sglang_dflash.reference import generate

    target, tok = e2e.load_hf(pair.target)
    prompts = [tok.encode(p) for p in e2e.PROMPTS[:6]]
    runs = {}
    for name, path in (("windowed", sliding_drafter), ("unbounded", _build(pair, 100_000))):
        drafter = DFlashDrafter.from_pretrained(path)
        with torch.no_grad():
            runs[name] = generate(target.eval(), drafter.eval(), prompts,
                                  max_new_tokens=e2e.MAX_NEW, block_size=BLOCK)
    assert runs["windowed"].accept_lens != runs["unbounded"].accept_lens
    return prompts, runs["windowed"]


def test_sliding_drafter_matches_the_core_reference(server, reference):
    e2e.assert_our_worker(server, BLOCK)
    prompts, ref = reference
    assert max(len(p) for p in prompts) > WINDOW + BLOCK
    sampling = {"temperature": 0, "max_new_tokens": e2e.MAX_NEW, "ignore_eos": True}
    results = server.post("/generate", {"input_ids": prompts, "sampling_params": sampling})
    for i, r in enumerate(results):
        assert r["output_ids"] == ref.tokens[i][: e2e.MAX_NEW], f"prompt {i}: output differs"
        assert r["meta_info"]["spec_verify_ct"] == len(ref.accept_lens[i]), \
            f"prompt {i}: {r['meta_info']['spec_verify_ct']} steps, reference {ref.accept_lens[i]}"
    assert sum(sum(a) for a in ref.accept_lens) > sum(len(a) for a in ref.accept_lens), \
        "no draft accepted: the comparison would not see the drafter at all"
