"""Structured output (regex, JSON schema, EBNF) through our DFlashWorker.

SGLang masks every verify row of a block with the request's grammar, advanced along the
drafted chain (``GrammarTree.from_linear_chain`` and ``build_grammar_vocab_mask`` in our
worker's ``_decode``), before our verifier sees the logits. Checked here against a plain
server on the same tiny target: greedy outputs identical under each kind of grammar, with
constrained and unconstrained requests in one batch and drafts accepted under the mask;
every output that stops is in its grammar's language; the sampled distribution under a
grammar is the masked target distribution (chi-square); a grammar that does not compile
fails its own request only. On the CPU engine this needs the harness's fix 6
(``sglang_dflash/sglang/cpu_fixes.py``): SGLang's xgrammar backend is GPU-only there.
"""

from __future__ import annotations

import concurrent.futures as cf
import json
import urllib.error

import pytest

from cpu_sglang import e2e
from cpu_sglang import grammar_check as gc
from cpu_sglang import sampling_check as sc

e2e.require_sglang()
pytestmark = [pytest.mark.sglang, pytest.mark.slow]

pytest.importorskip("xgrammar")

BLOCK = 4
MAX_NEW = 48


@pytest.fixture(scope="module")
def pair():
    return e2e.steered_pair()


@pytest.fixture(scope="module")
def plain(pair):
    s = e2e.start("grammar-plain", pair.target, list(e2e.COMMON_ARGS))
    yield s
    s.stop()


@pytest.fixture(scope="module")
def ours(pair):
    s = e2e.start("grammar-ours-b4", pair.target, e2e.dflash_args(pair.drafters[BLOCK], BLOCK))
    e2e.assert_our_worker(s, BLOCK)
    yield s
    s.stop()


def _all_at_once(server, requests: list[tuple[str, dict]]) -> list[dict]:
    """One /generate per request, all in flight together (so they share batches); a request
    the server refuses comes back as {"http_status": ..., "body": ...}."""
    def send(request):
        try:
            return e2e.generate(server, *request)
        except urllib.error.HTTPError as err:
            return {"http_status": err.code, "body": err.read().decode(errors="replace")}

    with cf.ThreadPoolExecutor(len(requests)) as pool:
        return list(pool.map(send, requests))


def test_greedy_constrained_outputs_match_plain_serving(plain, ours):
    requests = [(e2e.PROMPTS[i], {"temperature": 0, "max_new_tokens": MAX_NEW, **constraint})
                for i, (constraint, _) in enumerate(gc.CONSTRAINTS)]
    want = _all_at_once(plain, requests)
    got = _all_at_once(ours, requests)
    for (_, sampling), w, g in zip(requests, want, got):
        assert g["output_ids"] == w["output_ids"], (sampling, g["text"], w["text"])
    assert not gc.check_outputs(got)


def test_sampled_distribution_under_a_grammar_is_the_masked_targets(pair, ours):
    model, tok = e2e.load_hf(pair.target)
    prompt_ids = tok.encode(e2e.PROMPTS[3])
    sp = {"temperature": 1.0, "top_k": 6}
    counts, exact = gc.sampled_under_words(ours, model, pair.target, prompt_ids, sp)
    outside = [p for p in counts if p not in exact]
    assert not outside, f"sampled pairs the grammar or the target rules out: {outside[:5]}"
    z, dof = sc.chi_square_z(counts, exact, sc.SAMPLES)
    assert z < sc.Z_LIMIT, f"sampled distribution differs from the masked target's (z={z:.2f}, dof={dof})"


def test_a_grammar_that_does_not_compile_fails_only_its_request(ours):
    good = (e2e.PROMPTS[0], {"temperature": 0, "max_new_tokens": 8})
    bad = (e2e.PROMPTS[1], {"temperature": 0, "max_new_tokens": 8, "regex": "([a-z"})
    out = _all_at_once(ours, [good, bad, good])
    for r in (out[0], out[2]):
        assert r["meta_info"]["finish_reason"]["type"] == "length", r
    refused = out[1]
    if "http_status" in refused:
        assert refused["http_status"] == 400, refused
        message = refused["body"]
    else:
        assert refused["meta_info"]["finish_reason"]["type"] == "abort", refused
        message = json.dumps(refused["meta_info"]["finish_reason"])
    assert "regex" in message.lower() or "grammar" in message.lower(), message
    after = e2e.generate(ours, *good)
    assert after["output_ids"] == out[0]["output_ids"]
