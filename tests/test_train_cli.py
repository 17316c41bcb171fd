"""`python -m sglang_dflash.train` end to end on a tiny random target with SmolLM2's tokenizer:
self-distillation, training, held-out eval, export that our loader accepts."""
import json
import re

import torch
from transformers import LlamaConfig, LlamaForCausalLM

from sglang_dflash.model import DFlashDrafter
import pytest

from sglang_dflash.train.cli import main, parse_train_block_sizes
from smollm2_fixture import smollm2, smollm2_dir  # noqa: F401


def test_cli_self_distill_train_export(tmp_path, smollm2):  # noqa: F811
    _, tok = smollm2
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=4,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
                      tie_word_embeddings=True, bos_token_id=1, eos_token_id=2, pad_token_id=2)
    target_dir = tmp_path / "target"
    LlamaForCausalLM(cfg).save_pretrained(target_dir)
    tok.save_pretrained(target_dir)
    data = tmp_path / "prompts.jsonl"
    data.write_text("".join(json.dumps({"messages": [{"role": "user", "content": f"Count to {i}."}]}) + "\n"
                            for i in range(6)))
    out = tmp_path / "run"
    rc = main(["--target", str(target_dir), "--data", str(data), "--out", str(out), "--self-distill",
               "--distill-max-new-tokens", "12", "--distill-batch-size", "4", "--steps", "3", "--batch-size", "2",
               "--num-anchors", "4", "--block-size", "4", "--train-block-sizes", "2,4", "--num-layers", "1", "--eval-prompts", "1",
               "--eval-max-new-tokens", "4", "--device", "cpu", "--export-dtype", "float32"])
    assert rc == 0
    assert len((out / "distill.jsonl").read_text().splitlines()) == 5  # one prompt held out for eval
    summary = json.loads((out / "train_summary.json").read_text())
    assert summary["summary"]["steps"] == 3 and "tau_b4" in summary["summary"]["eval"]
    assert summary["loop"]["train_block_sizes"] == [2, 4]
    d = DFlashDrafter.from_pretrained(str(out), target_config=cfg)
    assert d.config.mask_token_id == 16 and d.config.block_size == 4  # <empty_output>, the spare special token


@pytest.mark.parametrize("text, message", [("8,x", "expected comma-separated integers, got '8,x'"),
                                           ("8,32", "each size must be between 2 and --block-size (16); got '8,32'"),
                                           ("1", "each size must be between 2 and --block-size (16); got '1'")])
def test_bad_train_block_sizes_name_the_option(text, message):
    with pytest.raises(SystemExit, match=re.escape("--train-block-sizes: " + message)):
        parse_train_block_sizes(text, 16)
    assert parse_train_block_sizes("16, 8", 16) == (8, 16) and parse_train_block_sizes(None, 16) is None
