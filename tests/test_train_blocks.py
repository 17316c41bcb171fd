"""The training blocks: anchors in the loss region, labels, weights and the block attention mask."""
import math

import torch

from sglang_dflash.train.blocks import (acceptance_from_correct, block_attention_mask, block_inputs, block_labels,
                                        position_weights, sample_anchors, sample_block_lengths)


def test_anchors_stay_in_loss_region_and_are_distinct():
    lm = torch.zeros(3, 20, dtype=torch.bool)
    lm[0, 5:15] = True
    lm[1, 2:4] = True  # one eligible anchor (2): its next token 3 is trainable too
    lm[2, 10:] = True
    g = torch.Generator().manual_seed(0)
    anchors, valid = sample_anchors(lm, 6, g)
    assert anchors.shape == (3, 6)
    for r in range(3):
        got = anchors[r][valid[r]].tolist()
        assert len(set(got)) == len(got)
        assert all(lm[r, a] and lm[r, a + 1] for a in got)
        assert got == sorted(got)
    assert valid[1].sum() == 1 and anchors[1][valid[1]].tolist() == [2]
    assert valid[0].sum() == 6 and valid[2].sum() == 6


def test_no_eligible_anchor():
    anchors, valid = sample_anchors(torch.zeros(2, 8, dtype=torch.bool), 4)
    assert anchors.shape[1] == 0 and not valid.any()


def test_block_inputs_labels_and_weights():
    ids = torch.arange(100, 110)[None]  # tokens 100..109
    lm = torch.ones(1, 10, dtype=torch.bool)
    lm[0, :3] = False
    anchors, valid = torch.tensor([[3, 7]]), torch.tensor([[True, True]])
    blk, pos = block_inputs(ids, anchors, 4, mask_token_id=1)
    assert blk.tolist() == [[[103, 1, 1, 1], [107, 1, 1, 1]]]
    assert pos.tolist() == [[[3, 4, 5, 6], [7, 8, 9, 10]]]
    labels, ok = block_labels(ids, lm, anchors, valid, 4)
    assert labels[0, 0].tolist() == [104, 105, 106]
    assert ok[0, 0].tolist() == [True, True, True]
    assert ok[0, 1].tolist() == [True, True, False]  # position 10 is past the end
    w = position_weights(16, 7.0)
    assert w.shape == (15,) and w[0] == 1.0 and math.isclose(float(w[7]), math.exp(-1.0), rel_tol=1e-6)


def test_block_mask_context_strictly_before_anchor_and_own_block_only():
    anchors, valid = torch.tensor([[2, 5, 0]]), torch.tensor([[True, True, False]])
    B, n = 3, 8
    m = block_attention_mask(anchors, valid, n, B)
    assert m.shape == (1, 3 * B, n + 3 * B)
    for blk, a in enumerate([2, 5, 0]):
        for q in range(blk * B, (blk + 1) * B):
            ctx = m[0, q, :n].nonzero().flatten().tolist()
            assert ctx == (list(range(a)) if valid[0, blk] else [])
            own = m[0, q, n:].nonzero().flatten().tolist()
            assert own == list(range(blk * B, (blk + 1) * B))


def test_training_time_acceptance():
    correct = torch.tensor([[True, True, False, True], [False, True, True, True], [True, True, True, True]])
    ok = torch.tensor([[True] * 4, [True] * 4, [True, True, False, False]])
    assert acceptance_from_correct(correct, ok).tolist() == [3, 1, 3]


def test_shorter_blocks_see_and_train_only_their_first_positions():
    anchors, valid = torch.tensor([[1, 6]]), torch.tensor([[True, True]])
    B, n = 4, 10
    lengths = torch.tensor([[2, 4]])
    m = block_attention_mask(anchors, valid, n, B, lengths)
    for q in range(B):  # block 0, cut to 2: every row sees its own columns 0 and 1 only
        assert m[0, q, n:].nonzero().flatten().tolist() == [0, 1]
        assert m[0, q, :n].nonzero().flatten().tolist() == [0]
    for q in range(B, 2 * B):  # block 1 at full length
        assert m[0, q, n:].nonzero().flatten().tolist() == [4, 5, 6, 7]
    ids = torch.arange(100, 100 + n)[None]
    _, ok = block_labels(ids, torch.ones(1, n, dtype=torch.bool), anchors, valid, B, lengths)
    assert ok[0].tolist() == [[True, False, False], [True, True, True]]


def test_block_lengths_are_drawn_from_the_sizes():
    g = torch.Generator().manual_seed(0)
    lengths = sample_block_lengths((4, 64), (8, 16), g)
    assert set(lengths.unique().tolist()) == {8, 16}
    assert sample_block_lengths((2, 3), (8,)).tolist() == [[8] * 3] * 2
