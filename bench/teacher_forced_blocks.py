"""Teacher-forced draft accuracy per block position, at several block sizes, on the same anchors.

    python bench/teacher_forced_blocks.py --target DIR --drafter DIR --data FILE.jsonl[.gz] \
        [--num 64] [--anchors 32] [--block-sizes 8,16] [--positions 7] [--out result.json]

For the first `--num` conversations of FILE (chats with assistant replies, e.g. distilled data)
the target's features come from one forward over the whole text, and every anchor's block
`[x_a, MASK...]` is drafted in one pass as in training; labels are the target's own greedy next
tokens. Per block size it prints the top-1 accuracy of draft positions 1..`--positions` and the
mean teacher-forced acceptance over those positions. Blocks of different sizes share anchors,
so the numbers compare what the block size alone changes (this is how the block-8 gap of the
SmolLM2 drafter was found: sglang_dflash/assets/smollm2-drafter/README.md).
"""

from __future__ import annotations

import argparse
import gzip
import itertools
import json
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from sglang_dflash.model import DFlashDrafter
from sglang_dflash.train.blocks import (acceptance_from_correct, block_attention_mask, block_inputs, block_labels,
                                        sample_anchors)
from sglang_dflash.train.data import build_examples
from sglang_dflash.train.step import collate, target_features


def read_head(path: str, n: int) -> list[dict]:
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rt") as f:
        return [json.loads(line) for line in itertools.islice(f, n)]


@torch.no_grad()
def context(target, drafter, batch):
    """The target's greedy labels [b, L] and the drafter's context K/V of the whole batch,
    shared by every block size."""
    feats, labels = target_features(target, batch, drafter.config.target_layer_ids, with_labels=True)
    b, L = batch.input_ids.shape
    kv = drafter.context_kv(drafter.project_context(feats), torch.arange(L)[None].expand(b, L))
    return labels, kv


@torch.no_grad()
def block_accuracy(target, drafter, batch, labels_src, kv, anchors, valid, block_size: int, positions: int):
    """(correct, ok), bool [b, A, positions] each, for blocks of `block_size` at `anchors`."""
    cfg = drafter.config
    b, L = batch.input_ids.shape
    ids, pos = block_inputs(batch.input_ids, anchors, block_size, cfg.mask_token_id)
    labels, ok = block_labels(labels_src, batch.loss_mask, anchors, valid, block_size)
    hidden = drafter(target.get_input_embeddings()(ids.flatten(1)), pos.flatten(1), kv,
                     block_attention_mask(anchors, valid, L, block_size))
    pred = target.get_output_embeddings()(hidden.view(b, anchors.shape[1], block_size, -1)[:, :, 1:]).argmax(-1)
    return (pred == labels)[..., :positions], ok[..., :positions]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--target", required=True)
    ap.add_argument("--drafter", required=True)
    ap.add_argument("--data", required=True)
    ap.add_argument("--num", type=int, default=64)
    ap.add_argument("--anchors", type=int, default=32)
    ap.add_argument("--block-sizes", default="8,16")
    ap.add_argument("--positions", type=int, default=7, help="draft positions compared (at most the smallest size - 1)")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--out")
    a = ap.parse_args(argv)
    sizes = [int(x) for x in a.block_sizes.split(",")]
    if a.positions > min(sizes) - 1:
        raise SystemExit(f"error: --positions {a.positions} exceeds the smallest block size - 1 ({min(sizes) - 1})")
    target = AutoModelForCausalLM.from_pretrained(a.target, dtype=torch.float32).eval()
    tok = AutoTokenizer.from_pretrained(a.target)
    drafter = DFlashDrafter.from_pretrained(a.drafter, target_config=target.config).eval()
    examples = build_examples(read_head(a.data, a.num), tok, 1024)
    pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
    hits = {s: [] for s in sizes}
    for i in range(0, len(examples), a.batch):
        batch = collate(examples[i: i + a.batch], pad)
        anchors, valid = sample_anchors(batch.loss_mask, a.anchors, torch.Generator().manual_seed(i))
        labels, kv = context(target, drafter, batch)  # one target forward for all sizes
        for s in sizes:
            correct, ok = block_accuracy(target, drafter, batch, labels, kv, anchors, valid, s, a.positions)
            hits[s].append((correct, ok, valid))
    result = {"target": a.target, "drafter": a.drafter, "data": a.data, "conversations": len(examples),
              "anchors_per_conversation": a.anchors, "positions": a.positions, "block_sizes": {}}
    for s in sizes:
        correct = torch.cat([c.flatten(0, 1) for c, _, _ in hits[s]])
        ok = torch.cat([o.flatten(0, 1) for _, o, _ in hits[s]])
        valid = torch.cat([v.flatten() for _, _, v in hits[s]])
        per_pos = ((correct & ok).sum(0) / ok.sum(0).clamp(min=1)).tolist()
        tau = acceptance_from_correct(correct, ok)[valid].float().mean().item()
        result["block_sizes"][str(s)] = {"accuracy_per_position": [round(x, 4) for x in per_pos],
                                         "teacher_forced_acceptance": round(tau, 4), "blocks": int(valid.sum())}
        print(f"blocks of {s}: accuracy at positions 1..{a.positions} {[round(x, 3) for x in per_pos]}, "
              f"teacher-forced acceptance {tau:.3f} over {int(valid.sum())} blocks")
    if a.out:
        Path(a.out).write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
