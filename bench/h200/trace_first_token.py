"""What happens between a prefill and its first token, from a SGLang torch-profiler trace.

    python bench/h200/trace_first_token.py TRACE.json.gz [--window-ms 60] [--min-ms 0.3]

For every prefill step (SGLang's `step[EXTEND ...]` annotation) prints, relative to its start:
the scheduler annotations that follow (run_batch, process_batch_result, copy_result_to_cpu,
decode steps) with their durations, the GPU busy spans (kernels merged across gaps under
0.05 ms), host synchronisations (cuda*Synchronize, blocking cudaMemcpy) and the longest
Python calls of our package and SGLang's workers (with_stack traces). The time from the
prefill's start to the end of the process_batch_result that follows it is the server-side
part of the time to first token.
"""

from __future__ import annotations

import argparse
import gzip
import json


def load(path):
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rt") as f:
        return json.load(f)["traceEvents"]


def spans(kernels, gap_us=50.0):
    out = []
    for k in sorted(kernels, key=lambda e: e["ts"]):
        s, e = k["ts"], k["ts"] + k.get("dur", 0)
        if out and s - out[-1][1] <= gap_us:
            out[-1][1] = max(out[-1][1], e)
            out[-1][2] += 1
        else:
            out.append([s, e, 1])
    return out


INTERESTING = ("sglang_dflash/", "speculative/", "model_executor/model_runner", "managers/scheduler",
               "tp_worker", "overlap_utils", "schedule_batch")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("trace")
    ap.add_argument("--window-ms", type=float, default=60.0)
    ap.add_argument("--min-ms", type=float, default=0.3)
    ap.add_argument("--max-prefills", type=int, default=3)
    a = ap.parse_args()
    ev = [e for e in load(a.trace) if e.get("ph") == "X"]
    ann = sorted((e for e in ev if e.get("cat") == "user_annotation"), key=lambda e: e["ts"])
    kern = [e for e in ev if e.get("cat") in ("kernel", "gpu_memcpy", "gpu_memset")]
    rt = [e for e in ev if e.get("cat") == "cuda_runtime"]
    py = [e for e in ev if e.get("cat") == "python_function"]
    prefills = [e for e in ann if e["name"].startswith("step[EXTEND")]
    print(f"{len(ev)} events, {len(prefills)} prefills, {len(kern)} GPU events")
    for p in prefills[: a.max_prefills]:
        t0, t1 = p["ts"], p["ts"] + a.window_ms * 1e3
        rel = lambda t: (t - t0) / 1e3  # noqa: E731
        print(f"\n=== {p['name']} at {t0:.0f} us; times in ms from its start ===")
        rows = []
        for e in ann:
            if t0 - 2e3 <= e["ts"] <= t1 and not e["name"].startswith(("scheduler.recv", "scheduler.process_input",
                                                                        "scheduler.get_next")):
                rows.append((e["ts"], f"annot  {e['name']:<40} dur {e.get('dur', 0) / 1e3:7.2f}"))
            elif t0 <= e["ts"] <= t1 and e.get("dur", 0) >= a.min_ms * 1e3:
                rows.append((e["ts"], f"annot  {e['name']:<40} dur {e.get('dur', 0) / 1e3:7.2f}"))
        for s, e, n in spans([k for k in kern if t0 - 2e3 <= k["ts"] <= t1]):
            rows.append((s, f"GPU    busy until {rel(e):8.2f}  ({n} kernels, {(e - s) / 1e3:.2f} ms)"))
        for e in rt:
            if t0 <= e["ts"] <= t1 and ("Synchronize" in e["name"] or e["name"] in ("cudaMemcpy",)) \
                    and e.get("dur", 0) >= 20:
                rows.append((e["ts"], f"sync   {e['name']:<40} dur {e.get('dur', 0) / 1e3:7.2f}"))
        for e in py:
            if t0 <= e["ts"] <= t1 and e.get("dur", 0) >= a.min_ms * 1e3 and any(s in e["name"] for s in INTERESTING):
                rows.append((e["ts"], f"py     {e['name'][-90:]:<90} dur {e.get('dur', 0) / 1e3:7.2f}"))
        for ts, line in sorted(rows):
            print(f"{rel(ts):8.2f}  {line}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
