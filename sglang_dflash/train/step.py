"""One training forward: frozen target features -> drafter blocks -> weighted cross-entropy."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..model import gather_target_hidden
from .blocks import (acceptance_from_correct, block_attention_mask, block_inputs, block_labels,
                     position_weights, sample_anchors, sample_block_lengths)


@dataclass
class Batch:
    input_ids: torch.Tensor  # long [b, L], right-padded
    attention_mask: torch.Tensor  # long [b, L], 1 = real token
    loss_mask: torch.Tensor  # bool [b, L]
    n_tokens: int = 0  # real tokens (known on the host, so logging needs no device sync)

    def to(self, device):
        nb = torch.device(device).type == "cuda"
        return Batch(self.input_ids.to(device, non_blocking=nb), self.attention_mask.to(device, non_blocking=nb),
                     self.loss_mask.to(device, non_blocking=nb), self.n_tokens)


def collate(examples, pad_id: int) -> Batch:
    n = max(len(e) for e in examples)
    ids = torch.full((len(examples), n), pad_id, dtype=torch.long)
    att = torch.zeros((len(examples), n), dtype=torch.long)
    lm = torch.zeros((len(examples), n), dtype=torch.bool)
    for i, e in enumerate(examples):
        ids[i, : len(e)] = torch.tensor(e.input_ids)
        att[i, : len(e)] = 1
        lm[i, : len(e)] = torch.tensor(e.loss_mask)
    if torch.cuda.is_available():  # pinned, so .to(cuda, non_blocking) overlaps the previous step
        ids, att, lm = ids.pin_memory(), att.pin_memory(), lm.pin_memory()
    return Batch(ids, att, lm, sum(len(e) for e in examples))


@torch.no_grad()
def target_features(target, batch: Batch, layer_ids, *, with_labels: bool = False, chunk_rows: int = 8192):
    """Concatenated outputs of the chosen target layers, [b, L, K*H] (id k = hidden_states[k+1]).

    With `with_labels`, also the target's own greedy next tokens as labels, long [b, L]: position
    p holds argmax of the target's logits at p-1 (position 0 keeps its input id). These are what
    greedy verification compares drafts with, whatever wrote the text (e.g. a bf16 server
    distilling for an fp32 target). The LM head runs in row chunks to bound memory."""
    base = getattr(target, "base_model", target)
    out = base(input_ids=batch.input_ids, attention_mask=batch.attention_mask, output_hidden_states=True,
               use_cache=False)
    hs = getattr(out, "hidden_states", None)
    if hs is None:
        raise RuntimeError(f"{type(target).__name__} returned no hidden states for output_hidden_states=True; "
                           "DFlash training needs a target that exposes its per-layer hidden states")
    feats = gather_target_hidden(hs, list(layer_ids))
    if not with_labels:
        return feats
    head = target.get_output_embeddings()
    last = out.last_hidden_state[:, :-1].reshape(-1, out.last_hidden_state.shape[-1])
    nxt = torch.cat([head(last[s: s + chunk_rows]).argmax(-1) for s in range(0, last.shape[0], chunk_rows)])
    labels = batch.input_ids.clone()
    labels[:, 1:] = nxt.view(batch.input_ids.shape[0], -1)
    return feats, labels


@dataclass
class StepOut:
    loss: torch.Tensor
    n_targets: int
    accuracy: torch.Tensor  # 0-dim: top-1 over trained block positions (a tensor: no host sync per step)
    tau: torch.Tensor  # 0-dim: mean training-time acceptance length of the sampled blocks (1 + leading correct)


def block_loss(drafter, target, batch: Batch, *, num_anchors: int, gamma: float,
               generator: torch.Generator | None = None, autocast_dtype=None,
               target_labels: bool = False, block_sizes: tuple[int, ...] | None = None) -> StepOut | None:
    """Loss of one batch; None if no row has an anchor. With `target_labels` the block positions
    learn the target's greedy next token (see target_features) instead of the text's token.
    With `block_sizes`, each anchor's block is cut to a length drawn from them (see
    sample_block_lengths); by default every block has the config's block size."""
    cfg = drafter.config
    B = cfg.block_size
    dev = batch.input_ids.device
    anchors, valid = sample_anchors(batch.loss_mask, num_anchors, generator)
    if anchors.shape[1] == 0 or not bool(valid.any()):
        return None
    if target_labels:
        feats, label_src = target_features(target, batch, cfg.target_layer_ids, with_labels=True)
    else:
        feats, label_src = target_features(target, batch, cfg.target_layer_ids), batch.input_ids
    embed = target.get_input_embeddings()
    head = target.get_output_embeddings()
    b, L = batch.input_ids.shape
    lengths = None
    if block_sizes and tuple(block_sizes) != (B,):
        lengths = sample_block_lengths(anchors.shape, block_sizes, generator, dev)
    ids, pos = block_inputs(batch.input_ids, anchors, B, cfg.mask_token_id)
    labels, ok = block_labels(label_src, batch.loss_mask, anchors, valid, B, lengths)
    mask = block_attention_mask(anchors, valid, L, B, lengths)
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
        tau = acceptance_from_correct(correct, ok)[valid].float().mean()
    return StepOut(loss, int(y.numel()), hit.float().mean(), tau)
