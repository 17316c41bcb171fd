"""Our DFlashWorker inside SGLang vs no speculation: greedy output must be identical.

One plain server records the reference outputs; then one DFLASH server per
configuration (block size 4 / 8 / 16, overlap scheduling on and off) answers the same
requests through /generate, /v1/completions and /v1/chat/completions (streaming too),
at concurrency 1, 8 and 32, with a prompt longer than the chunked-prefill size, with
repeated prefixes that hit the radix cache, and after an aborted streaming request.
The target/drafter pair is built so that drafts are accepted for varying lengths.
"""

from __future__ import annotations

import pytest

from cpu_sglang import e2e

e2e.require_sglang()
pytestmark = [pytest.mark.sglang, pytest.mark.slow]

CONFIGS = {
    "b4-overlap": (4, []),
    "b8-no-overlap": (8, ["--disable-overlap-schedule"]),
    "b16-overlap": (16, []),
}


@pytest.fixture(scope="module")
def pair():
    return e2e.steered_pair()


@pytest.fixture(scope="module")
def reference(pair):
    """Outputs of the target alone (no speculation), recorded once."""
    server = e2e.start("greedy-plain", pair.target, list(e2e.COMMON_ARGS))
    try:
        ref = {
            "ids": e2e.generate_ids(server, e2e.PROMPTS, concurrency=len(e2e.PROMPTS)),
            "completions": [e2e.completion_text(server, p) for p in e2e.PROMPTS[:6]],
            "chat": [e2e.chat_text(server, p) for p in e2e.PROMPTS[:6]],
            "long": e2e.generate(server, e2e.long_prompt())["output_ids"],
            "prefix": [e2e.generate(server, p)["output_ids"] for p in e2e.shared_prefix_prompts()],
        }
    finally:
        server.stop()
    return ref


@pytest.fixture(scope="module", params=list(CONFIGS))
def dflash(request, pair, reference):
    block_size, extra = CONFIGS[request.param]
    server = e2e.start(f"greedy-{request.param}", pair.target,
                       e2e.dflash_args(pair.drafters[block_size], block_size, *extra))
    server.block_size = block_size
    yield server
    server.stop()


def test_our_worker_serves_dflash(dflash):
    e2e.assert_our_worker(dflash, dflash.block_size)


def test_generate_batched_32_identical_and_drafts_accepted(dflash, reference):
    results = e2e.generate(dflash, e2e.PROMPTS)
    assert [r["output_ids"] for r in results] == reference["ids"]
    # per-request acceptance is reported the way SGLang reports it for the built-in
    metas = [r["meta_info"] for r in results]
    for m in metas:
        assert m["spec_verify_ct"] > 0
        assert m["spec_accept_length"] == pytest.approx(m["completion_tokens"] / m["spec_verify_ct"])
    mean = sum(m["spec_accept_length"] for m in metas) / len(metas)
    assert mean > 1.5, f"drafts are hardly accepted (mean acceptance length {mean:.2f})"
    assert max(m["spec_accept_length"] for m in metas) > 2.5
    assert "accept len:" in dflash.log_text()  # SGLang's decode-log metric


def test_generate_concurrency_1_and_8_identical(dflash, reference):
    if dflash.block_size == 16:
        pytest.skip("covered at block sizes 4 and 8 (keeps the CPU suite within budget)")
    one = e2e.generate_ids(dflash, e2e.PROMPTS[:4], concurrency=1)
    assert one == reference["ids"][:4]
    eight = e2e.generate_ids(dflash, e2e.PROMPTS[:16], concurrency=8)
    assert eight == reference["ids"][:16]


def test_openai_completions_identical(dflash, reference):
    prompts = e2e.PROMPTS[:6]
    assert [e2e.completion_text(dflash, p) for p in prompts] == reference["completions"]
    assert [e2e.completion_text_stream(dflash, p) for p in prompts[:3]] == \
        reference["completions"][:3]


def test_chat_completions_identical(dflash, reference):
    prompts = e2e.PROMPTS[:6]
    assert [e2e.chat_text(dflash, p) for p in prompts] == reference["chat"]
    assert [e2e.chat_text(dflash, p, stream=True) for p in prompts[:3]] == reference["chat"][:3]


def test_prompt_longer_than_chunked_prefill(dflash, reference):
    r = e2e.generate(dflash, e2e.long_prompt())
    assert r["meta_info"]["prompt_tokens"] > 2 * e2e.CHUNKED_PREFILL
    assert r["output_ids"] == reference["long"]


def test_repeated_prefix_hits_radix_cache(dflash, reference):
    results = [e2e.generate(dflash, p) for p in e2e.shared_prefix_prompts()]
    assert [r["output_ids"] for r in results] == reference["prefix"]
    assert results[-1]["meta_info"]["cached_tokens"] > 2 * e2e.CHUNKED_PREFILL


def test_aborted_stream_frees_kv(dflash, reference):
    # Every earlier request of this server finished, most of them mid-block: nothing may
    # stay allocated once the radix cache is flushed.
    e2e.assert_abort_frees_kv(dflash, e2e.PROMPTS[0], rid="abort-me")
    # and the server still answers exactly
    assert e2e.generate(dflash, e2e.PROMPTS[1])["output_ids"] == reference["ids"][1]


@pytest.fixture(scope="module")
def core_reference(pair):
    """The core's plain reference loop (HF target + our PyTorch drafter), per block size."""
    torch = pytest.importorskip("torch")
    pytest.importorskip("transformers")
    from sglang_dflash.model import DFlashDrafter
    from sglang_dflash.reference import generate

    target, tok = e2e.load_hf(pair.target)
    prompts = [tok.encode(p) for p in e2e.PROMPTS[:6]]
    cache = {}

    def run(block_size: int):
        if block_size not in cache:
            drafter = DFlashDrafter.from_pretrained(pair.drafters[block_size])
            with torch.no_grad():
                cache[block_size] = generate(target.eval(), drafter.eval(), prompts,
                                             max_new_tokens=e2e.MAX_NEW, block_size=block_size)
        return prompts, cache[block_size]

    return run


def test_acceptance_matches_core_reference(dflash, core_reference):
    """Same tokens and the same number of verify steps as the core reference loop: our
    drafter inside SGLang (context K/V written from target hidden states) proposes what
    the plain PyTorch drafter proposes."""
    prompts, ref = core_reference(dflash.block_size)
    sampling = {"temperature": 0, "max_new_tokens": e2e.MAX_NEW, "ignore_eos": True}
    results = dflash.post("/generate", {"input_ids": prompts, "sampling_params": sampling})
    for i, r in enumerate(results):
        assert r["output_ids"] == ref.tokens[i][: e2e.MAX_NEW]
        assert r["meta_info"]["spec_verify_ct"] == len(ref.accept_lens[i]), \
            f"prompt {i}: {r['meta_info']['spec_verify_ct']} steps, reference {ref.accept_lens[i]}"
