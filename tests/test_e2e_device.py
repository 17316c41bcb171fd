"""The end-to-end suite for a GPU: our DFlashWorker vs plain serving, per dtype, side by side.

bench/h200/e2e.sh runs it on the H200 (SGLANG_DFLASH_E2E_DEVICE=cuda); with
SGLANG_DFLASH_E2E_DEVICE=cpu it is a dry run on CPU (fp32). Without that variable it is
skipped (CI covers the CPU path with the other test_e2e_* modules).

Per dtype (bf16 and fp32 on CUDA): a plain server, ours and SGLang's built-in DFLASH (block 8)
on a small steered pair (head_dim 64); fp32 must match the plain server token for token, bf16 must pass the
near-tie criterion of cpu_sglang/greedy_match.py, which the built-in must pass too. Covered:
1 / 8 / 32 / 48 requests in flight (48 is above the CUDA-graph batch limit, so those steps run
eagerly), a prompt longer than the chunked-prefill size, an aborted stream while other
requests run, structured output (regex / EBNF / JSON schema, greedy and sampled), seeded
sampling under deterministic inference, the flashinfer and fa4 draft attention backends, and SmolLM2-135M with the shipped drafter. See
docs/gpu-tests.md.

With two or more GPUs visible, ours and the built-in also serve bf16 at ``--tp-size 2``
(NCCL between the ranks) and face the same checks against the plain server at tp 1: greedy at
every concurrency, eager batches past the graphs, the long prompt, the abort, sampling.
"""

from __future__ import annotations

import concurrent.futures as cf
import json
import os
import time
import urllib.request
from pathlib import Path

import pytest

from cpu_sglang import e2e

if "SGLANG_DFLASH_E2E_DEVICE" not in os.environ:
    pytest.skip("the device suite runs with SGLANG_DFLASH_E2E_DEVICE=cuda|cpu "
                "(bench/h200/e2e.sh)", allow_module_level=True)
e2e.require_sglang()
pytestmark = [pytest.mark.sglang, pytest.mark.slow]

from cpu_sglang import device_suite as ds  # noqa: E402
from cpu_sglang import models, server  # noqa: E402

import sglang_dflash  # noqa: E402

DTYPES = ds.dtypes()
# the dtype of the draft-backend and SmolLM2 servers
BF16 = "bfloat16" if ds.cuda() else "float32"
MAX_NEW = 32
SMOL_DRAFTER = str(Path(sglang_dflash.__file__).parent / "assets" / "smollm2-drafter")
SMOL_MAX_NEW = 96
TP = 2
# Our servers the serving checks run on: one per dtype, and the bf16 one at --tp-size TP
# (skipped, with the reason, when fewer than TP GPUs are visible).
OURS = [pytest.param("ours", dt, id=dt) for dt in DTYPES]
if BF16 in DTYPES:
    OURS.append(pytest.param(f"ours-tp{TP}", BF16, id=f"tp{TP}-{BF16}"))


@pytest.fixture(scope="module")
def pair():
    # head_dim 64: the shapes SGLang's CUDA kernels are built for (models.GEOMETRIES)
    return models.build_pair(e2e.models_dir(), name="steered-hd64", geometry="hd64",
                             block_sizes=(ds.BLOCK,))


def sliding_drafter(pair) -> str:
    """The suite's drafter with layer 0 turned into a sliding layer (window 6, shorter than
    every prompt), built once beside the pair."""
    from transformers import AutoConfig

    out = os.path.join(e2e.models_dir(), f"steered-hd64-sliding6-drafter-b{ds.BLOCK}")
    if not os.path.exists(os.path.join(out, "config.json")):
        models.build_drafter(out, AutoConfig.from_pretrained(pair.target), block_size=ds.BLOCK,
                             config_overrides={"layer_types": ["sliding_attention", "full_attention"],
                                               "sliding_window": 6})
    return out


@pytest.fixture(scope="module")
def smol_dir():
    if not ds.enabled("SMOLLM2"):
        return None
    from sglang_dflash.smollm2 import ensure_smollm2

    return str(ensure_smollm2(progress=False))


@pytest.fixture(scope="module")
def fleet(pair, smol_dir):
    fleet = ds.Fleet()
    drafter = pair.drafters[ds.BLOCK]
    for dt in DTYPES:
        fleet.launch(f"plain-{dt}", pair.target, list(ds.ARGS), dtype=dt)
        fleet.launch(f"ours-{dt}", pair.target, ds.dflash(drafter), dtype=dt)
        fleet.launch(f"builtin-{dt}", pair.target, ds.dflash(drafter), dtype=dt,
                     env={"SGLANG_DFLASH_IMPL": "builtin"})
    if ds.cuda() and BF16 in DTYPES:  # compared with plain-bfloat16
        fleet.launch("ours-fa4", pair.target, ds.dflash(
            drafter, ds.BLOCK, "--speculative-draft-attention-backend", "fa4"), dtype=BF16,
            timeout_s=240)
    if ds.cuda() and BF16 in DTYPES and ds.enabled("FLASHINFER"):
        fleet.launch("ours-flashinfer", pair.target, ds.dflash(
            drafter, ds.BLOCK, "--speculative-draft-attention-backend", "flashinfer"),
            dtype=BF16)
    if ds.cuda() and BF16 in DTYPES:  # SGLang admits it only with GPU attention backends
        fleet.launch("ours-deterministic", pair.target, ds.dflash(
            drafter, ds.BLOCK, "--enable-deterministic-inference"), dtype=BF16)
    if BF16 in DTYPES:  # a drafter with a sliding-window layer, on the device's backends
        fleet.launch("ours-sliding", pair.target, ds.dflash(sliding_drafter(pair)), dtype=BF16)
    if BF16 in DTYPES and ds.gpu_count() >= TP:  # compared with plain-bfloat16, at tp 1
        tp = ("--tp-size", str(TP))
        fleet.launch(f"ours-tp{TP}-{BF16}", pair.target, ds.dflash(drafter, ds.BLOCK, *tp),
                     dtype=BF16)
        fleet.launch(f"builtin-tp{TP}-{BF16}", pair.target, ds.dflash(drafter, ds.BLOCK, *tp),
                     dtype=BF16, env={"SGLANG_DFLASH_IMPL": "builtin"})
    if smol_dir:
        fleet.launch("smol-plain", smol_dir, list(ds.ARGS), dtype=BF16)
        fleet.launch("smol-ours", smol_dir, ds.dflash(SMOL_DRAFTER), dtype=BF16)
        fleet.launch("smol-builtin", smol_dir, ds.dflash(SMOL_DRAFTER), dtype=BF16,
                     env={"SGLANG_DFLASH_IMPL": "builtin"})
    yield fleet
    fleet.stop()


@pytest.fixture(scope="module")
def prompts(pair):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(pair.target)
    texts = models.corpus(n_lines=400, seed=11)[:48]
    long_text = " ".join(models.corpus(n_lines=120, seed=5))
    return {"short": [tok.encode(t) for t in texts], "long": tok.encode(long_text)}


@pytest.fixture(scope="module")
def refs(fleet, prompts):
    """Per dtype: the plain server's outputs (with top-2 logprobs) for every prompt."""
    cache = {}

    def get(dtype: str) -> dict:
        if dtype not in cache:
            plain = fleet.get(f"plain-{dtype}")
            cache[dtype] = {
                "short": ds.plain_reference(plain, prompts["short"], MAX_NEW),
                "long": ds.plain_reference(plain, [prompts["long"]], MAX_NEW)[0]}
        return cache[dtype]
    return get


@pytest.fixture(scope="module")
def scale(pair):
    scales = {}
    return lambda dt: scales.setdefault(dt, ds.LogitScale(pair.target, dt))


def _served(fleet, name: str, dtype: str):
    """The server ``name-dtype``; a ``--tp-size`` one skips when too few GPUs are visible."""
    if name.endswith(f"-tp{TP}") and ds.gpu_count() < TP:
        pytest.skip(f"--tp-size {TP} needs {TP} GPUs, {ds.gpu_count()} visible")
    return fleet.get(f"{name}-{dtype}")


def _short(fleet, refs, prompts, scale, name, dtype, concurrency):
    n = ds.CONCURRENCY[concurrency]
    srv = _served(fleet, name, dtype)
    results = ds.generate(srv, prompts["short"][:n], MAX_NEW, concurrency)
    problems = ds.check(f"{name}-{dtype}-c{concurrency}", refs(dtype)["short"][:n],
                        prompts["short"][:n], [r["output_ids"] for r in results], dtype,
                        scale(dtype))
    return srv, results, problems


@pytest.mark.parametrize("name,dtype", OURS)
def test_our_worker_serves(fleet, name, dtype):
    srv = _served(fleet, name, dtype)
    e2e.assert_our_worker(srv, ds.BLOCK)
    tp_size = TP if name.endswith(f"-tp{TP}") else 1
    start = next(line for line in srv.log_text().splitlines() if e2e.OUR_WORKER_LINE in line)
    assert start.endswith(f"tp_size={tp_size}"), start
    log = _served(fleet, name.replace("ours", "builtin", 1), dtype).log_text()
    assert e2e.BUILTIN_WORKER_LINE in log and e2e.OUR_WORKER_LINE not in log


@pytest.mark.parametrize("concurrency", list(ds.CONCURRENCY))
@pytest.mark.parametrize("name,dtype", OURS)
def test_greedy_matches_plain(fleet, refs, prompts, scale, name, dtype, concurrency):
    srv, results, problems = _short(fleet, refs, prompts, scale, name, dtype, concurrency)
    assert not problems, problems
    metas = [r["meta_info"] for r in results]
    mean = sum(m["completion_tokens"] / m["spec_verify_ct"] for m in metas) / len(metas)
    ds.record(f"{name}-{dtype}-c{concurrency}-acceptance", mean_accept_len=round(mean, 3))
    # the steered pair accepts ~1.9 on average (test_e2e_greedy.py); a broken worker ~1.0
    assert mean > 1.3, f"drafts are hardly accepted (mean acceptance length {mean:.2f})"


@pytest.mark.parametrize("name,dtype", OURS)
def test_builtin_passes_the_same_criterion(fleet, refs, prompts, scale, name, dtype):
    """A sanity check of the criterion: SGLang's own DFLASH worker passes it too."""
    _, _, problems = _short(fleet, refs, prompts, scale, name.replace("ours", "builtin", 1),
                            dtype, 48)
    assert not problems, problems


@pytest.mark.parametrize("name,dtype", OURS)
def test_batches_beyond_the_cuda_graph_ran_eagerly(fleet, name, dtype):
    if not ds.cuda():
        pytest.skip("CUDA graphs exist on CUDA only")
    srv = _served(fleet, name, dtype)  # after test_greedy_matches_plain (c=1..48) ran on it
    assert ds.max_running(srv, graph=False) > server.GRAPH_MAX_BS
    assert ds.max_running(srv, graph=True) >= 8


@pytest.mark.parametrize("name,dtype", OURS)
def test_prompt_longer_than_chunked_prefill(fleet, refs, prompts, scale, name, dtype):
    srv = _served(fleet, name, dtype)
    r = ds.generate(srv, [prompts["long"]], MAX_NEW, 1)[0]
    assert r["meta_info"]["prompt_tokens"] > 2 * ds.CHUNKED_PREFILL
    problems = ds.check(f"{name}-{dtype}-long", [refs(dtype)["long"]], [prompts["long"]],
                        [r["output_ids"]], dtype, scale(dtype), min_full_match=0)
    assert not problems, problems


@pytest.mark.parametrize("name,dtype", OURS)
def test_abort_mid_stream_keeps_serving_others(fleet, refs, prompts, scale, name, dtype):
    srv = _served(fleet, name, dtype)
    rid = f"abort-{name}-{dtype}"
    payload = {"input_ids": prompts["short"][0], "stream": True, "rid": rid,
               "sampling_params": ds.sampling(4000)}
    req = urllib.request.Request(srv.url + "/generate", data=json.dumps(payload).encode(),
                                 headers={"Content-Type": "application/json"})
    others = prompts["short"][8:16]
    with urllib.request.urlopen(req, timeout=120) as stream, cf.ThreadPoolExecutor(1) as pool:
        for _ in range(4):  # the request is running and has streamed some chunks
            stream.readline()
        running = pool.submit(ds.generate, srv, others, MAX_NEW, len(others))
        srv.post_text("/abort_request", {"rid": rid})
        events = [json.loads(line[5:]) for line in (raw.decode().strip() for raw in stream)
                  if line.startswith("data:") and line != "data: [DONE]"]
        results = running.result(timeout=120)
    finish = events[-1]["meta_info"]["finish_reason"] if events else None
    assert finish and finish.get("type") == "abort", finish
    problems = ds.check(f"{name}-{dtype}-beside-abort", refs(dtype)["short"][8:16], others,
                        [r["output_ids"] for r in results], dtype, scale(dtype))
    assert not problems, problems
    deadline = time.time() + 60
    while (used := e2e.used_kv_tokens(srv)) and time.time() < deadline:
        time.sleep(0.5)
    assert used == 0, f"{used} KV slots still in use after the abort"


@pytest.mark.parametrize("name,dtype", OURS)
def test_sampled_distribution_is_the_targets(fleet, pair, prompts, name, dtype):
    """Sampling through our worker (rejection sampling of the drafts, the Triton sampling
    kernel on a GPU): the first two sampled tokens follow the target's joint distribution,
    computed in fp32 with transformers. In bf16 the server's probabilities differ from the
    fp32 ones by rounding only, far below what 400 samples can detect; a near-tie at the
    top-k border may let a handful of samples fall outside the fp32 support, which the
    chi-square's pooled cell bounds (at most 5). At --tp-size 2 the ranks must also stay in
    step while they sample (every rank commits the same tokens)."""
    from cpu_sglang import sampling_check as sc

    srv = _served(fleet, name, dtype)
    model, _ = e2e.load_hf(pair.target)
    # prompt 0 of the hd64 pair: 7 pairs of expected count >= 5, the likeliest at 0.64
    prompt_ids = prompts["short"][0]
    sp = {"temperature": 1.0, "top_k": 6}
    results = srv.post("/generate", {"input_ids": [prompt_ids] * sc.SAMPLES, "sampling_params":
                                     {**sp, "max_new_tokens": 3, "ignore_eos": True}})
    counts = sc.joint_counts(results)
    exact = sc.exact_joint(model, prompt_ids, sp)
    if dtype == "float32":
        outside = [p for p in counts if p not in exact]
        assert not outside, f"sampled pairs the target gives zero probability: {outside[:5]}"
    z, dof = sc.chi_square_z(counts, exact, sc.SAMPLES)
    ds.record(f"{name}-{dtype}-sampling", z=round(z, 2), dof=dof, cells=len(counts))
    assert z < sc.Z_LIMIT, f"sampled distribution differs from the target's (z={z:.2f}, dof={dof})"
    assert len(counts) > 1
    assert any(r["meta_info"]["spec_verify_ct"] == 1 for r in results), \
        "no sampled request accepted a draft: the verifier did not run on sampled rows"


@pytest.mark.parametrize("dtype", DTYPES)
def test_structured_output(fleet, pair, prompts, dtype):
    """Grammars (regex, EBNF, JSON schema) on the device: SGLang masks every verify row with
    its GPU bitmask kernel before our verifier sees the logits. Greedy, constrained and
    unconstrained requests together: every output that stops is in its grammar's language and
    drafts are accepted under the mask (the near-tie comparison with plain serving needs the
    plain server's runner-up under the same mask, so it is not made here; the CPU suite
    compares fp32 outputs token for token, tests/test_e2e_grammar.py). Sampled: the first two
    tokens under a regex follow the masked target distribution (fp32, transformers)."""
    from cpu_sglang import grammar_check as gc
    from cpu_sglang import sampling_check as sc

    srv = fleet.get(f"ours-{dtype}")
    bodies = [{"input_ids": prompts["short"][i], "sampling_params": {
        "temperature": 0, "max_new_tokens": 48, **constraint}}
        for i, (constraint, _) in enumerate(gc.CONSTRAINTS)]
    with cf.ThreadPoolExecutor(len(bodies)) as pool:
        results = list(pool.map(
            lambda body: srv.post("/generate", body, timeout=ds.REQUEST_TIMEOUT), bodies))
    problems = gc.check_outputs(results)

    model, _ = e2e.load_hf(pair.target)
    prompt_ids = prompts["short"][0]
    sp = {"temperature": 1.0, "top_k": 6}
    counts, exact = gc.sampled_under_words(srv, model, pair.target, prompt_ids, sp,
                                           timeout=max(300.0, ds.REQUEST_TIMEOUT))
    z, dof = sc.chi_square_z(counts, exact, sc.SAMPLES)
    ds.record(f"ours-{dtype}-grammar", problems=problems, z=round(z, 2), dof=dof,
              cells=len(counts))
    assert not problems
    if dtype == "float32":
        outside = [p for p in counts if p not in exact]
        assert not outside, f"sampled pairs the grammar or the target rules out: {outside[:5]}"
    assert z < sc.Z_LIMIT, f"sampled distribution differs from the masked target's (z={z:.2f}, dof={dof})"


def test_deterministic_inference_samples_from_the_seeds(fleet, pair, prompts):
    """``--enable-deterministic-inference``: SGLang samples every token from a hash of the
    request's ``sampling_seed`` and position and swaps in batch-invariant kernels; our accept
    step takes its coins from the same kind of hash (sglang_dflash/coins.py). A seeded sampled
    request then gives the same text alone, among seven others, and in another order; and
    requests that differ only in their seed follow the target's distribution."""
    from cpu_sglang import sampling_check as sc

    if not ds.cuda():
        pytest.skip("SGLang admits deterministic inference only with GPU attention backends")
    if BF16 not in DTYPES:
        pytest.skip(f"served in {BF16}, not in SGLANG_DFLASH_E2E_DTYPES")
    srv = fleet.get("ours-deterministic")
    e2e.assert_our_worker(srv, ds.BLOCK)

    def body(i, seed):
        return {"input_ids": prompts["short"][i], "sampling_params": {
            "temperature": 1.0, "top_p": 0.95, "max_new_tokens": MAX_NEW, "ignore_eos": True,
            "sampling_seed": seed}}

    bodies = [body(i, 1000 + i) for i in range(8)]
    alone = [srv.post("/generate", b, timeout=ds.REQUEST_TIMEOUT)["output_ids"] for b in bodies]
    with cf.ThreadPoolExecutor(8) as pool:
        together = [r["output_ids"] for r in pool.map(
            lambda b: srv.post("/generate", b, timeout=ds.REQUEST_TIMEOUT), bodies)]
        reversed_ = [r["output_ids"] for r in pool.map(
            lambda b: srv.post("/generate", b, timeout=ds.REQUEST_TIMEOUT), bodies[::-1])][::-1]
    differ = [i for i in range(8) if not alone[i] == together[i] == reversed_[i]]
    ds.record("ours-deterministic-batches", differ=differ)
    assert not differ, f"seeded outputs changed with the batch for prompts {differ}"
    assert len({tuple(a) for a in alone}) == 8

    model, _ = e2e.load_hf(pair.target)
    prompt_ids = prompts["short"][0]
    sp = {"temperature": 1.0, "top_k": 6}
    batch = {"input_ids": [prompt_ids] * sc.SAMPLES, "sampling_params": [
        {**sp, "max_new_tokens": 3, "ignore_eos": True, "sampling_seed": s}
        for s in range(sc.SAMPLES)]}
    results = srv.post("/generate", batch, timeout=max(300.0, ds.REQUEST_TIMEOUT))
    counts = sc.joint_counts(results)
    z, dof = sc.chi_square_z(counts, sc.exact_joint(model, prompt_ids, sp), sc.SAMPLES)
    ds.record("ours-deterministic-sampling", z=round(z, 2), dof=dof, cells=len(counts))
    assert z < sc.Z_LIMIT, f"seeded samples differ from the target's distribution (z={z:.2f})"
    assert any(r["meta_info"]["spec_verify_ct"] == 1 for r in results), \
        "no seeded request accepted a draft: the verifier did not run on sampled rows"


@pytest.mark.parametrize("backend", ["flashinfer", "fa4"])
def test_draft_attention_backend(fleet, refs, prompts, scale, backend):
    if not ds.cuda():
        pytest.skip(f"{backend} is a CUDA attention backend")
    if BF16 not in DTYPES:
        pytest.skip(f"compared with the plain {BF16} server, not in SGLANG_DFLASH_E2E_DTYPES")
    if backend == "flashinfer" and not ds.enabled("FLASHINFER"):
        pytest.skip("SGLANG_DFLASH_E2E_FLASHINFER=1 enables it (compiles for minutes)")
    if backend == "fa4":
        available, why = ds.fa4_available()
        ds.record("fa4-available", available=available, why=why)
        if not available:
            # SGLang 0.5.17 accepts fa4 for the draft on Hopper and imports its vendored
            # FlashAttention-4 lazily: without the CuTe DSL packages the first draft forward
            # (the start-up warm-up) raises, and the server exits.
            with pytest.raises(RuntimeError):
                fleet.get("ours-fa4")
            log = fleet.servers["ours-fa4"].log_text()
            assert ds.FA4_MISSING in log, log[-3000:]
            return
    srv = fleet.get(f"ours-{backend}")
    e2e.assert_our_worker(srv, ds.BLOCK)
    results = ds.generate(srv, prompts["short"], MAX_NEW, 48)
    problems = ds.check(f"ours-{backend}-{BF16}-c48", refs(BF16)["short"], prompts["short"],
                        [r["output_ids"] for r in results], BF16, scale(BF16))
    assert not problems, problems


def test_sliding_window_drafter(fleet, refs, prompts, scale):
    """Sliding draft layers go through the window path of the device's attention backend (the
    window our drafter reports to SGLang's model runner); output within the criterion."""
    if BF16 not in DTYPES:
        pytest.skip(f"compared with the plain {BF16} server, not in SGLANG_DFLASH_E2E_DTYPES")
    srv = fleet.get("ours-sliding")
    e2e.assert_our_worker(srv, ds.BLOCK)
    results = ds.generate(srv, prompts["short"], MAX_NEW, 8)
    problems = ds.check(f"ours-sliding-{BF16}-c8", refs(BF16)["short"], prompts["short"],
                        [r["output_ids"] for r in results], BF16, scale(BF16))
    assert not problems, problems


# ---- SmolLM2-135M-Instruct with the shipped drafter ----------------------------------------
@pytest.fixture(scope="module")
def smol(fleet, smol_dir):
    if not smol_dir:
        pytest.skip("SGLANG_DFLASH_E2E_SMOLLM2=1 enables SmolLM2 (see docs/gpu-tests.md)")
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(smol_dir)
    lines = (Path(SMOL_DRAFTER) / "heldout.jsonl").read_text().splitlines()[:16]
    chats = [tok.apply_chat_template(json.loads(line)["messages"], add_generation_prompt=True)
             for line in lines]
    chats = [list(c["input_ids"]) if hasattr(c, "keys") else list(c) for c in chats]
    ref = ds.plain_reference(fleet.get("smol-plain"), chats, SMOL_MAX_NEW, ignore_eos=False)
    return chats, ref, ds.LogitScale(smol_dir, BF16)


# SmolLM2 in bf16 ties often: its top two logits are often equal in bf16 (gap 0), so in
# 96-token chats most outputs flip somewhere under any change of kernel shapes; on the H200
# one chat flipped at its first token, which the target's prefill alone produces. The rule that
# half the prompts match fully does not hold for this model (docs/gpu-tests.md); every
# divergence must still be a flip to a near-tied plain choice within the limit, and the
# built-in DFLASH must pass the same, which checks the criterion.
SMOL_MIN_FULL_MATCH = 0.0


def test_smollm2_matches_plain_and_accepts_drafts(fleet, smol):
    chats, ref, scale = smol
    srv = fleet.get("smol-ours")
    e2e.assert_our_worker(srv, ds.BLOCK)
    results = ds.generate(srv, chats, SMOL_MAX_NEW, len(chats), ignore_eos=False)
    problems = ds.check(f"smollm2-{BF16}", ref, chats, [r["output_ids"] for r in results],
                        BF16, scale, min_full_match=SMOL_MIN_FULL_MATCH)
    builtin = ds.generate(fleet.get("smol-builtin"), chats, SMOL_MAX_NEW, len(chats),
                          ignore_eos=False)
    problems += ds.check(f"smollm2-builtin-{BF16}", ref, chats,
                         [r["output_ids"] for r in builtin], BF16, scale,
                         min_full_match=SMOL_MIN_FULL_MATCH)
    lengths = [r["meta_info"]["completion_tokens"] / r["meta_info"]["spec_verify_ct"]
               for r in results]
    mean = sum(lengths) / len(lengths)
    ds.record(f"smollm2-{BF16}-acceptance", mean_accept_len=round(mean, 3))
    assert not problems, problems
    # the CPU test (fp32, 8 chats) measures ~1.85 at block 8; a broken worker sits near 1.0
    assert mean > 1.3, f"mean acceptance length {mean:.2f}"
