"""Write Qwen3-8B-shaped target and 5-layer DFlash drafter directories for dummy-weight runs
(`--load-format dummy`, `--speculative-draft-load-format dummy`), plus a small byte-level BPE
tokenizer trained on the Python standard library. Nothing is downloaded.

Usage: python bench/h200/make_models.py OUT [--vocab 32000]
Writes OUT/qwen3-8b-dummy and OUT/dflash-b16-dummy.
"""
import argparse
import glob
import json
import os
import shutil
import sysconfig

SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|mask|>"]  # ids 0..3


def make_tokenizer(out: str, vocab: int) -> None:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    def corpus():
        files = sorted(glob.glob(os.path.join(sysconfig.get_paths()["stdlib"], "**/*.py"), recursive=True))
        for path in files[:2500]:
            with open(path, encoding="utf-8", errors="replace") as f:
                yield f.read()

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab, special_tokens=SPECIALS,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(corpus(), trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|endoftext|>")
    fast.chat_template = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n"
                          "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
    fast.save_pretrained(out)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--vocab", type=int, default=32000)
    a = ap.parse_args()
    target = os.path.join(a.out, "qwen3-8b-dummy")
    drafter = os.path.join(a.out, "dflash-b16-dummy")
    os.makedirs(target, exist_ok=True)
    os.makedirs(drafter, exist_ok=True)
    geometry = dict(hidden_size=4096, num_attention_heads=32, num_key_value_heads=8, head_dim=128,
                    intermediate_size=12288, rms_norm_eps=1e-6, rope_theta=1000000.0,
                    max_position_embeddings=40960, vocab_size=a.vocab, hidden_act="silu",
                    attention_bias=False, tie_word_embeddings=False, torch_dtype="bfloat16")
    with open(os.path.join(target, "config.json"), "w") as f:
        json.dump(dict(architectures=["Qwen3ForCausalLM"], model_type="qwen3", num_hidden_layers=36,
                       bos_token_id=0, eos_token_id=2, **geometry), f, indent=2)
    with open(os.path.join(drafter, "config.json"), "w") as f:
        json.dump(dict(architectures=["DFlashDraftModel"], model_type="qwen3", num_hidden_layers=5,
                       num_target_layers=36, block_size=16,
                       dflash_config=dict(mask_token_id=3, target_layer_ids=[1, 9, 17, 25, 33]),
                       **geometry), f, indent=2)
    make_tokenizer(target, a.vocab)
    for name in os.listdir(target):  # the drafter directory carries the same tokenizer
        if name != "config.json":
            shutil.copy(os.path.join(target, name), drafter)
    print("wrote", target, drafter)


if __name__ == "__main__":
    main()
