"""Our DFlashWorker at ``--tp-size 2`` on SGLang's CPU engine vs the target at tp 1.

SGLang 0.5.17's CPU engine runs tensor parallelism as one scheduler process per rank,
talking over gloo (its shared-memory all-reduce needs the real CPU sgl-kernel; without
it SGLang falls back to torch.distributed). It binds each rank's OpenMP threads to a
NUMA node unless ``SGLANG_CPU_OMP_THREADS_BIND`` names the cores, and refuses more
ranks than NUMA nodes otherwise, so the server gets one core per rank.

One DFLASH server at tp 2 (block 4, overlap scheduling on) must give, token for token,
the greedy output of the plain target at tp 1 (Hugging Face, fp32): one batched request
of 32 prompts, concurrency 1 and 8, a prompt longer than the chunked-prefill size, after
sampled requests and after an aborted stream. Its verify steps per request must equal
those of the core reference loop with the unsharded PyTorch drafter: the sharded drafter
(attention heads, MLP, context K/V per rank, vocab-parallel argmax) proposes the same
drafts.
"""

from __future__ import annotations

import os
from types import SimpleNamespace

import pytest

from cpu_sglang import e2e

e2e.require_sglang()
pytestmark = [pytest.mark.sglang, pytest.mark.slow]

BLOCK = 4
TP = 2
# one core per rank (cores 0 and 1 exist on any machine this runs on)
TP_ENV = {"SGLANG_CPU_OMP_THREADS_BIND": "0|1", "OMP_NUM_THREADS": "1"}
GREEDY = {"temperature": 0, "max_new_tokens": e2e.MAX_NEW, "ignore_eos": True}


@pytest.fixture(scope="module")
def pair():
    return e2e.steered_pair()


@pytest.fixture(scope="module")
def tp1(pair):
    """Greedy ids of the plain target at tp 1 (Hugging Face, fp32), and the verify steps
    of the core reference loop (HF target + unsharded drafter), per prompt, cached."""
    torch = pytest.importorskip("torch")
    from sglang_dflash.model import DFlashDrafter
    from sglang_dflash.reference import generate

    target, tok = e2e.load_hf(pair.target)
    drafter = DFlashDrafter.from_pretrained(pair.drafters[BLOCK]).eval()
    ids_cache: dict = {}

    def ids(prompt: str) -> list[int]:
        if prompt not in ids_cache:
            x = torch.tensor([tok.encode(prompt)])
            with torch.no_grad():
                out = target.generate(x, max_new_tokens=e2e.MAX_NEW, do_sample=False,
                                      eos_token_id=None, pad_token_id=0)
            ids_cache[prompt] = out[0, x.shape[1]:].tolist()
        return ids_cache[prompt]

    def steps(prompts: list[str]) -> list[int]:
        with torch.no_grad():
            out = generate(target, drafter, [tok.encode(p) for p in prompts],
                           max_new_tokens=e2e.MAX_NEW, block_size=BLOCK)
        return [len(s) for s in out.accept_lens]

    return SimpleNamespace(ids=ids, steps=steps)


@pytest.fixture(scope="module")
def server(pair):
    if (os.cpu_count() or 1) < TP:
        pytest.skip(f"--tp-size {TP} on the CPU engine needs {TP} cores")
    s = e2e.start("tp2-dflash", pair.target,
                  e2e.dflash_args(pair.drafters[BLOCK], BLOCK, "--tp-size", str(TP)), env=TP_ENV)
    yield s
    s.stop()


def test_two_ranks_run_our_worker(server):
    e2e.assert_our_worker(server, BLOCK)
    log = server.log_text()
    assert f"tp_size={TP}" in log
    assert " TP1] " in log  # the second rank's scheduler is up


def test_batched_32_identical_to_tp1_with_the_unsharded_drafts(server, tp1):
    results = e2e.generate(server, e2e.PROMPTS, GREEDY)
    for prompt, r in zip(e2e.PROMPTS, results):
        assert r["output_ids"] == tp1.ids(prompt), prompt
    steps = [r["meta_info"]["spec_verify_ct"] for r in results]
    assert steps == tp1.steps(e2e.PROMPTS), "tp 2 drafts differ from the unsharded drafter's"
    assert sum(r["meta_info"]["completion_tokens"] for r in results) / sum(steps) > 1.5


def test_concurrency_1_and_8_identical_to_tp1(server, tp1):
    one = e2e.generate_ids(server, e2e.PROMPTS[:3], concurrency=1, sampling=GREEDY)
    assert one == [tp1.ids(p) for p in e2e.PROMPTS[:3]]
    eight = e2e.generate_ids(server, e2e.PROMPTS[:16], concurrency=8, sampling=GREEDY)
    assert eight == [tp1.ids(p) for p in e2e.PROMPTS[:16]]


def test_prompt_longer_than_chunked_prefill(server, tp1):
    r = e2e.generate(server, e2e.long_prompt(), GREEDY)
    assert r["meta_info"]["prompt_tokens"] > 2 * e2e.CHUNKED_PREFILL
    assert r["output_ids"] == tp1.ids(e2e.long_prompt())


def test_sampled_requests_keep_the_ranks_in_step(server, tp1):
    """Sampling draws from each rank's own generator, seeded alike: the ranks must accept the
    same tokens, or their KV caches part and a later forward hangs or goes wrong."""
    sampling = {"temperature": 0.9, "top_p": 0.95, "max_new_tokens": e2e.MAX_NEW,
                "ignore_eos": True}
    results = e2e.generate(server, e2e.PROMPTS[:8], sampling)
    assert all(r["meta_info"]["completion_tokens"] == e2e.MAX_NEW for r in results)
    assert e2e.generate(server, e2e.PROMPTS[6], GREEDY)["output_ids"] == tp1.ids(e2e.PROMPTS[6])


def test_abort_frees_kv_and_output_stays_exact(server, tp1):
    e2e.assert_abort_frees_kv(server, e2e.PROMPTS[0], rid="tp-abort-me")
    # a rank that fell out of step would hang or diverge here
    assert e2e.generate(server, e2e.PROMPTS[5], GREEDY)["output_ids"] == tp1.ids(e2e.PROMPTS[5])
