"""Per-step state of ``DFlashWorker``, one dataclass each, shapes in comments.

Vocabulary as in docs/architecture.md: a decode step of a request with committed
length ``p`` builds the block ``[anchor, MASK x (B-1)]`` at positions ``p .. p+B-1``,
the drafter proposes ``d_1 .. d_{B-1}``, the target keeps ``A`` of them, and the step
commits ``A + 1`` tokens (``anchor, d_1 .. d_A``) and emits ``d_1 .. d_A, bonus``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from sglang.srt.speculative.dflash_info_v2 import DFlashDraftInputV2

PRODUCER = "sglang_dflash"


@dataclass
class DFlashStepInput(DFlashDraftInputV2):
    """What one step hands to the next: the anchors (``bonus_tokens``) and lengths.

    Reuses SGLang's DFLASH draft-input schema, because the scheduler drives it: its
    ``prepare_for_decode`` reserves ``2 * B`` KV slots past the committed length of
    every request before each step (so the worker never allocates inside a forward),
    ``filter_batch`` / ``merge_batch`` follow batch changes, and the overlap
    scheduler relays ``bonus_tokens`` through its FutureMap.

    Invariant: ``bonus_tokens[i]`` is request i's anchor for the next step, at
    position ``new_seq_lens[i]``, with no KV yet.
    """

    # bonus_tokens  [bs] int64   (inherited) next anchors
    # new_seq_lens  [bs] int64   (inherited) committed lengths after this step
    produced_by: str = PRODUCER

    @classmethod
    def make(cls, bonus_tokens: torch.Tensor, new_seq_lens: torch.Tensor) -> "DFlashStepInput":
        bs, device = int(new_seq_lens.numel()), bonus_tokens.device
        return cls(
            topk_p=torch.empty((bs, 0), device=device, dtype=torch.float32),
            topk_index=torch.empty((bs, 0), device=device, dtype=torch.int64),
            bonus_tokens=bonus_tokens.to(torch.int64),
            new_seq_lens=new_seq_lens.to(torch.int64),
            hidden_states=torch.empty((bs, 0), device=device, dtype=torch.float32),
        )


@dataclass
class DraftBlock:
    """The blocks of one decode step for ``bs`` requests, block size ``B``.

    Invariants: ``positions[i, j] == prefix_lens[i] + j`` and
    ``slots[i, j] == req_to_token[req_pool_indices[i], positions[i, j]]``; those slots
    were reserved by ``DFlashStepInput.prepare_for_decode`` before the step.
    """

    block_ids: torch.Tensor    # [bs, B] int64: anchor, then MASK
    positions: torch.Tensor    # [bs, B] int64
    slots: torch.Tensor        # [bs, B] int64 KV slot ids (target and draft pools)
    prefix_lens: torch.Tensor  # [bs] committed length p (= batch.seq_lens)
    host_seq_lens: torch.Tensor  # [bs] int64 on the host: a bound of each KV length in the step
    host_seq_lens_sum: int       # its sum (attention backends plan from both)

    @property
    def size(self) -> int:
        return int(self.block_ids.shape[1])


@dataclass
class StepOutcome:
    """Result of verifying the drafted blocks.

    Invariants: ``commit_lens == accept_len + 1``; ``out_tokens[i, :commit_lens[i]]``
    is ``d_1 .. d_A, bonus`` (zeros after); ``new_seq_lens == prefix_lens + commit_lens``.
    """

    accept_len: torch.Tensor    # [bs] int32 A, 0 .. B-1
    commit_lens: torch.Tensor   # [bs] int32 A + 1 (SGLang's accept_lens: tokens emitted)
    bonus: torch.Tensor         # [bs] int64 next anchors
    out_tokens: torch.Tensor    # [bs, B] int64 emitted tokens, zero padded
    new_seq_lens: torch.Tensor  # [bs] committed lengths after the step
