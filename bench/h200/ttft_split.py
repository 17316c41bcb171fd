"""Where a request's first token spends its time, from the server's own timestamps.

    python bench/h200/ttft_split.py OUTDIR/TAG.requests.jsonl[.gz] [--concurrency 1] [--json OUT]

Needs a bench run with `--save-requests` against servers started with `--enable-metrics`
(`METRICS=1 bash bench/h200/throughput.sh`): SGLang then returns, per request, when its HTTP
server received it and handed it on, when the scheduler took it into a prefill batch and when
it processed that batch's result (`sglang_dflash.bench` keeps them in `server_times`). With
the client's send time and TTFT (same machine, same clock), the first token splits into:

| stage | from | to | what runs |
|---|---|---|---|
| `http_in` | client send | `request_received_ts` | the client's send, HTTP parsing |
| `dispatch` | `request_received_ts` | `api_server_dispatch_finish_ts` | tokenization, hand-off |
| `to_batch` | `api_server_dispatch_finish_ts` | `forward_entry_time` | scheduler receive, queue |
| `prefill` | `forward_entry_time` | `prefill_finished_time` | prefill launch, the next batch's launch (overlap scheduler), wait for the GPU, result processing |
| `out` | `prefill_finished_time` | first token at the client | detokenizer, HTTP stream |

The five add up to the TTFT. The HTTP server stamps its hand-off after sending, and each
process converts its monotonic clock to wall time on its own, so `to_batch` can come out a
millisecond or so below zero (seen on CPU with SGLang 0.5.17). Prints per server and level the mean and median of each stage
(ms), so two workers' first tokens can be compared stage by stage: the `prefill` stage holds
everything a DFLASH worker adds to the first token.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from waves import read_requests  # noqa: E402

STAGES = ("http_in", "dispatch", "to_batch", "prefill", "out")
NEEDED = ("request_received_ts", "api_server_dispatch_finish_ts", "forward_entry_time",
          "prefill_finished_time")


def split(row: dict) -> dict | None:
    """One request's stages in ms, or None without the timestamps (server without metrics)."""
    t = row.get("server_times") or {}
    if row.get("ttft") is None or row.get("sent_at") is None or any(k not in t for k in NEEDED):
        return None
    first_token = row["sent_at"] + row["ttft"]
    marks = [row["sent_at"], *(t[k] for k in NEEDED), first_token]
    return {s: 1e3 * (b - a) for s, a, b in zip(STAGES, marks, marks[1:])}


def summarize(rows: list[dict]) -> dict[str, dict]:
    """Per stage (and the TTFT): mean and median in ms over the rows that have timestamps."""
    timed = [(r, p) for r, p in ((r, split(r)) for r in rows) if p is not None]
    out = {"n": len(timed)}
    if not timed:
        return out
    columns = {s: [p[s] for _, p in timed] for s in STAGES}
    columns["ttft"] = [1e3 * r["ttft"] for r, _ in timed]
    for name, v in columns.items():
        out[name] = {"mean": statistics.fmean(v), "median": statistics.median(v)}
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("requests", help="TAG.requests.jsonl from sglang_dflash.bench --save-requests")
    ap.add_argument("--concurrency", type=int, help="only this level (default: every level)")
    ap.add_argument("--json", help="also write the summary here")
    a = ap.parse_args(argv)
    groups: dict[tuple[str, int], list[dict]] = defaultdict(list)
    for r in read_requests(a.requests):
        if r.get("ok") and (a.concurrency is None or r["concurrency"] == a.concurrency):
            groups[(r["server"], r["concurrency"])].append(r)
    table = {f"{s} c={c}": summarize(rows)
             for (s, c), rows in sorted(groups.items(), key=lambda kv: (kv[0][1], kv[0][0]))}
    if not any(v["n"] for v in table.values()):
        raise SystemExit(f"error: {a.requests}: no request carries the server's timestamps; "
                         "start the servers with --enable-metrics (METRICS=1 throughput.sh) "
                         "and run the bench with --save-requests")
    print("mean / median per stage, ms\n")
    print("| server | n | " + " | ".join(STAGES) + " | TTFT |")
    print("|---|---:|" + "---:|" * (len(STAGES) + 1))
    for name, v in table.items():
        if not v["n"]:
            print(f"| {name} | 0 |" + " - |" * (len(STAGES) + 1))
            continue
        cells = [f"{v[s]['mean']:.1f} / {v[s]['median']:.1f}" for s in (*STAGES, "ttft")]
        print(f"| {name} | {v['n']} | " + " | ".join(cells) + " |")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(table, f, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
