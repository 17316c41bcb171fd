"""The static-cache distiller (sglang_dflash.train.distill_static) writes the same greedy replies
as Hugging Face `generate`: on the real SmolLM2 (Llama) and on a random Qwen3 (q/k norms), fp32
on CPU, with prompts of different lengths in one left-padded batch, stop tokens and a batch
padded with copies."""
import pytest
import torch
from transformers import Qwen3Config, Qwen3ForCausalLM

from sglang_dflash.train.distill import _generate
from sglang_dflash.train.distill_static import StaticGreedy, UnsupportedModel, static_generate_fn
from smollm2_fixture import smollm2, smollm2_dir  # noqa: F401


def hf_greedy(model, prompts, max_new, eos, pad):
    return _generate(model, prompts, max_new_tokens=max_new, temperature=0.0, top_p=1.0, pad_id=pad,
                     eos_ids=set(eos), generator_seed=0)


def test_smollm2_replies_match_generate(smollm2):  # noqa: F811
    model, tok = smollm2
    texts = ["What is the capital of France?", "Write a haiku about the rain in spring.",
             "List three prime numbers and explain why each one is prime, briefly.", "Hi"]
    prompts = [tok.apply_chat_template([{"role": "user", "content": t}], add_generation_prompt=True,
                                       tokenize=True, return_dict=False) for t in texts]
    assert len({len(p) for p in prompts}) == len(prompts)  # the batch really is padded
    eos = {tok.eos_token_id}
    want = hf_greedy(model, prompts, 24, eos, tok.pad_token_id)
    gen = StaticGreedy(model, max_batch=6, max_prompt_len=64, max_new_tokens=24, eos_ids=eos)
    got = gen.generate(prompts, tok.pad_token_id)  # 4 prompts in a batch of 6: two padding rows
    assert got == want
    # a stop token in the middle of a reply: pick one that greedy decoding writes
    stop = want[0][0][5]
    want2 = hf_greedy(model, prompts, 24, {stop}, tok.pad_token_id)
    gen2 = StaticGreedy(model, max_batch=4, max_prompt_len=64, max_new_tokens=24, eos_ids={stop})
    got2 = gen2.generate(prompts, tok.pad_token_id)
    assert got2 == want2 and got2[0] == (want[0][0][:5], False)


def tiny_qwen3():
    torch.manual_seed(0)
    cfg = Qwen3Config(vocab_size=97, hidden_size=64, intermediate_size=96, num_hidden_layers=3,
                      num_attention_heads=4, num_key_value_heads=2, head_dim=32, max_position_embeddings=256,
                      rope_theta=10000.0, tie_word_embeddings=False)
    model = Qwen3ForCausalLM(cfg).eval()
    with torch.no_grad():  # sharper logits, so greedy paths are not decided by rounding
        model.lm_head.weight.mul_(8)
    return model


def test_qwen3_with_qk_norm_matches_generate_across_batches():
    model = tiny_qwen3()
    g = torch.Generator().manual_seed(1)
    prompts = [torch.randint(3, 97, (n,), generator=g).tolist() for n in (5, 17, 9, 2, 30, 11, 8)]
    want = hf_greedy(model, prompts, 20, {0}, 1)
    gen = StaticGreedy(model, max_batch=3, max_prompt_len=32, max_new_tokens=20, eos_ids={0})
    fn = static_generate_fn(gen, pad_id=1)
    # 7 prompts in batches of 3, sorted by length: the fn must put replies back in order. HF pads
    # all 7 to 30 tokens; padding must not change a reply, so the two agree.
    assert fn(prompts, 0) == want


def test_deadline_returns_none_for_batches_not_run():
    model = tiny_qwen3()
    gen = StaticGreedy(model, max_batch=2, max_prompt_len=8, max_new_tokens=4, eos_ids={0})
    fn = static_generate_fn(gen, pad_id=1, deadline=0.0)  # long past
    assert fn([[5, 6], [7]], 0) == [None, None]


def test_unsupported_models_are_named():
    from transformers import GPT2Config, GPT2LMHeadModel

    model = GPT2LMHeadModel(GPT2Config(n_layer=1, n_embd=32, n_head=2, vocab_size=50))
    with pytest.raises(UnsupportedModel, match="model_type 'gpt2'"):
        StaticGreedy(model, max_batch=1, max_prompt_len=4, max_new_tokens=2, eos_ids={0})


def test_prompt_longer_than_the_cache_is_refused():
    model = tiny_qwen3()
    gen = StaticGreedy(model, max_batch=1, max_prompt_len=8, max_new_tokens=4, eos_ids={0})
    with pytest.raises(ValueError, match="exceed the cache length 64"):
        gen.generate([list(range(3, 80))], 1)


def test_cli_writes_chat_data_without_the_held_out_prompts(tmp_path, smollm2_dir):  # noqa: F811
    import json

    from sglang_dflash.train.distill_static import main

    rows = [{"messages": [{"role": "user", "content": q}]} for q in ("Name a color.", "Say hi.", "Count to 3.")]
    data, held, out = tmp_path / "p.jsonl", tmp_path / "h.jsonl", tmp_path / "o.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    held.write_text(json.dumps(rows[1]) + "\n")
    assert main(["--target", str(smollm2_dir), "--data", str(data), "--exclude", str(held), "--out", str(out),
                 "--max-new-tokens", "4", "--batch-size", "2", "--device", "cpu", "--dtype", "float32"]) == 0
    got = [json.loads(line) for line in out.read_text().splitlines()]
    assert sorted(r["messages"][0]["content"] for r in got) == ["Count to 3.", "Name a color."]
    assert all(r["messages"][-1]["role"] == "assistant" and r["messages"][-1]["content"] for r in got)
