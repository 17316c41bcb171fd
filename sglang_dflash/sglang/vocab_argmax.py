"""The drafter's argmax through the target's LM head, vocab-parallel under TP.

Under ``--tp-size N`` SGLang shards the target's LM head (a ``ParallelLMHead``) by
vocabulary rows: rank r holds the rows of a contiguous range of token ids, then
padding rows (zeros, or whatever the loader left) up to the shard size. Each rank
scores the drafter's hidden states against its real rows only, keeps its local
``(max, global id)`` per position, and one all-gather gives every rank all of them;
the winner is the largest value, ties going to the lowest id. That is exactly what
``torch.argmax`` over the full real vocabulary returns (its first maximum), so the
drafts are the same at every TP size up to the matmul's rounding, and bitwise the
same on every rank (all ranks reduce the same gathered tensor).

Nothing here imports SGLang: ``vocab_parallel_argmax`` takes the shard's weight, its
``VocabShard`` and an all-gather callable, so it is unit-tested with two gloo
processes (``tests/test_tp_vocab_argmax.py``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

# Id of a rank that holds no real row; loses every tie and is never a real token id.
_NO_ROW = float(2 ** 52)

AllGather = Callable[[torch.Tensor], torch.Tensor]  # [n, ...] -> [world * n, ...], rank order


@dataclass(frozen=True)
class VocabShard:
    """The real vocabulary rows of one rank's LM-head shard.

    Local rows ``0 .. rows-1`` are token ids ``start .. start+rows-1``; rows past
    ``rows`` are padding (or ids past the vocabulary the drafter may propose)."""

    start: int
    rows: int

    def __post_init__(self):
        if self.start < 0 or self.rows < 0:
            raise ValueError(f"VocabShard: start and rows must be >= 0, got "
                             f"start={self.start} rows={self.rows}")


def lm_head_shard(lm_head, vocab_size: int, tp_size: int) -> VocabShard:
    """This rank's ``VocabShard`` of SGLang's (Parallel)LMHead, limited to ids < vocab_size.

    Only the original vocabulary is proposed (no LoRA-added rows), as at tp 1."""
    indices = getattr(lm_head, "shard_indices", None)
    if indices is None:
        if tp_size != 1:
            raise RuntimeError(
                f"sglang-dflash: the target's lm_head ({type(lm_head).__name__}) has no "
                f"`shard_indices` (expected a ParallelLMHead) at tp_size={tp_size}; the "
                f"drafter's vocab-parallel argmax needs them")
        return VocabShard(0, min(vocab_size, int(lm_head.weight.shape[0])))
    start = int(indices.org_vocab_start_index)
    end = min(int(indices.org_vocab_end_index), vocab_size)
    return VocabShard(start, max(0, end - start))


def vocab_parallel_argmax(hidden: torch.Tensor, weight: torch.Tensor, shard: VocabShard,
                          all_gather: AllGather | None = None) -> torch.Tensor:
    """Token ids [...] of the full-vocabulary argmax of ``hidden @ W.T``.

    hidden [..., H]; weight [rows_padded, H] this rank's LM-head shard; ``all_gather``
    concatenates a tensor from every rank of the TP group along dim 0 (None: one rank,
    the shard is the whole vocabulary)."""
    if shard.rows > weight.shape[0]:
        raise ValueError(f"vocab_parallel_argmax: shard has {shard.rows} real rows, "
                         f"the weight only {weight.shape[0]}")
    lead = hidden.shape[:-1]
    flat = hidden.reshape(-1, hidden.shape[-1]).to(weight.dtype)          # [n, H]
    if all_gather is None:
        logits = flat @ weight[:shard.rows].t()                           # [n, rows]
        return (logits.argmax(dim=-1) + shard.start).view(lead)

    n = flat.shape[0]
    if n == 0:  # the same batch on every rank, so every rank skips the collective
        return torch.empty(lead, dtype=torch.int64, device=flat.device)
    if shard.rows == 0:
        best = torch.full((n,), float("-inf"), dtype=torch.float64, device=flat.device)
        ids = torch.full((n,), _NO_ROW, dtype=torch.float64, device=flat.device)
    else:
        logits = flat @ weight[:shard.rows].t()                           # [n, rows]
        local_max, local_arg = logits.max(dim=-1)  # first max: the lowest local id
        # NaN beats everything in torch.argmax; +inf keeps that and stays comparable.
        best = torch.nan_to_num(local_max.double(), nan=float("inf"))
        ids = (local_arg + shard.start).double()  # ids < 2**53 are exact in float64
    packed = torch.stack([best, ids], dim=-1)                             # [n, 2]
    gathered = all_gather(packed).view(-1, n, 2)                          # [world, n, 2]
    values, gathered_ids = gathered[..., 0], gathered[..., 1]
    winner = values.max(dim=0).values                                     # [n]
    tied = torch.where(values == winner, gathered_ids, torch.full_like(gathered_ids, _NO_ROW))
    return tied.min(dim=0).values.to(torch.int64).view(lead)
