"""Block verification: which drafted tokens the target keeps, and the bonus token after them.

Vocabulary (see docs/architecture.md): a step verifies the block `[anchor, d_1 .. d_{B-1}]`.
Target row j (0 <= j < B) is the target's distribution for the token after block position j,
so row j judges draft d_{j+1}, and the last row is only used for a bonus.

  accepted  A = number of leading drafts the target keeps (0 <= A <= B-1)
  bonus     one token drawn from the target at row A (with the rejected draft removed)
  commit    anchor, d_1 .. d_A  get KV; the step emits d_1 .. d_A, bonus  (A + 1 tokens)

Greedy: keep d_{j+1} while it equals argmax of row j; bonus = argmax of row A.
Sampling (the drafter proposes one token, i.e. a point-mass draft q): keep d with probability
p(d); on the first rejection draw the bonus from p with d removed and renormalised (that is
normalise(max(p - q, 0)) for a point mass q); if every draft is kept, draw the bonus from the
last row. Every emitted token is then distributed exactly as the target alone would sample it.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from .sampling import SamplingParams, target_probs


@dataclass
class VerifyResult:
    accept_len: torch.Tensor     # [b] int64, A: drafts kept, 0 .. B-1
    bonus: torch.Tensor          # [b] int64, the target's token after the kept drafts
    commit_tokens: torch.Tensor  # [b, B] int64: d_1 .. d_A, bonus, then -1 (the A+1 emitted tokens)


def _result(draft: torch.Tensor, accept_len: torch.Tensor, bonus: torch.Tensor) -> VerifyResult:
    b, n = draft.shape                                         # n = B - 1
    idx = torch.arange(n + 1, device=draft.device).expand(b, -1)
    padded = torch.cat([draft, draft.new_full((b, 1), -1)], dim=1)
    out = torch.where(idx < accept_len.unsqueeze(1), padded, torch.full_like(padded, -1))
    out = torch.where(idx == accept_len.unsqueeze(1), bonus.unsqueeze(1), out)
    return VerifyResult(accept_len, bonus, out)


def leading_true(mask: torch.Tensor) -> torch.Tensor:
    """[b, n] bool -> [b] count of leading True values."""
    return mask.long().cumprod(dim=1).sum(dim=1)


def greedy_verify(draft: torch.Tensor, target_logits: torch.Tensor) -> VerifyResult:
    """draft [b, B-1] ids, target_logits [b, B, V]."""
    best = target_logits.argmax(dim=-1)                        # [b, B]
    accept_len = leading_true(draft == best[:, :-1])
    bonus = best.gather(1, accept_len.unsqueeze(1)).squeeze(1)
    return _result(draft, accept_len, bonus)


def inverse_cdf(probs: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """probs [b, V] (unnormalised is fine), u [b] uniforms in [0, 1) -> token ids [b]:
    the first token whose running mass exceeds u * total."""
    cdf = probs.cumsum(dim=-1)
    goal = (u * cdf[:, -1]).unsqueeze(1)
    idx = torch.searchsorted(cdf, goal, right=True).squeeze(1).clamp(max=probs.shape[-1] - 1)
    last_nonzero = (probs > 0).long().cumsum(-1).argmax(-1)    # rounding guard: never a zero-mass token
    return torch.where(probs.gather(1, idx.unsqueeze(1)).squeeze(1) > 0, idx, last_nonzero)


def sampling_verify(draft: torch.Tensor, target_probs_: torch.Tensor, generator: torch.Generator | None = None,
                    uniforms: tuple[torch.Tensor, torch.Tensor] | None = None) -> VerifyResult:
    """draft [b, B-1] ids, target_probs_ [b, B, V] (rows already through temperature/top-k/...).
    uniforms: (accept_u [b, B-1], bonus_u [b]) in [0, 1) to make the draw reproducible
    (the Triton kernel is tested against this function with the same uniforms)."""
    b, n = draft.shape
    if uniforms is None:
        uniforms = (torch.rand((b, n), generator=generator, device=draft.device),
                    torch.rand((b,), generator=generator, device=draft.device))
    accept_u, bonus_u = uniforms
    p_draft = target_probs_[:, :-1].gather(2, draft.unsqueeze(-1)).squeeze(-1)   # [b, B-1]
    accept_len = leading_true(accept_u < p_draft)
    row = target_probs_.gather(1, accept_len.view(b, 1, 1).expand(-1, 1, target_probs_.shape[-1])).squeeze(1)
    rejected = accept_len < n                                  # [b]: some draft was refused
    refused = draft.gather(1, accept_len.clamp(max=n - 1).unsqueeze(1))            # [b, 1]
    residual = torch.where(rejected.unsqueeze(1), row.scatter(1, refused, 0.0), row)
    bonus = inverse_cdf(residual, bonus_u)
    return _result(draft, accept_len, bonus)


def verify_block(draft: torch.Tensor, target_logits: torch.Tensor, params: SamplingParams | None = None,
                 generator: torch.Generator | None = None) -> VerifyResult:
    """Greedy when params is None or every row is greedy; otherwise exact sampling per row
    (greedy rows become point masses, which the sampling rule turns into greedy acceptance)."""
    if params is None or params.all_greedy:
        return greedy_verify(draft, target_logits)
    return sampling_verify(draft, target_probs(target_logits, params), generator)
