"""The drafter's proposals: the target's LM head and a greedy argmax over block positions.

The drafter has no head of its own; its final hidden states go through the target's LM head
(real vocabulary rows only; vocab-parallel under TP, see ``vocab_argmax``) and the argmax of
positions ``1 .. B-1`` of each block is the proposal. ``DraftHead.propose`` computes that eagerly. ``DraftHead.record`` computes the same
into a fixed buffer, ``out``: the drafter calls it while SGLang captures the draft CUDA graph,
so every replay refreshes ``out`` in place and the worker reads it with ``read``.

Shapes: ``bs`` requests, block size ``B``, hidden ``H``, vocabulary ``V``.
"""

from __future__ import annotations

import torch

from .vocab_argmax import AllGather, VocabShard, vocab_parallel_argmax


class DraftHead:
    def __init__(self, weight: torch.Tensor, block_size: int, max_bs: int,
                 shard: VocabShard | None = None, all_gather: AllGather | None = None):
        self.weight = weight                 # [rows, H] the target's LM head (this rank's shard)
        self.shard = shard or VocabShard(0, weight.shape[0])  # its real vocabulary rows
        self.all_gather = all_gather         # TP all-gather when the head is vocab-parallel
        self.block_size = int(block_size)    # B
        self.max_bs = int(max_bs)            # the largest captured batch
        # out [max_bs * (B-1)] int64: proposals written by the captured graphs
        self.out = torch.zeros(self.max_bs * (self.block_size - 1), dtype=torch.int64,
                               device=weight.device)

    def propose(self, hidden: torch.Tensor) -> torch.Tensor:
        """hidden [bs * B, H] final drafter states -> proposals [bs, B-1] int64."""
        B = self.block_size
        bs = hidden.shape[0] // B
        drafts = hidden.view(bs, B, -1)[:, 1:]                              # [bs, B-1, H]
        return vocab_parallel_argmax(drafts, self.weight, self.shard, self.all_gather)

    def record(self, hidden: torch.Tensor) -> None:
        """``propose`` into ``out`` (fixed address): called inside graph capture."""
        tokens = self.propose(hidden).reshape(-1)
        if tokens.numel() > self.out.numel():
            raise RuntimeError(f"DraftHead.record: {tokens.numel()} proposals exceed the buffer "
                               f"of {self.out.numel()} (max_bs={self.max_bs})")
        self.out[: tokens.numel()].copy_(tokens)

    def read(self, bs: int) -> torch.Tensor:
        """The proposals of the last graph replay for the first ``bs`` requests, [bs, B-1]."""
        return self.out[: bs * (self.block_size - 1)].view(bs, self.block_size - 1)
