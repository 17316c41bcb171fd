"""Acceptance length of a drafter, measured with the reference decoder (greedy)."""

from __future__ import annotations

import time

import torch

from .. import reference


def eos_ids_of(target, tokenizer=None):
    ids = getattr(target.generation_config, "eos_token_id", None)
    if ids is None and tokenizer is not None:
        ids = tokenizer.eos_token_id
    return ids


@torch.no_grad()
def acceptance(target, drafter, prompts: list[list[int]], *, block_size: int, max_new_tokens: int = 128,
               eos_token_id=None, batch_size: int = 16) -> dict:
    """Greedy decoding of `prompts` with `drafter`; mean acceptance length = committed tokens per
    step (A+1, the bonus included), averaged over all steps of all prompts."""
    if eos_token_id is None:
        eos_token_id = eos_ids_of(target)
    t0 = time.time()
    lens, tokens = [], []
    for s in range(0, len(prompts), batch_size):
        out = reference.generate(target, drafter, prompts[s: s + batch_size], max_new_tokens=max_new_tokens,
                                 block_size=block_size, eos_token_id=eos_token_id)
        lens += out.accept_lens
        tokens += out.tokens
    steps = sum(len(x) for x in lens)
    committed = sum(sum(x) for x in lens)
    return {
        "block_size": block_size,
        "mean_acceptance": committed / max(steps, 1),
        "per_prompt": [sum(x) / max(len(x), 1) for x in lens],
        "steps": steps,
        "tokens": committed,
        "seconds": time.time() - t0,
        "outputs": tokens,
    }
