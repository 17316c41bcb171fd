"""Which worker serves DFLASH, forced acceptance, and startup failures.

* ``SGLANG_DFLASH_IMPL=builtin`` really switches to SGLang's own worker (asserted on
  the worker's start-up line, not only on output);
* ``SGLANG_SIMULATE_ACC_LEN`` forces the acceptance length the way the built-in does;
* a malformed or mismatched drafter, or an unknown ``SGLANG_DFLASH_IMPL``, fails at
  startup with a message naming the field.
"""

from __future__ import annotations

import json
import shutil

import pytest

from cpu_sglang import e2e

e2e.require_sglang()
pytestmark = [pytest.mark.sglang, pytest.mark.slow]

BLOCK = 4


@pytest.fixture(scope="module")
def pair():
    return e2e.steered_pair()


@pytest.fixture(scope="module")
def hf_greedy(pair):
    torch = pytest.importorskip("torch")
    pytest.importorskip("transformers")
    model, tok = e2e.load_hf(pair.target)

    def run(prompt: str, n: int) -> list[int]:
        ids = torch.tensor([tok.encode(prompt)])
        with torch.no_grad():
            out = model.eval().generate(ids, max_new_tokens=n, do_sample=False,
                                        eos_token_id=None, pad_token_id=0)
        return out[0, ids.shape[1]:].tolist()

    return run


def _core_reference_steps(pair, prompts, max_new):
    """Verify steps per prompt of the core reference loop (HF target + our drafter)."""
    torch = pytest.importorskip("torch")
    pytest.importorskip("transformers")
    from sglang_dflash.model import DFlashDrafter
    from sglang_dflash.reference import generate

    target, tok = e2e.load_hf(pair.target)
    drafter = DFlashDrafter.from_pretrained(pair.drafters[BLOCK])
    with torch.no_grad():
        out = generate(target.eval(), drafter.eval(), [tok.encode(p) for p in prompts],
                       max_new_tokens=max_new, block_size=BLOCK)
    return [len(steps) for steps in out.accept_lens]


def test_builtin_switch_runs_sglangs_worker(pair, hf_greedy):
    server = e2e.start("switch-builtin", pair.target, e2e.dflash_args(pair.drafters[BLOCK], BLOCK),
                       env={"SGLANG_DFLASH_IMPL": "builtin"})
    try:
        prompts = e2e.PROMPTS[:4]
        sampling = {"temperature": 0, "max_new_tokens": e2e.MAX_NEW, "ignore_eos": True}
        results = e2e.generate(server, prompts, sampling)
        log = server.log_text()
    finally:
        server.stop()
    assert e2e.BUILTIN_WORKER_LINE in log
    assert "SGLANG_DFLASH_IMPL=builtin" in log
    assert e2e.OUR_WORKER_LINE not in log
    for prompt, r in zip(prompts, results):
        assert r["output_ids"] == hf_greedy(prompt, e2e.MAX_NEW)
    # SGLang's own drafter accepts exactly what our drafter accepts (same steps per request)
    assert [r["meta_info"]["spec_verify_ct"] for r in results] == \
        _core_reference_steps(pair, prompts, e2e.MAX_NEW)


def test_simulated_acceptance_length(pair):
    server = e2e.start("switch-simulate", pair.target, e2e.dflash_args(pair.drafters[BLOCK], BLOCK),
                       env={"SGLANG_SIMULATE_ACC_LEN": "3"})
    try:
        sampling = {"temperature": 0, "max_new_tokens": 31, "ignore_eos": True}
        results = e2e.generate(server, e2e.PROMPTS[:4], sampling)
        log = server.log_text()
    finally:
        server.stop()
    assert e2e.OUR_WORKER_LINE in log
    for r in results:
        meta = r["meta_info"]
        # one token from prefill, then exactly 3 per step: 1 + 10 * 3 = 31
        assert meta["spec_verify_ct"] == 10
        # SGLang's "fixed" token mode emits token id 100 for forced steps
        assert r["output_ids"][1:] == [100] * 30


def _broken_drafter(pair, tmp_path, edit) -> str:
    d = tmp_path / "broken-drafter"
    shutil.copytree(pair.drafters[BLOCK], d)
    cfg = json.loads((d / "config.json").read_text())
    edit(cfg)
    (d / "config.json").write_text(json.dumps(cfg))
    return str(d)


def _start_fails(name, model, args, env=None) -> str:
    with pytest.raises(RuntimeError) as err:
        e2e.start(name, model, args, env=env)
    return str(err.value)


@pytest.mark.parametrize("edit, field", [
    (lambda c: c.update(hidden_size=96), "hidden_size"),
    (lambda c: c["dflash_config"].pop("mask_token_id"), "dflash_config.mask_token_id"),
    (lambda c: c["dflash_config"].update(target_layer_ids=[1, 9]), "dflash_config.target_layer_ids"),
], ids=["hidden-size-mismatch", "no-mask-token", "target-layer-out-of-range"])
def test_bad_drafter_fails_at_startup_naming_the_field(pair, tmp_path, edit, field):
    drafter = _broken_drafter(pair, tmp_path, edit)
    tail = _start_fails(f"switch-bad-{field}", pair.target, e2e.dflash_args(drafter, BLOCK))
    assert "DFlashConfigError" in tail and f"field '{field}'" in tail, tail


def test_unknown_impl_fails_at_startup(pair):
    tail = _start_fails("switch-bad-impl", pair.target, e2e.dflash_args(pair.drafters[BLOCK], BLOCK),
                        env={"SGLANG_DFLASH_IMPL": "nonsense"})
    assert "SGLANG_DFLASH_IMPL" in tail, tail
