"""The accept step of ``DFlashWorker``: SGLang batch state in, ``StepOutcome`` out.

The decision itself is the core verifier (``sglang_dflash.verify``, run through the checked
Triton step kernels of ``sglang_dflash.ops.step`` on GPU): greedy when every request is
greedy, otherwise exact per-row rejection sampling against the target
distribution built with SGLang's sampling semantics (``sglang_dflash.sampling``).
Greedy requests inside a sampled batch are point masses there, so they stay greedy.
The uniforms come from the worker's generator, or under deterministic inference (per-request
seeds) from ``sglang_dflash.coins``, so that a request's sampled text does not depend on its
batch.
"""

from __future__ import annotations

import torch

from ..coins import step_coins
from ..ops import step as step_ops
from ..sampling import SamplingParams, target_probs
from .state import StepOutcome


def sampling_params_from(sampling_info) -> SamplingParams:
    """SGLang ``SamplingBatchInfo`` -> our per-row ``SamplingParams``.

    SGLang stores a greedy request as ``top_k == 1`` with temperature reset to 1.0;
    we map it back to temperature 0 (our greedy marker)."""
    top_k = sampling_info.top_ks.view(-1).to(torch.long)
    temperature = sampling_info.temperatures.view(-1).to(torch.float32)
    temperature = torch.where(top_k == 1, torch.zeros_like(temperature), temperature)
    return SamplingParams(
        temperature=temperature,
        top_k=top_k,
        top_p=sampling_info.top_ps.view(-1).to(torch.float32),
        min_p=sampling_info.min_ps.view(-1).to(torch.float32),
    )


def verify_step(
    drafts: torch.Tensor,        # [bs, B-1] the drafter's proposals (the chain after its anchor)
    logits: torch.Tensor,        # [bs * B, V] target logits after SGLang's logit adjustments
    sampling_info,               # SGLang SamplingBatchInfo or None
    generator: torch.Generator | None,  # the uniforms' source unless sampling_info has seeds
    prefix_lens: torch.Tensor,   # [bs] committed lengths before the step
    use_triton: bool | None = None,
) -> tuple[StepOutcome, torch.Tensor | None]:
    """The accept decision of one step, through the checked step kernels
    (``sglang_dflash.ops.step``: Triton on GPU, the torch verifier elsewhere).

    Returns the outcome and, for an all-greedy batch, the target's argmax per block
    position [bs, B] (None when sampling), which SGLANG_SIMULATE_ACC_LEN reuses."""
    bs, B = drafts.shape[0], drafts.shape[1] + 1
    drafts = drafts.contiguous()  # a no-op for the worker's drafts
    logits = logits.view(bs, B, -1)
    committed = prefix_lens.to(torch.int64)
    if sampling_info is None or sampling_info.is_all_greedy:
        best = logits.argmax(dim=-1)                                     # [bs, B]
        result = step_ops.greedy_accept(drafts, best, committed, use_triton=use_triton)
        return outcome_from(result, prefix_lens), best
    probs = target_probs(logits, sampling_params_from(sampling_info)).float().contiguous()
    seeds = getattr(sampling_info, "sampling_seed", None)  # set under deterministic inference
    if seeds is not None:
        accept_u, bonus_u = step_coins(seeds.view(-1), committed, B)
    else:
        accept_u = torch.rand((bs, B - 1), generator=generator, device=logits.device)
        bonus_u = torch.rand((bs,), generator=generator, device=logits.device)
    result = step_ops.sampling_accept(drafts, probs, accept_u, bonus_u, committed,
                                      use_triton=use_triton)
    return outcome_from(result, prefix_lens), None


def outcome_from(result, prefix_lens: torch.Tensor) -> StepOutcome:
    """``result``: an ``ops.step.StepOutput`` (already in this form: no kernel runs), or
    anything with accept_len [bs], bonus [bs] and commit_tokens [bs, B] (d_1 .. d_A, bonus,
    then -1 or 0), e.g. ``verify.VerifyResult``."""
    if isinstance(result, step_ops.StepOutput) and result.new_len.dtype == prefix_lens.dtype:
        return StepOutcome(accept_len=result.accept_len, commit_lens=result.commit_len,
                           bonus=result.bonus, out_tokens=result.commit_tokens,
                           new_seq_lens=result.new_len)
    commit = (result.accept_len + 1).to(torch.int32)
    new_len = getattr(result, "new_len", None)  # the step kernels compute it already
    if new_len is None or new_len.dtype != prefix_lens.dtype:
        new_len = prefix_lens + commit.to(prefix_lens.dtype)
    return StepOutcome(
        accept_len=result.accept_len.to(torch.int32),
        commit_lens=commit,
        bonus=result.bonus.to(torch.int64),
        out_tokens=result.commit_tokens.clamp_min(0).to(torch.int64),
        new_seq_lens=new_len,
    )


def broadcast_outcome(outcome: StepOutcome, prefix_lens: torch.Tensor,
                      broadcast) -> StepOutcome:
    """Every TP rank takes rank 0's decision (``broadcast(t)`` overwrites ``t`` in place
    with rank 0's ``t``).

    Ranks verify the same gathered logits with identically seeded generators, so they
    agree already; this is the guard SGLang's sampler applies with
    ``SYNC_TOKEN_IDS_ACROSS_TP=1`` or a grammar, against rare non-deterministic kernels
    that would otherwise let the ranks' KV caches drift apart and hang the group."""
    packed = torch.cat([outcome.accept_len.to(torch.int64)[:, None],
                        outcome.bonus.to(torch.int64)[:, None],
                        outcome.out_tokens.to(torch.int64)], dim=1)       # [bs, 2 + B]
    broadcast(packed)
    accept_len = packed[:, 0].to(torch.int32)
    commit = accept_len + 1
    return StepOutcome(accept_len=accept_len, commit_lens=commit, bonus=packed[:, 1].clone(),
                       out_tokens=packed[:, 2:].clone(),
                       new_seq_lens=prefix_lens + commit.to(prefix_lens.dtype))
