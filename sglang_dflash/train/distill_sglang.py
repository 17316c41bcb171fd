"""Self-distillation through SGLang's offline engine: the target writes the replies, fast.

    python -m sglang_dflash.train.distill_sglang --target DIR --data prompts.jsonl --out distill.jsonl \\
        [--exclude heldout.jsonl] [--max-new-tokens 256] [--max-seconds S] [--dtype bfloat16]

Same conversations, same cache format and the same multi-turn rounds as `--self-distill` in the
trainer (sglang_dflash.train.distill), but the replies come from `sglang.Engine` with continuous
batching and CUDA graphs instead of Hugging Face `generate` with padded batches: for a small
target many times more replies per second. Greedy by default. The written file is chat data
(`{"messages": [...]}` with the assistant turns) for `python -m sglang_dflash.train --data`.

A bf16 engine writes bf16-greedy text, which can part from the fp32 target's greedy text at near
ties; train with `--target-labels` so the drafter learns the fp32 target's own next tokens on
that text. `--exclude` drops conversations whose prompts occur in the given files (held-out sets).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from .distill import add_io_args, distill, prompt_key, select_records, write_answered

__all__ = ["engine_kwargs", "main", "prompt_key", "sglang_generate_fn"]


def engine_kwargs(a) -> dict:
    kw = dict(model_path=a.target, dtype=a.dtype, mem_fraction_static=a.mem_fraction, skip_tokenizer_init=True,
              schedule_policy="fcfs",
              max_running_requests=a.max_running_requests, random_seed=a.seed, log_level=a.log_level)
    if a.attention_backend:
        kw["attention_backend"] = a.attention_backend
    for item in a.engine_arg:
        k, _, v = item.partition("=")
        try:
            kw[k.replace("-", "_")] = json.loads(v)
        except json.JSONDecodeError:
            kw[k.replace("-", "_")] = v
    return kw


def sglang_generate_fn(engine, *, max_new_tokens: int, temperature: float, top_p: float, eos_ids,
                       deadline: float | None = None, sub_batch: int = 512,
                       max_in_flight: int | None = None):
    """A `distill(generate_fn=...)` backend. The prompts of a call go to the engine in batched
    requests of `sub_batch`, at most `max_in_flight` prompts in the engine at a time (None: all
    at once), so it runs at full concurrency without queueing tens of thousands of requests in
    SGLang's tokenizer manager and scheduler; at `deadline` the unfinished requests are
    dropped, and they and those never sent come back as None."""
    import asyncio

    eos = sorted(eos_ids)

    def parse(o):
        ids = list(o["output_ids"])
        while ids and ids[-1] in eos_ids:
            ids.pop()
        finish = (o.get("meta_info") or {}).get("finish_reason") or {}
        return ids, finish.get("type") != "stop"

    def gen(prompts, seed):
        sp = {"max_new_tokens": max_new_tokens, "temperature": temperature, "top_p": top_p,
              "stop_token_ids": eos, "skip_special_tokens": False}
        if temperature > 0:
            sp["sampling_seed"] = seed
        parts = [[list(p) for p in prompts[s: s + sub_batch]] for s in range(0, len(prompts), sub_batch)]

        async def run():
            slots = len(parts) if max_in_flight is None else max(1, max_in_flight // sub_batch)
            room = asyncio.Semaphore(max(1, slots))  # batched requests in the engine at a time

            async def one(p):
                async with room:
                    return await engine.async_generate(input_ids=p, sampling_params=sp)

            tasks = [asyncio.ensure_future(one(p)) for p in parts]
            timeout = None if deadline is None else max(0.0, deadline - time.time())
            _, pending = await asyncio.wait(tasks, timeout=timeout)
            for t in pending:
                t.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
            res = []
            for p, t in zip(parts, tasks):
                outs = t.result() if t.done() and not t.cancelled() and t.exception() is None else None
                if isinstance(outs, dict):
                    outs = [outs]
                res += [parse(o) for o in outs] if outs is not None else [None] * len(p)
            return res

        return engine.loop.run_until_complete(run())

    return gen


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m sglang_dflash.train.distill_sglang",
                                 description=__doc__.split("\n\n")[0])
    add_io_args(ap)
    ap.add_argument("--temperature", type=float, default=0.0)
    ap.add_argument("--top-p", type=float, default=1.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--sub-batch", type=int, default=256, help="prompts per batched engine request (at "
                    "the deadline, unfinished ones are dropped)")
    ap.add_argument("--max-in-flight", type=int, default=None, help="prompts in the engine at a time "
                    "(default: twice --max-running-requests; 0 = all at once)")
    ap.add_argument("--max-seconds", type=float, help="stop generating this long after the start (engine start "
                    "included); conversations answered by then are kept")
    ap.add_argument("--dtype", default="bfloat16")
    ap.add_argument("--attention-backend", default=None, help="e.g. triton (GPU), torch_native (CPU)")
    ap.add_argument("--mem-fraction", type=float, default=0.6)
    ap.add_argument("--max-running-requests", type=int, default=1024)
    ap.add_argument("--log-level", default="warning")
    ap.add_argument("--engine-arg", action="append", default=[], metavar="KEY=VALUE",
                    help="extra sglang.Engine / ServerArgs field (VALUE parsed as JSON when it can be)")
    a = ap.parse_args(argv)
    t0 = time.time()
    deadline = t0 + a.max_seconds if a.max_seconds else None

    from transformers import AutoTokenizer

    if a.target == "smollm2":
        from ..smollm2 import ensure_smollm2

        a.target = str(ensure_smollm2())
    tok = AutoTokenizer.from_pretrained(a.target)
    records, dropped = select_records(a.data, a.exclude, a.num)
    print(f"[distill_sglang] {len(records)} conversations ({dropped} dropped: excluded / text / "
          f"over --num)", flush=True)

    import sglang

    cfg = json.loads((Path(a.target) / "config.json").read_text())
    eos = cfg.get("eos_token_id")
    gen_cfg = Path(a.target) / "generation_config.json"
    if gen_cfg.is_file():
        eos = json.loads(gen_cfg.read_text()).get("eos_token_id", eos)
    eos_ids = set(eos if isinstance(eos, list) else [eos] if eos is not None else []) | {tok.eos_token_id}
    eos_ids.discard(None)
    in_flight = 2 * a.max_running_requests if a.max_in_flight is None else (a.max_in_flight or None)
    engine = sglang.Engine(**engine_kwargs(a))
    print(f"[distill_sglang] engine up in {time.time() - t0:.0f}s ({a.dtype}); eos {sorted(eos_ids)}", flush=True)
    try:
        td = time.time()
        done = distill(None, tok, records, a.cache or a.out + ".cache", max_new_tokens=a.max_new_tokens,
                       temperature=a.temperature, top_p=a.top_p, batch_size=1 << 30, seed=a.seed, deadline=deadline,
                       progress=sys.stderr.isatty(), eos_ids=eos_ids, model_name=f"sglang:{Path(a.target).name}",
                       generate_fn=sglang_generate_fn(engine, max_new_tokens=a.max_new_tokens,
                                                      temperature=a.temperature, top_p=a.top_p, eos_ids=eos_ids,
                                                      deadline=deadline, sub_batch=a.sub_batch,
                                                      max_in_flight=in_flight))
    finally:
        engine.shutdown()
    dt = time.time() - td
    n_turns = write_answered(a.out, done)  # with the multi-turn ones the deadline cut short
    print(f"[distill_sglang] {len(done)} conversations ({n_turns} replies) in {dt:.0f}s "
          f"= {len(done) / max(dt, 1e-9):.0f} conv/s; total {time.time() - t0:.0f}s -> {a.out}", flush=True)
    return 0 if done else 1


if __name__ == "__main__":
    raise SystemExit(main())
