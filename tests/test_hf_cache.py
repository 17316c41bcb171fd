"""Our decoding loops pass and read the KV cache under the name this transformers uses: no
deprecation warning from it, and a cached decode equals a full recompute."""
import logging

import torch

from sglang_dflash.hf_cache import cache_of, with_cache
from sglang_dflash.reference import generate, target_generate
from sglang_dflash.testing import random_drafter, tiny_target


def test_cached_steps_match_a_full_forward():
    torch.manual_seed(0)
    target = tiny_target()
    ids = torch.randint(0, target.config.vocab_size, (1, 9))
    full = target(input_ids=ids).logits[:, -1]
    first = target(input_ids=ids[:, :8], use_cache=True, **with_cache(target, None))
    cache = cache_of(first)
    assert cache is not None
    step = target(input_ids=ids[:, 8:], use_cache=True, **with_cache(target, cache))
    torch.testing.assert_close(step.logits[:, -1], full, rtol=1e-4, atol=1e-4)


def test_reference_loops_raise_no_cache_deprecation(caplog, recwarn):
    torch.manual_seed(0)
    target = tiny_target()
    drafter = random_drafter(target, block_size=4)
    prompts = [[1, 2, 3, 4], [5, 6]]
    with caplog.at_level(logging.WARNING):
        plain = target_generate(target, prompts, max_new_tokens=6)
        spec = generate(target, drafter, prompts, max_new_tokens=6)
    assert spec.tokens == plain
    said = [r.getMessage() for r in caplog.records] + [str(w.message) for w in recwarn]
    assert not [m for m in said if "past_key_values" in m], said
