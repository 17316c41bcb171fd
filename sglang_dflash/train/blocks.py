"""Training blocks (paper recipe): anchors, block inputs, block attention mask, labels, weights.

For a sequence x with trainable positions M (the response tokens), an anchor `a` is a position
with a and a+1 in M. Its block is `[x_a, MASK, ..., MASK]` at positions a..a+B-1, exactly what the
drafter sees at inference when x_a is the bonus token. Block position k (1 <= k < B) is trained to
predict x_{a+k} (same position, no shift) with weight exp(-(k-1)/gamma), where x_{a+k} exists and
is in M. The block sees the target features of tokens strictly before `a` and its own B tokens
(bidirectionally); blocks of one sequence never see each other, so many anchors share one pass.
"""

from __future__ import annotations

import torch


def sample_anchors(loss_mask: torch.Tensor, num_anchors: int, generator: torch.Generator | None = None):
    """Up to `num_anchors` distinct random anchors per row.

    loss_mask: bool [b, L]. Returns (anchors long [b, A], valid bool [b, A]) with
    A = min(num_anchors, most eligible positions in a row); invalid slots hold anchor 0."""
    eligible = loss_mask[:, :-1] & loss_mask[:, 1:]
    b, n = eligible.shape
    if n == 0:
        z = torch.zeros(b, 0, dtype=torch.long, device=loss_mask.device)
        return z, z.bool()
    count = eligible.sum(1)
    a = int(min(num_anchors, int(count.max())))
    if a == 0:
        z = torch.zeros(b, 0, dtype=torch.long, device=loss_mask.device)
        return z, z.bool()
    score = torch.rand(b, n, generator=generator, device="cpu").to(loss_mask.device)
    score = score.masked_fill(~eligible, -1.0)
    top, idx = score.topk(a, dim=1)
    valid = top >= 0
    anchors = torch.where(valid, idx, torch.zeros_like(idx))
    order = torch.where(valid, anchors, torch.full_like(anchors, n + 1)).argsort(dim=1)
    return anchors.gather(1, order), valid.gather(1, order)


def block_inputs(input_ids: torch.Tensor, anchors: torch.Tensor, block_size: int, mask_token_id: int):
    """Block token ids [b, A, B] (`[x_a, MASK...]`) and their positions [b, A, B] (a..a+B-1)."""
    b, a = anchors.shape
    ids = torch.full((b, a, block_size), mask_token_id, dtype=input_ids.dtype, device=input_ids.device)
    ids[:, :, 0] = input_ids.gather(1, anchors)
    pos = anchors[:, :, None] + torch.arange(block_size, device=anchors.device)
    return ids, pos


def sample_block_lengths(shape, sizes, generator: torch.Generator | None = None, device=None):
    """Per-anchor block lengths long [*shape], drawn uniformly from `sizes`.

    A drafter trained only on blocks of 16 loses accuracy when served at block 8: every draft
    position then sees 8 fewer mask tokens than in training (its bidirectional block attention
    changes). Training each anchor at a length drawn from the sizes it will be served at removes
    that shift; the positions past an anchor's length are neither seen nor trained."""
    choices = torch.tensor(sorted(set(sizes)), dtype=torch.long)
    if len(choices) == 1:  # no draw: the generator stays where it was
        return choices.expand(*shape).to(device)
    return choices[torch.randint(len(choices), tuple(shape), generator=generator)].to(device)


def block_labels(input_ids, loss_mask, anchors, valid, block_size: int, lengths: torch.Tensor | None = None):
    """Targets for block positions 1..B-1: labels long [b, A, B-1] and ok bool [b, A, B-1].

    lengths long [b, A] (optional): block n only trains its positions k < lengths[n]."""
    L = input_ids.shape[1]
    pos = anchors[:, :, None] + torch.arange(1, block_size, device=anchors.device)
    inside = pos < L
    pos_c = pos.clamp(max=L - 1)
    flat = pos_c.flatten(1)
    labels = input_ids.gather(1, flat).view_as(pos)
    ok = inside & loss_mask.gather(1, flat).view_as(pos) & valid[:, :, None]
    if lengths is not None:
        ok &= torch.arange(1, block_size, device=anchors.device) < lengths[:, :, None]
    return labels, ok


def block_attention_mask(anchors: torch.Tensor, valid: torch.Tensor, ctx_len: int, block_size: int,
                         lengths: torch.Tensor | None = None):
    """bool [b, A*B, ctx_len + A*B], True = may attend.

    Query rows of block n see context columns j < anchors[n] and the B columns of block n (only
    its first lengths[n] columns when lengths long [b, A] is given: a shorter block as served).
    An invalid slot sees only its own block (keeps softmax finite; its loss weight is 0)."""
    b, a = anchors.shape
    dev = anchors.device
    limit = torch.where(valid, anchors, torch.zeros_like(anchors))
    ctx = torch.arange(ctx_len, device=dev)[None, None, :] < limit[:, :, None]  # [b, A, n]
    ctx = ctx[:, :, None, :].expand(b, a, block_size, ctx_len).reshape(b, a * block_size, ctx_len)
    blk = torch.arange(a, device=dev).repeat_interleave(block_size)
    own = (blk[:, None] == blk[None, :])[None].expand(b, -1, -1)
    if lengths is not None:
        offset = torch.arange(block_size, device=dev).repeat(a)  # column's place in its block
        own = own & (offset[None, :] < lengths.repeat_interleave(block_size, dim=1)[:, None, :])
    return torch.cat([ctx, own], dim=2)


def position_weights(block_size: int, gamma: float, device=None) -> torch.Tensor:
    """exp(-(k-1)/gamma) for k = 1..B-1 (paper Eq. 4): early block positions matter most, since
    one wrong draft token voids all later ones."""
    k = torch.arange(1, block_size, device=device, dtype=torch.float32)
    return torch.exp(-(k - 1) / gamma)


def default_gamma(block_size: int) -> float:
    """7 for B=16, 4-5 for B=8..10 as in the paper; interpolated otherwise."""
    return {8: 4.0, 10: 5.0, 16: 7.0}.get(block_size, max(1.0, round(block_size * 7 / 16, 1)))


def acceptance_from_correct(correct: torch.Tensor, ok: torch.Tensor) -> torch.Tensor:
    """Per-block training-time acceptance length: 1 + number of leading correct drafts.

    correct, ok: bool [..., B-1]; positions without a target count as wrong."""
    run = (correct & ok).long().cumprod(dim=-1)
    return 1 + run.sum(-1)

