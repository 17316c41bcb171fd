"""One training forward: frozen target features -> drafter blocks -> weighted cross-entropy."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..model import gather_target_hidden
from .blocks import (acceptance_from_correct, block_attention_mask, block_inputs, block_labels,
                     position_weights, sample_anchors)


@dataclass
class Batch:
    input_ids: torch.Tensor  # long [b, L], right-padded
    attention_mask: torch.Tensor  # long [b, L], 1 = real token
    loss_mask: torch.Tensor  # bool [b, L]

    def to(self, device):
        return Batch(self.input_ids.to(device), self.attention_mask.to(device), self.loss_mask.to(device))


def collate(examples, pad_id: int) -> Batch:
    n = max(len(e) for e in examples)
    ids = torch.full((len(examples), n), pad_id, dtype=torch.long)
    att = torch.zeros((len(examples), n), dtype=torch.long)
    lm = torch.zeros((len(examples), n), dtype=torch.bool)
    for i, e in enumerate(examples):
        ids[i, : len(e)] = torch.tensor(e.input_ids)
        att[i, : len(e)] = 1
        lm[i, : len(e)] = torch.tensor(e.loss_mask)
    return Batch(ids, att, lm)


@torch.no_grad()
def target_features(target, batch: Batch, layer_ids) -> torch.Tensor:
    """Concatenated outputs of the chosen target layers, [b, L, K*H] (id k = hidden_states[k+1])."""
    base = getattr(target, "base_model", target)
    out = base(input_ids=batch.input_ids, attention_mask=batch.attention_mask, output_hidden_states=True,
               use_cache=False)
    hs = getattr(out, "hidden_states", None)
    if hs is None:
        raise RuntimeError(f"{type(target).__name__} returned no hidden states for output_hidden_states=True; "
                           "DFlash training needs a target that exposes its per-layer hidden states")
    return gather_target_hidden(hs, list(layer_ids))


@dataclass
class StepOut:
    loss: torch.Tensor
    n_targets: int
    accuracy: float  # top-1 over trained block positions
    tau: float  # mean training-time acceptance length of the sampled blocks (1 + leading correct)


def block_loss(drafter, target, batch: Batch, *, num_anchors: int, gamma: float,
               generator: torch.Generator | None = None, autocast_dtype=None) -> StepOut | None:
    """Loss of one batch; None if no row has an anchor."""
    cfg = drafter.config
    B = cfg.block_size
    dev = batch.input_ids.device
    anchors, valid = sample_anchors(batch.loss_mask, num_anchors, generator)
    if anchors.shape[1] == 0 or not bool(valid.any()):
        return None
    feats = target_features(target, batch, cfg.target_layer_ids)
    embed = target.get_input_embeddings()
    head = target.get_output_embeddings()
    b, L = batch.input_ids.shape
    ids, pos = block_inputs(batch.input_ids, anchors, B, cfg.mask_token_id)
    labels, ok = block_labels(batch.input_ids, batch.loss_mask, anchors, valid, B)
    mask = block_attention_mask(anchors, valid, L, B)
    ctx_pos = torch.arange(L, device=dev)[None].expand(b, L)
    with torch.no_grad():
        noise = embed(ids.flatten(1))
    use_ac = autocast_dtype is not None
    with torch.autocast(device_type=dev.type, dtype=autocast_dtype or torch.bfloat16, enabled=use_ac):
        ctx = drafter.project_context(feats.to(next(drafter.parameters()).dtype))
        kv = drafter.context_kv(ctx, ctx_pos)
        hidden = drafter(noise.to(ctx.dtype), pos.flatten(1), kv, mask)
        h = hidden.view(b, anchors.shape[1], B, -1)[:, :, 1:]
        sel = ok
        rows = h[sel]
        logits = head(rows.to(head.weight.dtype) if not use_ac else rows).float()
    y = labels[sel]
    w = position_weights(B, gamma, dev).expand_as(ok)[sel]
    ce = F.cross_entropy(logits, y, reduction="none")
    loss = (ce * w).sum() / w.sum()
    with torch.no_grad():
        hit = logits.argmax(-1) == y
        correct = torch.zeros_like(ok)
        correct[sel] = hit
        tau = acceptance_from_correct(correct, ok)[valid].float().mean().item()
    return StepOut(loss, int(y.numel()), float(hit.float().mean().item()), tau)
