"""Time to first token of several running servers, interleaved, and a torch-profiler trace of
each (run by `PROBE=1 bash bench/h200/throughput.sh`, on the servers it starts).

    python bench/h200/ttft_probe.py --url NAME=URL ... --model DIR --out OUTDIR
        [--rounds 6] [--per-round 8] [--profile NAME ...] [--sync-debug-file PATH]
        [--api chat|generate] [--fresh]

Per round, servers take turns in alternating order (A B, then B A) and each gets `per-round`
sequential streamed requests of the `mix` prompts: first with `max_tokens` 1 (prefill, then
the first decode launch), then with 256 (as in the throughput table). Writes ttft.json
(every request's TTFT and latency, per server and kind, with mean / median) and prints a
table. With --profile, each named server then records `--profile-requests` requests of 64
tokens with SGLang's torch profiler (/start_profile, /stop_profile), traces into
OUTDIR/prof/NAME. With --sync-debug-file, that file is created after the rounds (see
sglang_dflash.sglang.sync_debug) and --per-round requests go to every server once more.
By default the prompts repeat, so after the warm-up every prefill is a radix-cache hit of one
token; --fresh makes every prefill a full one.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
import urllib.request
from pathlib import Path

from sglang_dflash.bench.client import RequestSpec, send
from sglang_dflash.bench.prompts import load_prompts


def post(url: str, path: str, body: dict | None = None, timeout: float = 120) -> str:
    req = urllib.request.Request(url + path, data=json.dumps(body or {}).encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return r.read().decode()[:300]


API = "chat"
FRESH = [0]  # > 0: every request's prompt starts with a new number, so no prefix is cached


def one(url, prompt, max_tokens):
    msgs = prompt.first_messages()
    if FRESH[0]:
        FRESH[0] += 1
        msgs = msgs[:-1] + [{"role": "user", "content": f"[{FRESH[0]}] {msgs[-1]['content']}"}]
    spec = RequestSpec(text=msgs[-1]["content"], messages=msgs, max_tokens=max_tokens)
    res = send(url, API, spec, timeout=120)
    if not res.ok:
        raise RuntimeError(f"{url}: {res.error} {res.detail}")
    return {"ttft_ms": 1e3 * res.ttft, "latency_ms": 1e3 * res.latency, "tokens": res.output_tokens}


def summary(rows):
    t = [r["ttft_ms"] for r in rows]
    return {"n": len(t), "mean": statistics.fmean(t), "median": statistics.median(t), "min": min(t), "max": max(t)}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", action="append", required=True, help="NAME=URL")
    ap.add_argument("--model", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--per-round", type=int, default=8)
    ap.add_argument("--profile", nargs="*", default=[])
    ap.add_argument("--profile-requests", type=int, default=3)
    ap.add_argument("--profile-activities", default="CPU,GPU")
    ap.add_argument("--sync-debug-file")
    ap.add_argument("--api", choices=["chat", "generate"], default="chat",
                    help="generate: SGLang's /generate with the raw text (as the table's bench sends)")
    ap.add_argument("--fresh", action="store_true",
                    help="a new number in front of every prompt: full prefills, no radix-cache hits")
    a = ap.parse_args()
    global API
    API = a.api
    FRESH[0] = 1 if a.fresh else 0
    servers = dict(u.split("=", 1) for u in a.url)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    prompts = load_prompts("mix")
    for url in servers.values():  # warm: every prompt once, short
        for p in prompts[: a.per_round]:
            one(url, p, 8)
    rec = {name: {"1": [], "256": []} for name in servers}
    names = list(servers)
    for r in range(a.rounds):
        order = names if r % 2 == 0 else names[::-1]
        for name in order:
            for k in ("1", "256"):
                for i in range(a.per_round):
                    p = prompts[(r * a.per_round + i) % len(prompts)]
                    rec[name][k].append(one(servers[name], p, int(k)))
    res = {name: {k: summary(v) for k, v in kinds.items()} for name, kinds in rec.items()}
    print("| server | max_tokens | n | TTFT mean ms | median | min | max |\n|---|---:|---:|---:|---:|---:|---:|")
    for name, kinds in res.items():
        for k, s in kinds.items():
            print(f"| {name} | {k} | {s['n']} | {s['mean']:.1f} | {s['median']:.1f} | {s['min']:.1f} | {s['max']:.1f} |")
    (out / "ttft.json").write_text(json.dumps({"summary": res, "requests": rec}, indent=1))

    for name in a.profile:
        url = servers[name]
        d = out / "prof" / name
        d.mkdir(parents=True, exist_ok=True)
        print(name, "start_profile:", post(url, "/start_profile", {"output_dir": str(d), "activities": a.profile_activities.split(",")}))
        for i in range(a.profile_requests):
            one(url, prompts[i], 64)
            time.sleep(0.2)
        print(name, "stop_profile:", post(url, "/stop_profile"))
    if a.sync_debug_file:
        Path(a.sync_debug_file).touch()
        time.sleep(1.5)  # the watcher polls every 0.5 s
        for name, url in servers.items():
            for p in prompts[: a.per_round]:
                one(url, p, 64)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
