"""Our TP pieces on SGLang's own parallel layers, in two gloo ranks (no server, no engine).

    python tests/cpu_sglang/tp_ranks.py DRAFTER_DIR TARGET_DIR     (SGLang interpreter, CPU env)

Each rank sets up SGLang's TP group (world 2, gloo) and checks, against unsharded results:

1. vocab argmax: a ``ParallelLMHead`` sharded by SGLang (weights through its own loader),
   ``lm_head_shard`` + ``vocab_parallel_argmax`` through ``get_tp_group().all_gather``,
   wired as the worker wires them, equals ``torch.argmax`` over the full vocabulary;
2. the drafter (``SGLangDFlashDrafter``, sharded by SGLang's layers): the context K/V a rank
   writes are that rank's heads of the core drafter's K/V (``sglang_dflash.model``), and a
   block forward gives the core drafter's hidden states. Attention itself is a plain SDPA
   stand-in over the rank's heads (SGLang's backends are not what is under test here);
3. ``broadcast_outcome`` through ``get_tp_group().broadcast``: rank 0's decision everywhere.

Prints ``tp ranks ok`` from rank 0 when every check passed on both ranks.
"""

from __future__ import annotations

import os
import sys
import tempfile
from functools import partial

import torch
import torch.multiprocessing as mp
import torch.nn.functional as F

WORLD = 2
VOCAB, HIDDEN = 500, 64  # 500 rows: padded per rank, rank 1 holds fewer real rows


class RecordingPool:
    """Stands in for the draft KV pool: keeps what ``write_context_kv`` writes, per layer."""

    def __init__(self):
        self.kv = {}

    def set_kv_buffer(self, attn, loc, k, v, k_scale=None, v_scale=None):
        self.kv[attn.layer_id] = (k.clone(), v.clone())


class BlockAttention(torch.nn.Module):
    """Bidirectional attention of one block over this rank's context K/V plus the block."""

    def __init__(self, ctx_k, ctx_v, num_heads, num_kv_heads, head_dim):
        super().__init__()
        self.ctx_k, self.ctx_v = ctx_k, ctx_v  # [n, kv, hd]
        self.h, self.kv, self.hd = num_heads, num_kv_heads, head_dim

    def forward(self, q, k, v, forward_batch):
        q = q.view(-1, self.h, self.hd).transpose(0, 1)                        # [h, q, hd]
        k = torch.cat([self.ctx_k, k.view(-1, self.kv, self.hd)]).transpose(0, 1)
        v = torch.cat([self.ctx_v, v.view(-1, self.kv, self.hd)]).transpose(0, 1)
        group = self.h // self.kv
        k, v = k.repeat_interleave(group, 0), v.repeat_interleave(group, 0)
        out = F.scaled_dot_product_attention(q, k, v)                          # [h, q, hd]
        return out.transpose(0, 1).reshape(-1, self.h * self.hd)


def setup_sglang(rank: int, init_file: str, target_dir: str) -> None:
    from sglang.srt.distributed import init_distributed_environment, initialize_model_parallel
    from sglang.srt.runtime_context import get_context
    from sglang.srt.server_args import ServerArgs

    init_distributed_environment(world_size=WORLD, rank=rank, local_rank=rank, backend="gloo",
                                 distributed_init_method=f"file://{init_file}")
    initialize_model_parallel(tensor_model_parallel_size=WORLD)
    get_context().set_server_args(ServerArgs(
        model_path=target_dir, device="cpu", attention_backend="torch_native",
        dtype="float32", tp_size=WORLD))


def check_vocab_argmax(rank: int) -> None:
    from sglang.srt.distributed import get_tp_group
    from sglang.srt.layers.vocab_parallel_embedding import ParallelLMHead

    from sglang_dflash.sglang.vocab_argmax import lm_head_shard, vocab_parallel_argmax

    g = torch.Generator().manual_seed(0)
    full = torch.randint(-2, 3, (VOCAB, HIDDEN), generator=g).float()  # many exact ties
    full[-1] = full[3]                                                  # one across ranks
    hidden = torch.randint(-2, 3, (4, 5, HIDDEN), generator=g).float()
    head = ParallelLMHead(VOCAB, HIDDEN, params_dtype=torch.float32)
    head.weight_loader(head.weight, full)
    shard = lm_head_shard(head, VOCAB, WORLD)
    assert head.weight.shape[0] > shard.rows or rank == 0  # rank 1's shard ends in padding
    with torch.no_grad():
        head.weight[shard.rows:] = 1e6  # padding rows would win every argmax if scored
    got = vocab_parallel_argmax(hidden, head.weight, shard,
                                partial(get_tp_group().all_gather, dim=0))
    expected = (hidden @ full.t()).argmax(dim=-1)
    assert torch.equal(got, expected), f"rank {rank}: vocab argmax {got} != {expected}"


def check_drafter(rank: int, drafter_dir: str) -> None:
    from safetensors.torch import load_file
    from transformers import AutoConfig

    from sglang_dflash.model import DFlashDrafter
    from sglang_dflash.sglang.drafter import SGLangDFlashDrafter

    core = DFlashDrafter.from_pretrained(drafter_dir).eval()
    ours = SGLangDFlashDrafter(AutoConfig.from_pretrained(drafter_dir))
    ours.load_weights(load_file(os.path.join(drafter_dir, "model.safetensors")).items())
    cfg = core.config
    n_ctx, block = 7, 4
    g = torch.Generator().manual_seed(1)
    target_hidden = torch.randn(n_ctx, cfg.num_context_layers * cfg.hidden_size, generator=g)
    embeds = torch.randn(block, cfg.hidden_size, generator=g)
    ctx_pos, blk_pos = torch.arange(n_ctx), torch.arange(n_ctx, n_ctx + block)

    with torch.no_grad():
        ref_ctx = core.context_kv(core.project_context(target_hidden)[None], ctx_pos[None])
        ref_out = core(embeds[None], blk_pos[None], ref_ctx)[0]
        pool = RecordingPool()
        ours.write_context_kv(target_hidden, ctx_pos, ctx_pos, pool)
        for i, layer in enumerate(ours.layers):
            attn = layer.self_attn
            kv = attn.num_kv_heads
            heads = slice(rank * kv, (rank + 1) * kv)  # this rank's KV heads (kv >= ranks)
            k, v = pool.kv[attn.attn.layer_id]
            for name, mine, want in (("k", k, ref_ctx.keys[i]), ("v", v, ref_ctx.values[i])):
                want = want[0, heads].transpose(0, 1)                          # [n, kv, hd]
                assert torch.allclose(mine, want, atol=1e-5), \
                    f"rank {rank} layer {i}: context {name} is not this rank's heads"
            attn.attn = BlockAttention(k, v, attn.num_heads, kv, attn.head_dim)
        # the drafter embeds its input ids itself (through the target's embedding): bind a
        # lookup table whose rows are the test's block embeddings
        ours.bind_target_embedding(torch.nn.Embedding.from_pretrained(embeds))
        out = ours(torch.arange(block), blk_pos, None).hidden_states
    assert torch.allclose(out, ref_out, atol=1e-5), \
        f"rank {rank}: block forward differs by {(out - ref_out).abs().max():.3g}"


def check_broadcast(rank: int) -> None:
    from sglang.srt.distributed import get_tp_group

    from sglang_dflash.sglang.accept import broadcast_outcome
    from sglang_dflash.sglang.state import StepOutcome

    accept = torch.tensor([1, rank], dtype=torch.int32)  # rank 1 disagrees
    prefix = torch.tensor([10, 20])
    mine = StepOutcome(accept, accept + 1, torch.tensor([7, 8 + rank]),
                       torch.tensor([[5, 7, 0], [8 + rank, 9, 0]]), prefix + accept + 1)
    out = broadcast_outcome(mine, prefix, partial(get_tp_group().broadcast, src=0))
    assert out.accept_len.tolist() == [1, 0] and out.commit_lens.tolist() == [2, 1]
    assert out.bonus.tolist() == [7, 8] and out.out_tokens.tolist() == [[5, 7, 0], [8, 9, 0]]
    assert out.new_seq_lens.tolist() == [12, 21]
    assert out.accept_len.dtype == torch.int32 and out.bonus.dtype == torch.int64


def rank_main(rank: int, init_file: str, drafter_dir: str, target_dir: str) -> None:
    os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")
    torch.set_num_threads(1)
    setup_sglang(rank, init_file, target_dir)
    check_vocab_argmax(rank)
    check_drafter(rank, drafter_dir)
    check_broadcast(rank)
    import torch.distributed as dist

    dist.barrier()  # both ranks got here: every check passed on both
    if rank == 0:
        print("tp ranks ok", flush=True)


if __name__ == "__main__":
    drafter_dir, target_dir = sys.argv[1], sys.argv[2]
    with tempfile.TemporaryDirectory(prefix="sglang-dflash-tp-") as tmp:
        mp.spawn(rank_main, args=(os.path.join(tmp, "init"), drafter_dir, target_dir),
                 nprocs=WORLD, join=True)
