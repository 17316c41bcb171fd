"""Where the GPU waits: GPU-only torch-profiler traces of running servers, with idle time per step.

    python bench/h200/gpu_idle.py --url NAME=URL ... --out OUTDIR
        [--concurrency 1,32] [--waves 3] [--max-tokens 256] [--step-kernel SUBSTR] [--only A,B]
    python bench/h200/gpu_idle.py --analyze TRACE.json.gz [--step-kernel SUBSTR]

At a fixed batch, two workers that launch the same kernels can still differ in step time when
one of them leaves the GPU idle: SGLang's overlap scheduler waits for each step's publish
event before it launches the next step, so the host's launch latency after that point is
exposed unless GPU work queued behind the publish covers it. A profile with CPU activity or
Python stacks slows the host several-fold and hides exactly this, so the trace here records
GPU activity only (CUPTI), which costs the host almost nothing.

Per server and concurrency: a warm-up, then `/start_profile` (activities GPU, no stacks),
`waves` waves of `concurrency` streamed requests of `max-tokens` tokens (prompts from `mix`,
cached after the warm-up as in the throughput table), `/stop_profile`. The trace is reduced
to `OUTDIR/gpu_idle.json` and deleted (traces run to tens of MB):

- wall / busy / idle ms of the GPU over the decode bursts (runs of GPU work with no gap over
  `--burst-gap-ms`; busy is the union of kernel, memcpy and memset intervals, so overlapping
  streams are not counted twice);
- steps: occurrences of `--step-kernel` (default: the verify's argmax over bf16 logits, which
  both SGLang's built-in DFLASH and ours launch once per decode step), and per-step means;
- the largest idle gaps grouped by the kernel before and after them (where in the step the
  GPU waits), and the kernels with the most GPU time (to diff two workers' GPU work).
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import glob
import gzip
import json
import os
import time
import urllib.request
from collections import defaultdict
from pathlib import Path

GPU_CATS = ("kernel", "gpu_memcpy", "gpu_memset")
DEFAULT_STEP_KERNEL = "ReduceOp<c10::BFloat16, at::native::ArgMaxOps"


def short(name: str, width: int = 70) -> str:
    return name if len(name) <= width else name[: width - 3] + "..."


def gpu_events(events: list[dict]) -> list[dict]:
    return sorted((e for e in events if e.get("ph") == "X" and e.get("cat") in GPU_CATS),
                  key=lambda e: e["ts"])


def bursts(kern: list[dict], gap_us: float) -> list[list[dict]]:
    """Split time-sorted GPU events where the GPU idles for more than gap_us."""
    out: list[list[dict]] = []
    end = None
    for k in kern:
        if end is None or k["ts"] - end > gap_us:
            out.append([])
            end = k["ts"]
        out[-1].append(k)
        end = max(end, k["ts"] + k.get("dur", 0))
    return out


def analyze(events: list[dict], step_kernel: str = DEFAULT_STEP_KERNEL,
            burst_gap_ms: float = 20.0, min_gap_us: float = 3.0, top: int = 12) -> dict:
    """Idle time of the GPU inside bursts of work (times in ms, gaps keyed by neighbours)."""
    kern = gpu_events(events)
    if not kern:
        raise ValueError("the trace has no GPU events (was the profile started with activity GPU?)")
    wall = busy = 0.0
    gaps: dict[str, list[float]] = defaultdict(lambda: [0.0, 0])
    per_kernel: dict[str, list[float]] = defaultdict(lambda: [0.0, 0])
    steps = 0
    groups = bursts(kern, burst_gap_ms * 1e3)
    for group in groups:
        start, end, prev = group[0]["ts"], group[0]["ts"], None
        for k in group:
            s, e = k["ts"], k["ts"] + k.get("dur", 0)
            per_kernel[k["name"]][0] += k.get("dur", 0)
            per_kernel[k["name"]][1] += 1
            steps += step_kernel in k["name"]
            if s > end:                       # the GPU was idle from `end` to `s`
                if s - end >= min_gap_us and prev is not None:
                    g = gaps[f"{short(prev['name'], 45)} -> {short(k['name'], 45)}"]
                    g[0] += s - end
                    g[1] += 1
                busy += e - s
            elif e > end:                     # overlaps the busy interval: count the rest
                busy += e - end
            if e >= end:
                end, prev = e, k
        wall += end - start
    idle = wall - busy
    res = {
        "bursts": len(groups),
        "wall_ms": wall / 1e3,
        "busy_ms": busy / 1e3,
        "idle_ms": idle / 1e3,
        "idle_fraction": idle / wall if wall else 0.0,
        "steps": steps,
        "step_kernel": step_kernel,
        "per_step_ms": ({"wall": wall / 1e3 / steps, "busy": busy / 1e3 / steps,
                         "idle": idle / 1e3 / steps} if steps else None),
        "top_gaps": [{"between": k, "ms": v[0] / 1e3, "count": v[1]}
                     for k, v in sorted(gaps.items(), key=lambda kv: -kv[1][0])[:top]],
        "top_kernels": [{"name": short(k, 90), "ms": v[0] / 1e3, "count": v[1]}
                        for k, v in sorted(per_kernel.items(), key=lambda kv: -kv[1][0])[:2 * top]],
    }
    return res


def load_trace(path: str) -> list[dict]:
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rt") as f:
        return json.load(f)["traceEvents"]


# ---- driving running servers ---------------------------------------------------------------
def post(url: str, path: str, body: dict | None = None, timeout: float = 300) -> str:
    req = urllib.request.Request(url + path, data=json.dumps(body or {}).encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return r.read().decode()[:200]


def wait_for_trace(directory: Path, timeout_s: float = 120) -> str:
    """The profiler writes its trace after /stop_profile returns; wait until its size settles."""
    deadline, last = time.time() + timeout_s, -1
    while time.time() < deadline:
        found = glob.glob(str(directory / "*.trace.json.gz"))
        if found:
            size = os.path.getsize(found[0])
            if size == last and size > 0:
                return found[0]
            last = size
        time.sleep(1.0)
    raise TimeoutError(f"no trace appeared in {directory} within {timeout_s:.0f} s")


def profile_server(name: str, url: str, prompts: list, concurrency: int, waves: int,
                   max_tokens: int, out: Path, step_kernel: str) -> dict:
    from sglang_dflash.bench.client import RequestSpec, send

    def one(i: int, tokens: int):
        p = prompts[i % len(prompts)]
        msgs = p.first_messages()
        res = send(url, "generate", RequestSpec(text=msgs[-1]["content"], messages=msgs,
                                                max_tokens=tokens), timeout=300)
        if not res.ok:
            raise RuntimeError(f"{name}: {res.error} {res.detail}")
        return res

    with cf.ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(lambda i: one(i, 16), range(concurrency)))      # warm-up, caches prompts
        d = out / "traces" / f"{name}-c{concurrency}"
        d.mkdir(parents=True, exist_ok=True)
        post(url, "/start_profile", {"output_dir": str(d), "activities": ["GPU"],
                                     "with_stack": False, "record_shapes": False})
        t0 = time.time()
        results = []
        for w in range(waves):
            results += list(pool.map(lambda i: one(i, max_tokens),
                                     range(w * concurrency, (w + 1) * concurrency)))
        elapsed = time.time() - t0
        post(url, "/stop_profile")
    trace = wait_for_trace(d)
    res = analyze(load_trace(trace), step_kernel)
    os.remove(trace)
    res.update(server=name, concurrency=concurrency, requests=len(results),
               client_s=elapsed,
               output_tokens=sum(r.output_tokens for r in results),
               verify_steps_reported=sum(r.verify_ct or 0 for r in results))
    return res


def print_table(rows: list[dict]) -> None:
    print("| server | c | steps | step wall ms | GPU busy ms | GPU idle ms | idle % |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        p = r["per_step_ms"] or {"wall": float("nan"), "busy": float("nan"), "idle": float("nan")}
        print(f"| {r.get('server', '-')} | {r.get('concurrency', '-')} | {r['steps']} | "
              f"{p['wall']:.3f} | {p['busy']:.3f} | {p['idle']:.3f} | {100 * r['idle_fraction']:.2f} |")
    for r in rows:
        print(f"\n{r.get('server', '-')} c={r.get('concurrency', '-')}: largest idle gaps")
        for g in r["top_gaps"][:8]:
            print(f"  {g['ms']:8.2f} ms {g['count']:5d}x  {g['between']}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--url", action="append", default=[], help="NAME=URL of a running server")
    ap.add_argument("--out", help="output directory (gpu_idle.json)")
    ap.add_argument("--concurrency", default="1,32")
    ap.add_argument("--waves", type=int, default=3)
    ap.add_argument("--max-tokens", type=int, default=256)
    ap.add_argument("--step-kernel", default=DEFAULT_STEP_KERNEL)
    ap.add_argument("--only", help="comma-separated server names to profile (default: every --url)")
    ap.add_argument("--analyze", help="only reduce this trace file and print the result")
    a = ap.parse_args(argv)
    if a.analyze:
        res = analyze(load_trace(a.analyze), a.step_kernel)
        print_table([res])
        print(json.dumps(res, indent=1))
        return 0
    if not a.url or not a.out:
        ap.error("--url and --out are required unless --analyze is given")
    from sglang_dflash.bench.prompts import load_prompts

    prompts = load_prompts("mix")
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    servers = dict(u.split("=", 1) for u in a.url)
    if a.only:
        unknown = sorted(set(a.only.split(",")) - set(servers))
        if unknown:
            ap.error(f"--only: {unknown} not among the --url names {sorted(servers)}")
        servers = {k: v for k, v in servers.items() if k in a.only.split(",")}
    rows = []
    for c in (int(x) for x in a.concurrency.split(",")):
        for name, url in servers.items():
            rows.append(profile_server(name, url, prompts, c, a.waves, a.max_tokens, out,
                                       a.step_kernel))
            (out / "gpu_idle.json").write_text(json.dumps(rows, indent=1))
    print_table(rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
