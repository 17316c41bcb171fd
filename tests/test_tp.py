"""Tensor-parallel pieces of the worker, checked on CPU without SGLang's engine.

The drafter's vocab-parallel argmax (``sglang_dflash/sglang/vocab_argmax.py``): shards are
laid out as SGLang's ``ParallelLMHead`` lays them out: every rank holds the
same number of rows, a contiguous range of token ids followed by padding rows. The
padding rows here are poisoned (they would win every argmax), so a shard that scores
them fails. The result must equal ``torch.argmax`` over the full real vocabulary,
ties included (the lowest id wins), on every rank.

World sizes 1..4 run as threads around a simulated all-gather (fast, many cases); two
real gloo processes check the collective itself.

With SGLang installed, ``cpu_sglang/tp_ranks.py`` runs our pieces on SGLang's own TP
layers in two gloo ranks: the argmax over a real ``ParallelLMHead`` shard, the sharded
drafter (context K/V heads, block forward) against the unsharded core drafter, and the
rank-0 broadcast of the accept decision.
"""

from __future__ import annotations

import math
import os
import subprocess
import threading

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from sglang_dflash.sglang.vocab_argmax import VocabShard, lm_head_shard, vocab_parallel_argmax

HIDDEN = 16


def shard_layout(vocab: int, world: int, pad: int = 8) -> tuple[int, list[VocabShard]]:
    """(rows per rank, VocabShard per rank): vocab padded to a multiple of pad * world."""
    per_rank = math.ceil(vocab / (pad * world)) * pad
    rows = [max(0, min(vocab, (r + 1) * per_rank) - r * per_rank) for r in range(world)]
    return per_rank, [VocabShard(r * per_rank, rows[r]) for r in range(world)]


def padded_weight(weight: torch.Tensor, world: int, pad: int = 8):
    """Per-rank shards of ``weight`` [V, H] with poisoned padding rows, and their shards."""
    per_rank, shards = shard_layout(weight.shape[0], world, pad)
    poison = torch.full((per_rank * world - weight.shape[0], weight.shape[1]), 1e6)
    full = torch.cat([weight, poison])
    return [full[r * per_rank:(r + 1) * per_rank] for r in range(world)], shards


def run_ranks(world: int, fn):
    """Run fn(rank, all_gather) on ``world`` threads sharing a simulated all-gather."""
    slots: list = [None] * world
    barrier = threading.Barrier(world)
    results: list = [None] * world
    errors: list = []

    def all_gather(t):
        slots[rank_of[threading.get_ident()]] = t
        barrier.wait()
        out = torch.cat(slots)
        barrier.wait()  # nobody overwrites a slot before everyone has read them
        return out

    def body(rank):
        rank_of[threading.get_ident()] = rank
        try:
            results[rank] = fn(rank, all_gather if world > 1 else None)
        except BaseException as e:  # noqa: BLE001 -- re-raised in the caller
            errors.append(e)
            barrier.abort()

    rank_of: dict = {}
    threads = [threading.Thread(target=body, args=(r,)) for r in range(world)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return results


def check_all_ranks(hidden, weight, world):
    expected = (hidden @ weight.t()).argmax(dim=-1)
    shards, layout = padded_weight(weight, world)
    got = run_ranks(world, lambda r, gather: vocab_parallel_argmax(hidden, shards[r], layout[r],
                                                                    gather))
    for rank, ids in enumerate(got):
        assert ids.dtype == torch.int64 and ids.shape == expected.shape
        assert torch.equal(ids, expected), f"world {world} rank {rank}: {ids} != {expected}"


@pytest.mark.parametrize("world", [1, 2, 3, 4])
@pytest.mark.parametrize("vocab", [5, 37, 64, 100])
def test_random_logits_match_full_argmax(world, vocab):
    g = torch.Generator().manual_seed(vocab * 10 + world)
    hidden = torch.randn(3, 7, HIDDEN, generator=g)  # leading dims are kept
    check_all_ranks(hidden, torch.randn(vocab, HIDDEN, generator=g), world)


@pytest.mark.parametrize("world", [2, 3, 4])
def test_ties_go_to_the_lowest_id(world):
    # small integers: many exactly equal logits, within and across shards
    g = torch.Generator().manual_seed(world)
    hidden = torch.randint(-1, 2, (64, HIDDEN), generator=g).float()
    weight = torch.randint(-1, 2, (50, HIDDEN), generator=g).float()
    weight[40:] = weight[:10]  # rows duplicated into the last shard
    logits = hidden @ weight.t()
    assert ((logits == logits.max(-1, keepdim=True).values).sum(-1) > 1).any()
    check_all_ranks(hidden, weight, world)


def test_negative_logits_never_pick_zero_padding():
    hidden = torch.ones(4, HIDDEN)
    weight = -torch.rand(21, HIDDEN) - 0.1  # every real logit < 0
    per_rank, layout = shard_layout(21, 2)
    full = torch.cat([weight, torch.zeros(per_rank * 2 - 21, HIDDEN)])  # zero padding rows
    shards = [full[:per_rank], full[per_rank:]]
    got = run_ranks(2, lambda r, gather: vocab_parallel_argmax(hidden, shards[r], layout[r],
                                                                gather))
    assert got[0].tolist() == got[1].tolist() == (hidden @ weight.t()).argmax(-1).tolist()


def test_a_nan_logit_wins_as_in_torch_argmax():
    g = torch.Generator().manual_seed(3)
    hidden, weight = torch.randn(5, HIDDEN, generator=g), torch.randn(30, HIDDEN, generator=g)
    weight[27] = float("nan")
    check_all_ranks(hidden, weight, 2)
    assert (hidden @ weight.t()).argmax(-1).tolist() == [27] * 5


def test_empty_batch_skips_the_collective():
    def must_not_gather(_):
        raise AssertionError("all_gather called for an empty batch")

    out = vocab_parallel_argmax(torch.empty(0, 3, HIDDEN), torch.randn(8, HIDDEN),
                                VocabShard(0, 8), must_not_gather)
    assert out.shape == (0, 3)


def test_lm_head_shard_reads_sglang_shard_indices():
    class Indices:
        org_vocab_start_index, org_vocab_end_index = 256, 500

    class Head:
        shard_indices, weight = Indices(), torch.empty(256, HIDDEN)

    assert lm_head_shard(Head(), vocab_size=500, tp_size=2) == VocabShard(256, 244)
    # the model's vocab_size may be below the LM head's (extra rows are never proposed)
    assert lm_head_shard(Head(), vocab_size=300, tp_size=2) == VocabShard(256, 44)
    assert lm_head_shard(Head(), vocab_size=200, tp_size=2) == VocabShard(256, 0)


def test_lm_head_without_shard_indices():
    head = torch.nn.Linear(HIDDEN, 70, bias=False)
    assert lm_head_shard(head, vocab_size=64, tp_size=1) == VocabShard(0, 64)
    with pytest.raises(RuntimeError, match="shard_indices.*tp_size=2"):
        lm_head_shard(head, vocab_size=64, tp_size=2)


@pytest.mark.sglang
def test_sglang_layers_in_two_gloo_ranks():
    """SGLang's own TP layers in two gloo ranks (``cpu_sglang/tp_ranks.py``): our argmax
    over a real ``ParallelLMHead`` shard, the sharded drafter against the unsharded core
    drafter, the rank-0 broadcast of the accept decision."""
    from cpu_sglang import e2e
    from cpu_sglang.server import cpu_env

    e2e.require_sglang()
    pair = e2e.steered_pair()
    script = os.path.join(os.path.dirname(__file__), "cpu_sglang", "tp_ranks.py")
    proc = subprocess.run([e2e.sglang_python(), script, pair.drafters[4], pair.target],
                          env=cpu_env(), capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0 and "tp ranks ok" in proc.stdout, \
        proc.stdout[-2000:] + proc.stderr[-4000:]


# ---- two gloo processes ------------------------------------------------------------------
def _gloo_rank(rank: int, world: int, init_file: str) -> None:
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank,
                            world_size=world)

    def all_gather(t):
        out = torch.empty((world * t.shape[0], *t.shape[1:]), dtype=t.dtype)
        dist.all_gather_into_tensor(out, t.contiguous())
        return out

    try:
        for vocab in (100, 9):  # 9: rank 1 holds a single real row
            g = torch.Generator().manual_seed(vocab)
            hidden = torch.randint(-2, 3, (2, 9, HIDDEN), generator=g).float()
            weight = torch.randint(-2, 3, (vocab, HIDDEN), generator=g).float()
            weight[-1] = weight[1]  # an exact tie across the shards (the last id is on rank 1)
            shards, layout = padded_weight(weight, world)
            got = vocab_parallel_argmax(hidden, shards[rank], layout[rank], all_gather)
            expected = (hidden @ weight.t()).argmax(dim=-1)
            assert torch.equal(got, expected), f"vocab {vocab} rank {rank}: {got} != {expected}"
            everyone = [torch.empty_like(got) for _ in range(world)]
            dist.all_gather(everyone, got)
            assert all(torch.equal(everyone[0], x) for x in everyone), "ranks disagree"
    finally:
        dist.destroy_process_group()


def test_two_gloo_processes(tmp_path, monkeypatch):
    monkeypatch.setenv("GLOO_SOCKET_IFNAME", "lo")  # loopback: no hostname lookup needed
    mp.spawn(_gloo_rank, args=(2, str(tmp_path / "init")), nprocs=2, join=True)
