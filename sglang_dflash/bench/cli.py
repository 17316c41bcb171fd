"""``python -m sglang_dflash.bench``: throughput / latency / acceptance sweep over servers.

Examples::

    # three configurations launched one after another, default concurrency 1, 8, 32
    python -m sglang_dflash.bench --launch baseline,builtin,ours \\
        --model Qwen/Qwen3-8B --drafter z-lab/Qwen3-8B-DFlash-b16 --prompts mix

    # servers that are already running
    python -m sglang_dflash.bench --url ours=http://127.0.0.1:30000 --url http://host:30001
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import shlex
import sys
from pathlib import Path

from . import report as rep
from .client import API_PATHS, RequestSpec
from .prompts import PromptError, load_prompts
from .runner import Workload, served_model_name
from .server import CONFIGS, LaunchSpec
from .sweep import Target, run_interleaved, run_sweep
from .sysinfo import environment
from .template import hf_chat_formatter, plain


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m sglang_dflash.bench", description=__doc__.split("\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    g = p.add_argument_group("servers")
    g.add_argument("--url", action="append", default=[], metavar="[NAME=]URL",
                   help="a running server (repeatable); NAME labels it in the report")
    g.add_argument("--launch", action="append", default=[], metavar="CONFIG[,CONFIG]",
                   help=f"launch and measure configurations in turn: {', '.join(CONFIGS)}")
    g.add_argument("--model", help="target model path (for --launch and the chat template)")
    g.add_argument("--drafter", help="DFlash drafter path (for builtin / ours)")
    g.add_argument("--block-size", type=int, help="--speculative-num-draft-tokens for launches")
    g.add_argument("--server-args", default="", help="extra launch_server arguments (one string)")
    g.add_argument("--env", action="append", default=[], metavar="KEY=VALUE",
                   help="environment for launched servers, e.g. SGLANG_SIMULATE_ACC_LEN=6.44")
    g.add_argument("--launch-timeout", type=float, default=900.0, help="s to wait for /health")
    g.add_argument("--python", default=sys.executable, help="interpreter that has sglang")

    g = p.add_argument_group("workload")
    g.add_argument("--api", choices=sorted(API_PATHS), default="generate",
                   help="generate (SGLang native, streams acceptance), chat, completions")
    g.add_argument("--prompts", default="mix", help="named set, 'mix', or a .txt / .jsonl file")
    g.add_argument("--num-prompts", type=int, help="use only the first N prompts")
    g.add_argument("--max-tokens", type=int, default=256, help="output tokens per request")
    g.add_argument("--natural-stop", action="store_true",
                   help="stop at EOS (default: ignore_eos, exactly --max-tokens tokens)")
    g.add_argument("--temperature", type=float, default=0.0)
    g.add_argument("--concurrency", default="1,8,32", help="comma-separated levels")
    g.add_argument("--num-requests", type=int,
                   help="requests per level (default: all prompts, at least --min-waves x concurrency)")
    g.add_argument("--min-waves", type=int, default=4,
                   help="at least this many waves of `concurrency` requests per level (default 4); "
                        "at high concurrency a wave's requests start together, so TTFT rests on waves")
    g.add_argument("--warmup", type=int, default=2, help="uncounted warm-up rounds before each level, each of `concurrency` short requests in flight")
    g.add_argument("--rounds", type=int, default=1,
                   help="running servers (--url) only: cut each level into this many parts and "
                        "let the servers take turns part by part, so slow drifts of the host hit "
                        "all of them alike (default 1: one server after another)")
    g.add_argument("--timeout", type=float, default=600.0, help="s per request")
    g.add_argument("--no-stream", action="store_true",
                   help="non-streaming requests (chat then returns meta_info; no TTFT/ITL)")
    g.add_argument("--tokenizer", help="tokenizer dir for the chat template (default: --model)")
    g.add_argument("--raw-prompts", action="store_true",
                   help="send prompt text without a chat template (generate / completions)")
    g.add_argument("--chat-template-kwargs", type=json.loads, default={},
                   help='JSON, e.g. \'{"enable_thinking": false}\'')
    g.add_argument("--extra-body", type=json.loads, default={}, help="JSON merged into requests")
    g.add_argument("--model-name", help="'model' field for OpenAI APIs (default: /v1/models)")

    g = p.add_argument_group("output")
    g.add_argument("--out", help="output directory (default: bench-results/<UTC time>)")
    g.add_argument("--tag", default="bench", help="file name stem of the reports")
    g.add_argument("--save-requests", action="store_true",
                   help="also write <tag>.requests.jsonl: one line per timed request")
    g.add_argument("--no-progress", action="store_true")
    return p


def _targets(args) -> list[Target]:
    targets = []
    for item in args.url:
        name, _, url = item.partition("=") if "=" in item.split("://")[0] else ("", "", item)
        targets.append(Target(name=name or url, url=url))
    env = dict(kv.split("=", 1) for kv in args.env)
    for config in (c.strip() for item in args.launch for c in item.split(",") if c.strip()):
        if config not in CONFIGS:
            raise SystemExit(f"error: unknown configuration {config!r}; choose from {CONFIGS}")
        if not args.model:
            raise SystemExit("error: --launch needs --model")
        spec = LaunchSpec(config=config, model=args.model, drafter=args.drafter,
                          block_size=args.block_size, extra_args=shlex.split(args.server_args),
                          env=env, python=args.python)
        targets.append(Target(name=config, launch=spec))
    if not targets:
        raise SystemExit("error: give at least one --url or --launch")
    return targets


def template_source(args) -> str:
    """Who applies the chat template: 'server', 'client:<tokenizer dir>' or 'none'."""
    if args.api == "chat":
        return "server"
    tok_dir = args.tokenizer or args.model
    return "none" if args.raw_prompts or not tok_dir else f"client:{tok_dir}"


def _specs(args, prompts) -> list[RequestSpec]:
    render = plain
    source = template_source(args)
    if source.startswith("client:"):
        try:
            render = hf_chat_formatter(source[7:], args.chat_template_kwargs)
        except Exception as e:  # noqa: BLE001 - any loading problem ends the run here
            raise SystemExit(f"error: cannot load the chat template from {source[7:]!r} ({e}); "
                             "give --tokenizer DIR or --raw-prompts") from e
    elif source == "none" and not args.raw_prompts:
        print("[bench] note: no --tokenizer/--model, prompts are sent without a chat template")
    extra = dict(args.extra_body)
    if args.api == "chat" and args.chat_template_kwargs:
        extra.setdefault("chat_template_kwargs", args.chat_template_kwargs)
    model = args.model_name or "default"
    return [
        RequestSpec(text=render(p.first_messages()), messages=p.first_messages(),
                    max_tokens=args.max_tokens, ignore_eos=not args.natural_stop,
                    temperature=args.temperature, stream=not args.no_stream, model=model,
                    extra_body=extra)
        for p in prompts
    ]


def _dump(f, server: str, concurrency: int, results) -> None:
    for r in results:
        row = {"server": server, "concurrency": concurrency, **r.__dict__}
        row.pop("text")
        f.write(json.dumps(row) + "\n")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    targets = _targets(args)
    if args.rounds < 1:
        raise SystemExit(f"error: --rounds must be >= 1, got {args.rounds}")
    if args.min_waves < 1:
        raise SystemExit(f"error: --min-waves must be >= 1, got {args.min_waves}")
    if args.rounds > 1 and any(t.launch is not None for t in targets):
        raise SystemExit("error: --rounds > 1 interleaves running servers; give them with --url, "
                         "not --launch")
    try:
        prompts = load_prompts(args.prompts)[: args.num_prompts or None]
    except PromptError as e:
        raise SystemExit(f"error: {e}") from None
    specs = _specs(args, prompts)
    if args.api != "generate" and not args.model_name:
        for t in targets:       # the OpenAI 'model' field: ask the first running server
            name = t.url and served_model_name(t.url)
            if name:
                specs = [RequestSpec(**{**s.__dict__, "model": name}) for s in specs]
                break
    work = Workload(specs=tuple(specs), api=args.api, timeout=args.timeout,
                    warmup=args.warmup, progress=not args.no_progress,
                    min_waves=args.min_waves)
    concurrencies = [int(c) for c in args.concurrency.split(",") if c.strip()]
    out = Path(args.out or f"bench-results/{dt.datetime.now(dt.timezone.utc):%Y%m%d-%H%M%S}")
    out.mkdir(parents=True, exist_ok=True)

    dump = open(out / f"{args.tag}.requests.jsonl", "w") if args.save_requests else None
    try:
        on_requests = (lambda *a: _dump(dump, *a)) if dump else None
        if args.rounds > 1:
            servers, levels = run_interleaved(targets, work, concurrencies, args.num_requests,
                                              args.rounds, on_requests=on_requests)
        else:
            servers, levels = run_sweep(
                targets, work, concurrencies, args.num_requests, args.launch_timeout,
                log_dir=str(out), on_requests=on_requests)
    finally:
        if dump:
            dump.close()
    report = {
        "schema": "sglang-dflash-bench/1",
        "command": [sys.executable, "-m", "sglang_dflash.bench", *(argv or sys.argv[1:])],
        "flags": vars(args),
        "environment": environment(),
        "workload": {
            "prompts": args.prompts, "num_prompts": len(prompts), "api": args.api,
            "max_tokens": args.max_tokens, "ignore_eos": not args.natural_stop,
            "temperature": args.temperature, "stream": not args.no_stream,
            "chat_template": template_source(args),
        },
        "servers": servers,
        "results": [s.to_dict() for s in levels],
    }
    paths = [rep.write_json(out / f"{args.tag}.json", report),
             rep.write_markdown(out / f"{args.tag}.md", report),
             rep.write_plot(out / f"{args.tag}.png", report)]
    print(rep.markdown_table(report))
    print("[bench] wrote " + ", ".join(str(p) for p in paths if p))
    return 0 if all(s.completed for s in levels) else 1
