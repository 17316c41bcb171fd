"""``python -m sglang_dflash.eval``: acceptance length per task, from a server or the reference.

Examples::

    # a running SGLang server with DFLASH (ours or builtin)
    python -m sglang_dflash.eval --url http://127.0.0.1:30000 \\
        --chat-template-kwargs '{"enable_thinking": false}'

    # the reference decoder on a Hugging Face target and a drafter (small models)
    python -m sglang_dflash.eval --target ./SmolLM2-135M-Instruct --drafter ./smol-dflash
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from pathlib import Path

from ..bench.prompts import PromptError
from ..bench.runner import served_model_name
from ..bench.serverinfo import server_info
from ..bench.sysinfo import environment
from .backends import ReferenceBackend, ServerBackend
from .evaluate import evaluate, overall
from .report import markdown_table
from .tasks import DEFAULT_TASKS, load_tasks


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m sglang_dflash.eval",
                                description=__doc__.split("\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    g = p.add_argument_group("backend (one of)")
    g.add_argument("--url", help="a running SGLang server with speculative decoding")
    g.add_argument("--target", help="Hugging Face target dir (reference decoder)")
    g.add_argument("--drafter", help="DFlash drafter dir (reference decoder)")
    g = p.add_argument_group("tasks")
    g.add_argument("--tasks", default=",".join(DEFAULT_TASKS),
                   help="comma-separated named sets or prompt files (default: the z-lab-like mix)")
    g.add_argument("--num-prompts", type=int, help="first N prompts of each task")
    g.add_argument("--max-tokens", type=int, default=512, help="per turn; stops at EOS earlier")
    g.add_argument("--temperature", type=float, default=0.0)
    g.add_argument("--chat-template-kwargs", type=json.loads, default={},
                   help='JSON, e.g. \'{"enable_thinking": false}\'')
    g = p.add_argument_group("server backend")
    g.add_argument("--concurrency", type=int, default=8, help="prompts in flight")
    g.add_argument("--timeout", type=float, default=600.0, help="s per request")
    g.add_argument("--model-name", help="'model' field (default: from /v1/models)")
    g.add_argument("--extra-body", type=json.loads, default={}, help="JSON merged into requests")
    g = p.add_argument_group("reference backend")
    g.add_argument("--block-size", type=int, help="default: the drafter's block_size")
    g.add_argument("--device", default="cpu")
    g.add_argument("--dtype", default="float32",
                   choices=["float32", "bfloat16", "float16", "float64"])
    g.add_argument("--seed", type=int, default=0)
    g = p.add_argument_group("output")
    g.add_argument("--out", help="output directory (default: eval-results/<UTC time>)")
    g.add_argument("--tag", default="eval", help="file name stem of the reports")
    g.add_argument("--no-progress", action="store_true")
    return p


def make_backend(args):
    if bool(args.url) == bool(args.target or args.drafter):
        raise SystemExit("error: give either --url, or --target and --drafter")
    if args.url:
        extra = dict(args.extra_body)
        if args.chat_template_kwargs:
            extra.setdefault("chat_template_kwargs", args.chat_template_kwargs)
        model = args.model_name or served_model_name(args.url) or "default"
        return ServerBackend(args.url, max_tokens=args.max_tokens, temperature=args.temperature,
                             timeout=args.timeout, model=model, extra_body=extra)
    if not (args.target and args.drafter):
        raise SystemExit("error: the reference backend needs both --target and --drafter")
    return ReferenceBackend.from_dirs(
        args.target, args.drafter, device=args.device, dtype=args.dtype,
        template_kwargs=args.chat_template_kwargs, max_tokens=args.max_tokens,
        block_size=args.block_size, temperature=args.temperature, seed=args.seed)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        tasks = load_tasks([t.strip() for t in args.tasks.split(",") if t.strip()],
                           args.num_prompts)
    except PromptError as e:
        raise SystemExit(f"error: {e}") from None
    backend = make_backend(args)
    stats = evaluate(tasks, backend, args.concurrency, progress=not args.no_progress)
    report = {
        "schema": "sglang-dflash-eval/1",
        "command": [sys.executable, "-m", "sglang_dflash.eval", *(argv or sys.argv[1:])],
        "flags": vars(args),
        "backend": backend.name,
        "server_info": server_info(args.url) if args.url else {},
        "environment": environment(),
        "tasks": [s.to_dict() for s in stats],
        "overall": overall(stats),
    }
    out = Path(args.out or f"eval-results/{dt.datetime.now(dt.timezone.utc):%Y%m%d-%H%M%S}")
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{args.tag}.json").write_text(json.dumps(report, indent=2) + "\n")
    table = markdown_table(report)
    (out / f"{args.tag}.md").write_text(f"# sglang-dflash eval ({backend.name})\n\n{table}")
    print(table)
    print(f"[eval] wrote {out / (args.tag + '.json')}, {out / (args.tag + '.md')}")
    if any(s.accept_len_mean is None for s in stats):
        print("[eval] note: some tasks have no acceptance length: is speculative decoding on, "
              "and did the requests succeed?")
    return 0 if all(s.turns and not s.failed for s in stats) else 1
