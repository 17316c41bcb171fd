"""The fused context-K/V writer (one projection for all draft layers) against the plain
per-layer path, on the SGLang drafter class built from SGLang's own layers (CPU, fp32):
its torch form with a recording pool, and its Triton store (in Triton's interpreter) into a
real SGLang KV pool.

Also covers the DraftHead (its recorded buffer equals its eager proposals) and the sliding
window the drafter reports to SGLang's model runner."""

from __future__ import annotations

import subprocess
import textwrap

import pytest

from cpu_sglang import e2e
from cpu_sglang.server import cpu_env, free_port

e2e.require_sglang()
pytestmark = pytest.mark.sglang

SCRIPT = """
    import torch
    from transformers import PretrainedConfig
    from sglang.srt import runtime_context
    from sglang.srt.distributed.parallel_state import (
        init_distributed_environment, initialize_model_parallel)
    from sglang.srt.server_args import ServerArgs

    init_distributed_environment(world_size=1, rank=0, local_rank=0, backend="gloo",
                                 distributed_init_method="tcp://127.0.0.1:{port}")
    initialize_model_parallel(1)
    runtime_context.publish(ServerArgs(model_path={target!r}, device="cpu"), role="test")

    from sglang_dflash.sglang.context_kv import ContextKVWriter
    from sglang_dflash.sglang.draft_head import DraftHead
    from sglang_dflash.sglang.drafter import SGLangDFlashDrafter

    torch.manual_seed(0)
    cfg = PretrainedConfig(
        architectures=["DFlashDraftModel"], hidden_size=64, num_hidden_layers=3,
        num_attention_heads=4, num_key_value_heads=2, head_dim=16, intermediate_size=128,
        rms_norm_eps=1e-6, rope_theta=10000.0, max_position_embeddings=512, vocab_size=100,
        block_size=4, num_target_layers=4, attention_bias={bias},
        dflash_config={{"mask_token_id": 3, "target_layer_ids": [0, 2]}})
    m = SGLangDFlashDrafter(cfg).float()
    with torch.no_grad():
        for p in m.parameters():
            p.copy_(torch.randn_like(p) * 0.3 + (1.0 if p.ndim == 1 else 0.0))

    class Pool:   # records what set_kv_buffer receives, per layer
        def __init__(self):
            self.kv = {{}}
        def set_kv_buffer(self, layer, loc, k, v, k_scale, v_scale):
            self.kv[layer.layer_id] = (loc.clone(), k.clone(), v.clone())

    n = 7
    feats = torch.randn(n, 2 * 64)
    positions = torch.tensor([0, 1, 2, 9, 10, 40, 300])
    loc = torch.arange(100, 100 + n)
    fused, plain = Pool(), Pool()
    m.write_context_kv(feats, positions, loc, fused)           # the fused writer
    assert isinstance(m._kv_writer, ContextKVWriter)
    m.write_context_kv_per_layer(m.project_context(feats), positions, loc, plain)
    assert sorted(fused.kv) == sorted(plain.kv) == [0, 1, 2]
    for i in range(3):
        (l1, k1, v1), (l2, k2, v2) = fused.kv[i], plain.kv[i]
        assert torch.equal(l1, l2)
        assert k1.shape == k2.shape == (n, 2, 16), k1.shape
        assert torch.allclose(k1, k2, atol=1e-5, rtol=1e-5), (k1 - k2).abs().max()
        assert torch.allclose(v1, v2, atol=1e-5, rtol=1e-5), (v1 - v2).abs().max()

    # the Triton store (TRITON_INTERPRET=1 here) into a real SGLang pool, vs set_kv_buffer
    from sglang.srt.mem_cache.memory_pool import MHATokenToKVPool

    def pool():
        return MHATokenToKVPool(size=400, page_size=1, dtype=torch.float32, head_num=2,
                                head_dim=16, layer_num=3, device="cpu",
                                enable_memory_saver=False)
    m._kv_writer = None
    m.max_positions = 512
    fused_pool, plain_pool = pool(), pool()
    m.write_context_kv(feats, positions, loc, fused_pool)
    assert m._kv_writer._kernel_ok is True
    m.write_context_kv_per_layer(m.project_context(feats), positions, loc, plain_pool)
    for i in range(3):
        for get in ("get_key_buffer", "get_value_buffer"):
            a, b = getattr(fused_pool, get)(i), getattr(plain_pool, get)(i)
            assert torch.allclose(a, b, atol=1e-5, rtol=1e-5), (get, i, (a - b).abs().max())
            assert a[loc].abs().sum() > 0
    # a rotary cache shorter than the positions the server can reach: the torch path
    m._kv_writer = None
    m.max_positions = 10 ** 6
    m.write_context_kv(feats, positions, loc, pool())
    assert m._kv_writer._kernel_ok is False

    # DraftHead: the recorded buffer holds exactly the eager proposals
    weight = torch.randn(100, 64)
    head = DraftHead(weight, block_size=4, max_bs=3)
    hidden = torch.randn(2 * 4, 64)
    head.record(hidden)
    want = (hidden.view(2, 4, 64)[:, 1:] @ weight.t()).argmax(-1)
    assert torch.equal(head.read(2), want) and torch.equal(head.propose(hidden), want)
    try:
        head.record(torch.randn(4 * 4, 64))
        raise AssertionError("a batch beyond max_bs must be refused")
    except RuntimeError as e:
        assert "exceed the buffer" in str(e)

    # the window SGLang's model runner sizes its attention backends with (triton builds its
    # window KV indices from it): the sliding layers' window minus the query itself
    assert m.get_attention_sliding_window_size() is None
    cfg.layer_types = ["full_attention", "sliding_attention", "full_attention"]
    cfg.sliding_window = 5
    assert SGLangDFlashDrafter(cfg).get_attention_sliding_window_size() == 4
    print("OK")
"""


@pytest.mark.parametrize("bias", [False, True])
def test_fused_context_kv_matches_per_layer(bias):
    target = e2e.steered_pair().target  # any local model: ServerArgs needs a real path
    code = textwrap.dedent(SCRIPT).format(port=free_port(), target=target, bias=bias)
    proc = subprocess.run([e2e.sglang_python(), "-c", code], env=cpu_env({"TRITON_INTERPRET": "1"}),
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "OK" in proc.stdout
