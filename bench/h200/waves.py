"""First-token times of a bench run, wave by wave.

    python bench/h200/waves.py OUTDIR/TAG.requests.jsonl[.gz] [--concurrency 32] [--gap-ms 20]

At high concurrency with fixed-length outputs, every request of a wave finishes in the same
step and the client sends the next ones together, so their first tokens are correlated: a TTFT
percentile over 128 requests then rests on a handful of waves. This groups each server's
requests (from `sglang_dflash.bench --save-requests`, which records the wall-clock send time)
into waves, requests sent less than `--gap-ms` after the previous one, and prints per wave its
size and TTFT min / median / max, then per server the median over waves of the wave medians.
"""

from __future__ import annotations

import argparse
import gzip
import json
import statistics
from collections import defaultdict


def read_requests(path: str) -> list[dict]:
    """Every row of a TAG.requests.jsonl, or of its .gz as bench/results keeps it."""
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rt") as f:
        return [json.loads(line) for line in f]


def waves(rows: list[dict], gap_s: float) -> list[list[dict]]:
    """Rows of one server and level, sorted by send time, cut where the gap exceeds gap_s."""
    out: list[list[dict]] = []
    last = None
    for r in sorted(rows, key=lambda r: r["sent_at"]):
        if last is None or r["sent_at"] - last > gap_s:
            out.append([])
        out[-1].append(r)
        last = r["sent_at"]
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("requests", help="TAG.requests.jsonl from sglang_dflash.bench --save-requests")
    ap.add_argument("--concurrency", type=int, help="only this level (default: every level)")
    ap.add_argument("--gap-ms", type=float, default=20.0)
    a = ap.parse_args(argv)
    groups: dict[tuple[str, int], list[dict]] = defaultdict(list)
    for r in read_requests(a.requests):
        if r.get("ok") and r.get("ttft") is not None and r.get("sent_at") is not None:
            if a.concurrency is None or r["concurrency"] == a.concurrency:
                groups[(r["server"], r["concurrency"])].append(r)
    if not groups:
        raise SystemExit(f"error: {a.requests}: no successful requests with a send time "
                         "(written by sglang_dflash.bench --save-requests since it records sent_at)")
    summary = []
    for (server, c), rows in sorted(groups.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        medians = []
        print(f"## {server}, c={c}: {len(rows)} requests")
        for i, w in enumerate(waves(rows, a.gap_ms / 1e3)):
            t = sorted(1e3 * r["ttft"] for r in w)
            medians.append(statistics.median(t))
            print(f"  wave {i:2d}: {len(w):3d} requests, TTFT min {t[0]:7.1f}  median {medians[-1]:7.1f}  "
                  f"max {t[-1]:7.1f} ms")
        summary.append((server, c, len(medians), statistics.median(medians)))
    print("\n| server | c | waves | median of wave-median TTFT ms |\n|---|---:|---:|---:|")
    for server, c, n, m in summary:
        print(f"| {server} | {c} | {n} | {m:.1f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
