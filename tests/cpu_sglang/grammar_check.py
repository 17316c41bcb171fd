"""Structured-output pieces shared by the CPU and GPU end-to-end suites: grammars of each kind
SGLang takes (regex, EBNF, JSON schema), checks that an output is in a grammar's language,
and the tokens a regex admits next, from xgrammar (the library SGLang's backend uses), for
the exact distribution of sampled tokens under the grammar (``sampling_check``)."""

from __future__ import annotations

import json
import re

import torch

from . import models
from . import sampling_check as sc

WORDS = r"[a-z ]{8,60}\."                           # the steered token "een" fits in
COLORS = r"(red|green|blue|een)( (red|green|blue|een)){2,5}!"
EBNF = 'root ::= "yes" | "no" | "een" " " ("red" | "blue") "."'
_EBNF_LANGUAGE = r"yes|no|een (red|blue)\."
SCHEMA = {"type": "object", "additionalProperties": False, "required": ["name", "n"],
          "properties": {"name": {"type": "string", "maxLength": 12},
                         "n": {"type": "integer", "minimum": 0, "maximum": 999}}}


def _in_schema(text: str) -> bool:
    value = json.loads(text)
    return (set(value) == {"name", "n"} and isinstance(value["name"], str)
            and len(value["name"]) <= 12 and isinstance(value["n"], int)
            and 0 <= value["n"] <= 999)


# (sampling-params constraint, check of an output that stopped); {} and None: unconstrained
CONSTRAINTS = [
    ({"regex": WORDS}, lambda t: re.fullmatch(WORDS, t) is not None),
    ({"regex": WORDS}, lambda t: re.fullmatch(WORDS, t) is not None),
    ({"regex": COLORS}, lambda t: re.fullmatch(COLORS, t) is not None),
    ({"ebnf": EBNF}, lambda t: re.fullmatch(_EBNF_LANGUAGE, t) is not None),
    ({"json_schema": json.dumps(SCHEMA)}, _in_schema),
    ({}, None),
    ({}, None),
]


def check_outputs(results: list[dict]) -> list[str]:
    """Problems of /generate results for the requests of CONSTRAINTS, in order: a stopped
    output outside its language, too few constrained outputs that stopped to tell, or no
    draft accepted under a grammar."""
    problems, stopped, accepted = [], 0, []
    for (constraint, in_language), r in zip(CONSTRAINTS, results):
        if in_language is None:
            continue
        accepted.append(r["meta_info"].get("spec_accept_length", 0))
        if r["meta_info"]["finish_reason"]["type"] == "stop":
            stopped += 1
            if not in_language(r["text"]):
                problems.append(f"{constraint}: {r['text']!r} is outside the grammar")
    if stopped < 3:
        problems.append(f"only {stopped} constrained outputs finished: too few to check")
    if max(accepted) <= 1.0:
        problems.append(f"no draft accepted under a grammar (acceptance {accepted})")
    return problems


def regex_allowed(target_dir: str, regex: str):
    """allowed(output_so_far) -> bool [V]: the tokens ``regex`` admits next, with EOS as the
    stop token, as SGLang sets it."""
    import xgrammar as xgr
    from transformers import AutoConfig, AutoTokenizer

    vocab = AutoConfig.from_pretrained(target_dir).vocab_size
    info = xgr.TokenizerInfo.from_huggingface(AutoTokenizer.from_pretrained(target_dir),
                                              vocab_size=vocab, stop_token_ids=[models.EOS_ID])
    compiled = xgr.GrammarCompiler(info).compile_regex(regex)

    def allowed(out: list[int]) -> torch.Tensor:
        matcher = xgr.GrammarMatcher(compiled)
        for t in out:
            assert matcher.accept_token(t), f"token {t} outside the grammar after {out}"
        bitmask = xgr.allocate_token_bitmask(1, vocab)
        matcher.fill_next_token_bitmask(bitmask)
        logits = torch.zeros(1, vocab)
        xgr.apply_token_bitmask_inplace(logits, bitmask)
        return logits[0] == 0

    return allowed


def sampled_under_words(server, model, target_dir: str, prompt_ids: list[int], sp: dict,
                        timeout: float = 300.0) -> tuple[dict, dict]:
    """``sc.SAMPLES`` three-token requests under the regex WORDS with sampling params ``sp``:
    (counts of the first two tokens, their exact joint under the mask from the fp32 model)."""
    results = server.post("/generate", {"input_ids": [prompt_ids] * sc.SAMPLES, "sampling_params":
                                        {**sp, "max_new_tokens": 3, "regex": WORDS}},
                          timeout=timeout)
    exact = sc.exact_joint(model, prompt_ids, sp, allowed=regex_allowed(target_dir, WORDS))
    return sc.joint_counts(results), exact
