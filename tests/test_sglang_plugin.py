"""The plugin's hooks inside a real SGLang 0.5.17 process (no server, no model).

Runs in a subprocess of the SGLang interpreter with the CPU stubs on the path,
because importing SGLang changes process-wide state (torch settings, logging).
"""

from __future__ import annotations

import subprocess
import textwrap

import pytest

from cpu_sglang import e2e
from cpu_sglang.server import cpu_env

e2e.require_sglang()
pytestmark = pytest.mark.sglang


def _run(code: str, env: dict | None = None) -> str:
    proc = subprocess.run([e2e.sglang_python(), "-c", textwrap.dedent(code)],
                          env=cpu_env(env), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


CHECK = """
    from sglang.srt.plugins.hook_registry import HookRegistry
    from sglang_dflash.plugin import register
    register()
    HookRegistry.apply_hooks()
    from sglang.srt.speculative.spec_info import SpeculativeAlgorithm
    from sglang_dflash.sglang import hooks
    assert hooks.create_worker_hook_installed()
    from sglang.srt.arg_groups import speculative_hook
    assert speculative_hook._handle_dflash(hooks.PROBE) == hooks.PROBE_ANSWER
    cls = SpeculativeAlgorithm.DFLASH.create_worker(None)
    print("DFLASH", cls.__module__ + "." + cls.__name__)
    from types import SimpleNamespace
    cls = SpeculativeAlgorithm.EAGLE.create_worker(SimpleNamespace(enable_multi_layer_eagle=False))
    print("EAGLE", cls.__name__)
"""


def test_hooks_route_dflash_to_our_worker():
    out = _run(CHECK)
    assert "DFLASH sglang_dflash.sglang.worker.DFlashWorker" in out
    assert "EAGLE EAGLEWorkerV2" in out  # other algorithms are untouched


def test_builtin_switch():
    out = _run(CHECK, env={"SGLANG_DFLASH_IMPL": "builtin"})
    assert "DFLASH sglang.srt.speculative.dflash_worker_v2.DFlashWorkerV2" in out


def test_register_imports_nothing_heavy():
    out = _run("""
        import sys
        from sglang_dflash.plugin import register
        register()
        # (torch itself comes with `import sglang`, which SGLang has done before plugins run)
        heavy = [m for m in ("sglang.srt.managers.scheduler", "sglang.srt.model_executor.model_runner",
                             "sglang.srt.speculative.spec_info", "sglang_dflash.sglang.worker")
                 if m in sys.modules]
        print("HEAVY", heavy)
    """)
    assert "HEAVY []" in out


def test_accept_step_matches_core_verifier():
    out = _run("""
        import torch
        from types import SimpleNamespace
        from sglang_dflash.sglang.accept import verify_step
        from sglang_dflash.verify import greedy_verify, sampling_verify
        from sglang_dflash.sampling import target_probs
        from sglang_dflash.sglang.accept import sampling_params_from
        g = torch.Generator().manual_seed(0)
        bs, B, V = 5, 4, 11
        logits = torch.randn(bs * B, V, generator=g)
        best = logits.view(bs, B, V).argmax(-1)
        chain = torch.randint(0, V, (bs, B), generator=g)
        chain[0, 1:] = best[0, :-1]          # all drafts right
        chain[1, 1:3] = best[1, :2]          # two right, then wrong
        chain[1, 3] = (best[1, 2] + 1) % V
        prefix = torch.tensor([10, 20, 30, 40, 50])
        greedy = SimpleNamespace(is_all_greedy=True)
        o, best_out = verify_step(chain[:, 1:], logits, greedy, None, prefix)
        assert torch.equal(best_out, best)  # handed on to SGLANG_SIMULATE_ACC_LEN
        ref = greedy_verify(chain[:, 1:], logits.view(bs, B, V))
        assert torch.equal(o.accept_len.long(), ref.accept_len) and torch.equal(o.bonus, ref.bonus)
        assert o.accept_len[0] == 3 and o.accept_len[1] == 2
        assert torch.equal(o.commit_lens, (ref.accept_len + 1).int())
        assert torch.equal(o.new_seq_lens, prefix + o.commit_lens)
        assert o.out_tokens[0].tolist() == chain[0, 1:].tolist() + [int(best[0, 3])]
        # sampling: the same uniforms (same generator state) give the core verifier's result
        info = SimpleNamespace(is_all_greedy=False, top_ks=torch.full((bs,), 5),
                               temperatures=torch.full((bs, 1), 0.8), top_ps=torch.full((bs,), 0.9),
                               min_ps=torch.zeros(bs))
        o, best_out = verify_step(chain[:, 1:], logits, info, torch.Generator().manual_seed(3), prefix)
        assert best_out is None
        assert torch.equal(o.new_seq_lens, prefix + o.commit_lens)
        probs = target_probs(logits.view(bs, B, V), sampling_params_from(info)).float()
        g2 = torch.Generator().manual_seed(3)
        u = (torch.rand((bs, B - 1), generator=g2), torch.rand((bs,), generator=g2))
        ref = sampling_verify(chain[:, 1:].contiguous(), probs, uniforms=u)
        assert torch.equal(o.accept_len.long(), ref.accept_len) and torch.equal(o.bonus, ref.bonus)
        print("OK")
    """)
    assert "OK" in out


def test_seeded_accept_step_does_not_depend_on_the_batch():
    """Under deterministic inference (``sampling_info.sampling_seed`` set) a request's accept
    decision is the same alone, in a batch and in another batch order; without seeds the
    worker's one generator makes it depend on the batch."""
    out = _run("""
        import torch
        from types import SimpleNamespace
        from sglang_dflash.sglang.accept import verify_step
        g = torch.Generator().manual_seed(5)
        bs, B, V = 6, 5, 9
        logits = torch.randn(bs * B, V, generator=g)
        drafts = torch.randint(0, V, (bs, B - 1), generator=g)
        prefix = torch.tensor([3, 40, 41, 7, 100, 12])
        seeds = torch.tensor([42, 42, 9, 1, 2 ** 33, 5])

        def run(rows, seeded, gen_seed=0):
            idx = torch.tensor(rows)
            n = len(rows)
            info = SimpleNamespace(is_all_greedy=False, top_ks=torch.full((n,), 1 << 30),
                                   temperatures=torch.full((n, 1), 1.0), top_ps=torch.ones(n),
                                   min_ps=torch.zeros(n), sampling_seed=seeds[idx] if seeded else None)
            o, _ = verify_step(drafts[idx], logits.view(bs, B, V)[idx].reshape(-1, V), info,
                               torch.Generator().manual_seed(gen_seed), prefix[idx], use_triton=False)
            return [(int(o.accept_len[i]), o.out_tokens[i].tolist()) for i in range(n)]

        order = [5, 3, 1, 0, 4, 2]
        together = run(list(range(bs)), True)
        assert [together[i] for i in order] == run(order, True)
        assert all(run([i], True, gen_seed=i + 1) == [together[i]] for i in range(bs))
        assert run(list(range(bs)), False) != [run([i], False)[0] for i in range(bs)]
        print("OK")
    """)
    assert "OK" in out


def test_extend_positions():
    out = _run("""
        import torch
        from sglang_dflash.sglang.worker import extend_positions
        cpu = torch.device("cpu")
        got = extend_positions([0, 5, 7], [3, 0, 2], cpu)
        assert got.tolist() == [0, 1, 2, 7, 8] and got.dtype == torch.int64, got
        assert extend_positions([], [], cpu).tolist() == []
        print("OK")
    """)
    assert "OK" in out


@pytest.mark.slow
def test_offline_engine_uses_our_worker():
    pair = e2e.steered_pair()
    out = _run(f"""
        import sglang
        engine = sglang.Engine(
            model_path={pair.target!r}, device="cpu", attention_backend="torch_native",
            dtype="float32", max_total_tokens=4096, random_seed=7,
            speculative_algorithm="DFLASH", speculative_draft_model_path={pair.drafters[4]!r},
            speculative_num_draft_tokens=4, log_level="info")
        try:
            res = engine.generate({e2e.PROMPTS[:3]!r},
                                  {{"temperature": 0, "max_new_tokens": 16, "ignore_eos": True}})
            for r in res:
                print("IDS", r["output_ids"], r["meta_info"]["spec_verify_ct"])
        finally:
            engine.shutdown()
    """)
    import torch
    import transformers

    model = transformers.AutoModelForCausalLM.from_pretrained(pair.target, dtype=torch.float32)
    tok = transformers.AutoTokenizer.from_pretrained(pair.target)
    lines = [line for line in out.splitlines() if line.startswith("IDS ")]
    assert len(lines) == 3, out
    for prompt, line in zip(e2e.PROMPTS[:3], lines):
        ids = torch.tensor([tok.encode(prompt)])
        with torch.no_grad():
            ref = model.generate(ids, max_new_tokens=16, do_sample=False, eos_token_id=None,
                                 pad_token_id=0)[0, ids.shape[1]:].tolist()
        assert line.startswith(f"IDS {ref} "), (line, ref)


def test_startup_fails_when_create_worker_hook_did_not_apply():
    """SGLang swallows hook failures; ours must turn that into a startup error."""
    out = _run("""
        from types import SimpleNamespace
        from sglang.srt.plugins.hook_registry import HookRegistry, HookType
        from sglang_dflash.sglang import hooks
        # as if the create_worker hook had failed to apply: only the other one is installed
        HookRegistry.register(hooks.HANDLE_DFLASH, hooks.handle_dflash_around, HookType.AROUND)
        HookRegistry.apply_hooks()
        from sglang.srt.arg_groups import speculative_hook
        try:
            speculative_hook._handle_dflash(SimpleNamespace(device="cuda"))
        except RuntimeError as e:
            print("RAISED", e)
    """)
    assert "RAISED sglang-dflash: the hook on SpeculativeAlgorithm.create_worker did not apply" in out
