"""Reference DFlash decoder: one plain loop over a Hugging Face target and our drafter.

Every other implementation (the SGLang worker, kernels) is checked against this file, so it
favours clarity over speed. Per step, for a batch of rows:

  draft   block [anchor, MASK..] at positions p..p+B-1 -> drafter -> target LM head -> B-1 drafts
  verify  target over [anchor, drafts] at p..p+B-1 with its KV cache -> B logit rows + hidden states
  accept  verify_block -> A kept drafts and a bonus token
  commit  the first A+1 verify slots stay valid in the target cache; their target hidden states
          become drafter context (fc -> hidden_norm -> per-layer K/V) at positions p..p+A
  repeat  with anchor = bonus at position p+A+1

Both caches grow by B slots a step for every row; slots of rejected tokens (and prompt padding)
are simply marked invalid instead of being cropped, so rows can accept different lengths.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch

from .hf_cache import cache_of, with_cache
from .model import DFlashDrafter, DraftContext, gather_target_hidden
from .sampling import SamplingParams, sample, target_probs
from .verify import verify_block


@dataclass
class ReferenceOutput:
    tokens: list[list[int]]       # generated tokens per prompt (EOS included if reached)
    accept_lens: list[list[int]]  # per step, A+1 (tokens the step committed, bonus included)


@dataclass
class StepState:
    anchor: torch.Tensor           # [b] pending token without KV (last emitted)
    committed: torch.Tensor        # [b] p: tokens with KV = position of the anchor
    target_valid: torch.Tensor     # [b, S] which target cache slots hold committed tokens
    draft_ctx: DraftContext        # drafter context K/V for the same committed tokens
    done: torch.Tensor             # [b] bool
    tokens: list[list[int]] = field(default_factory=list)
    accept_lens: list[list[int]] = field(default_factory=list)


def _target_forward(target, ids, positions, valid, cache):
    """Run the target on ids [b, q] appended to its cache; valid [b, S] covers every slot, the
    q new ones last. The mask is built here (additive, 4-D) so that holes in the cache are
    hidden and a padding query still sees itself (no all-masked rows, hence no NaN)."""
    b, q = ids.shape
    S = valid.shape[1]
    key = torch.arange(S, device=ids.device).view(1, 1, S)
    query = (S - q + torch.arange(q, device=ids.device)).view(1, q, 1)
    allowed = (valid.unsqueeze(1) & (key <= query)) | (key == query)          # [b, q, S]
    dtype = target.get_input_embeddings().weight.dtype
    mask = torch.zeros(allowed.shape, dtype=dtype, device=ids.device)
    mask = mask.masked_fill(~allowed, torch.finfo(dtype).min).unsqueeze(1)    # [b, 1, q, S]
    out = target(input_ids=ids, position_ids=positions, attention_mask=mask,
                 use_cache=True, output_hidden_states=True, **with_cache(target, cache))
    return out.logits, out.hidden_states, cache_of(out)


def _emit(state: StepState, row: int, new: list[int], max_new_tokens: int, eos: set[int]) -> None:
    """Append a step's tokens to a row, stopping at the first EOS or at max_new_tokens."""
    out = state.tokens[row]
    for t in new:
        if len(out) >= max_new_tokens:
            break
        out.append(t)
        if t in eos:
            break
    if len(out) >= max_new_tokens or (out and out[-1] in eos):
        state.done[row] = True


@torch.no_grad()
def generate(target, drafter: DFlashDrafter, prompts: list[list[int]], *, max_new_tokens: int,
             block_size: int | None = None, sampling: SamplingParams | None = None,
             eos_token_id: int | list[int] | None = None,
             generator: torch.Generator | None = None) -> ReferenceOutput:
    B = block_size or drafter.config.block_size
    if B < 2:
        raise ValueError(f"block_size: expected >= 2, got {B}")
    if not prompts or any(len(p) == 0 for p in prompts):
        raise ValueError("prompts: expected a non-empty list of non-empty token lists")
    eos = set([eos_token_id] if isinstance(eos_token_id, int) else (eos_token_id or []))
    device = next(target.parameters()).device
    dtype = next(drafter.parameters()).dtype
    embed, lm_head = target.get_input_embeddings(), target.get_output_embeddings()
    layer_ids = drafter.config.target_layer_ids
    mask_id = drafter.config.mask_token_id
    b = len(prompts)
    rows = torch.arange(b, device=device)
    sampling = sampling or SamplingParams.make(b, device=device)

    # prefill: prompts left-padded into one batch
    n = max(len(p) for p in prompts)
    ids = torch.zeros(b, n, dtype=torch.long, device=device)
    valid = torch.zeros(b, n, dtype=torch.bool, device=device)
    for i, p in enumerate(prompts):
        ids[i, n - len(p):] = torch.tensor(p, device=device)
        valid[i, n - len(p):] = True
    positions = (valid.long().cumsum(1) - 1).clamp(min=0)
    logits, hidden, cache = _target_forward(target, ids, positions, valid, None)
    first = sample(target_probs(logits[:, -1], sampling), generator)
    ctx = drafter.project_context(gather_target_hidden(hidden, layer_ids).to(dtype))
    state = StepState(
        anchor=first, committed=valid.sum(1), target_valid=valid,
        draft_ctx=drafter.context_kv(ctx, positions, valid),
        done=torch.zeros(b, dtype=torch.bool, device=device),
        tokens=[[] for _ in range(b)], accept_lens=[[] for _ in range(b)])
    for i in range(b):
        _emit(state, i, [int(first[i])], max_new_tokens, eos)

    offsets = torch.arange(B, device=device)
    while not bool(state.done.all()):
        block_pos = state.committed.unsqueeze(1) + offsets                       # [b, B]
        # draft: one drafter forward over [anchor, MASK...]
        block = torch.full((b, B), mask_id, dtype=torch.long, device=device)
        block[:, 0] = state.anchor
        draft_hidden = drafter(embed(block).to(dtype), block_pos, state.draft_ctx)
        draft = lm_head(draft_hidden[:, 1:].to(lm_head.weight.dtype)).argmax(-1)  # [b, B-1]

        # verify: the target over [anchor, drafts] on top of its cache
        verify_ids = torch.cat([state.anchor.unsqueeze(1), draft], dim=1)
        live = ~state.done
        step_valid = torch.cat([state.target_valid, live.unsqueeze(1).expand(-1, B)], dim=1)
        logits, hidden, cache = _target_forward(target, verify_ids, block_pos, step_valid, cache)
        result = verify_block(draft, logits, sampling, generator)

        # commit: A+1 slots stay valid in both caches
        keep = (offsets.unsqueeze(0) <= result.accept_len.unsqueeze(1)) & live.unsqueeze(1)  # [b, B]
        state.target_valid = torch.cat([state.target_valid, keep], dim=1)
        ctx = drafter.project_context(gather_target_hidden(hidden, layer_ids).to(dtype))
        state.draft_ctx = state.draft_ctx.append(drafter.context_kv(ctx, block_pos, keep))
        for i in rows[live].tolist():
            a = int(result.accept_len[i])
            state.accept_lens[i].append(a + 1)
            _emit(state, i, result.commit_tokens[i, : a + 1].tolist(), max_new_tokens, eos)
        state.committed = state.committed + torch.where(live, result.accept_len + 1, 0)
        state.anchor = torch.where(live, result.bonus, state.anchor)
    return ReferenceOutput(state.tokens, state.accept_lens)


@torch.no_grad()
def target_generate(target, prompts: list[list[int]], *, max_new_tokens: int,
                    sampling: SamplingParams | None = None, eos_token_id: int | list[int] | None = None,
                    generator: torch.Generator | None = None) -> list[list[int]]:
    """Plain target decoding with the same sampling rule, one prompt at a time (the baseline
    the speculative loop must match)."""
    eos = set([eos_token_id] if isinstance(eos_token_id, int) else (eos_token_id or []))
    device = next(target.parameters()).device
    outs = []
    for i, p in enumerate(prompts):
        params = (sampling or SamplingParams.make(len(prompts))).select(torch.tensor([i]))
        ids = torch.tensor([p], device=device)
        out, cache = [], None
        while len(out) < max_new_tokens:
            res = target(input_ids=ids, use_cache=True, **with_cache(target, cache))
            cache = cache_of(res)
            tok = sample(target_probs(res.logits[:, -1], params), generator)
            out.append(int(tok))
            if out[-1] in eos:
                break
            ids = tok.view(1, 1)
        outs.append(out)
    return outs
