"""How sure is an "ours / built-in" throughput ratio? A bootstrap over the waves of a bench run.

    python bench/h200/ratio_ci.py RUN/TAG.requests.jsonl[.gz] [MORE ...] [--pair ours:builtin]
        [--resamples 4000] [--seed 0] [--json OUT]

A table cell's throughput is its output tokens over its wall time, and at concurrency c the
wall time is a sum of waves (c requests sent together, all done together with fixed-length
outputs; at c=1 every request is a wave). Waves differ by tens of milliseconds of first token
on a host-bound prefill, so the ratio of two servers carries the noise of a few dozen waves.
This regroups every server's requests into waves (bench/h200/waves.py), estimates each
server's throughput as tokens over summed wave time, and resamples the waves of the two
servers independently: the 2.5% and 97.5% quantiles of the resampled ratios are the interval
printed, with the share of resamples where ours is at least as fast. Several files (runs of
the same command) are pooled wave by wave.

Resampling the two servers independently ignores that the bench interleaves them, so drifts
of the host that both saw count as noise: the interval is on the wide side.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from waves import read_requests, waves  # noqa: E402

GAP_S = 0.020  # requests sent within 20 ms of the previous one belong to its wave


@dataclass(frozen=True)
class Wave:
    tokens: int      # output tokens of the wave's requests
    seconds: float   # first send to last finish


def read_rows(paths: list[str]) -> list[dict]:
    return [{**r, "run": i} for i, path in enumerate(paths) for r in read_requests(path)
            if r.get("ok") and r.get("sent_at") is not None and r.get("latency") is not None]


def cell_waves(rows: list[dict]) -> dict[tuple[str, int], list[Wave]]:
    """(server, concurrency) -> its waves, pooled over runs (waves never span two runs)."""
    groups: dict[tuple[str, int, int], list[dict]] = defaultdict(list)
    for r in rows:
        groups[(r["server"], r["concurrency"], r["run"])].append(r)
    out: dict[tuple[str, int], list[Wave]] = defaultdict(list)
    for (server, c, _), rs in groups.items():
        for w in waves(rs, GAP_S):
            start = min(r["sent_at"] for r in w)
            end = max(r["sent_at"] + r["latency"] for r in w)
            out[(server, c)].append(Wave(sum(int(r["output_tokens"]) for r in w), end - start))
    return out


def throughput(ws: list[Wave]) -> float:
    return sum(w.tokens for w in ws) / sum(w.seconds for w in ws)


def ratio_interval(ours: list[Wave], base: list[Wave], resamples: int, rng: random.Random
                   ) -> dict:
    """Point ratio, 95% bootstrap interval and the share of resamples with ratio >= 1."""
    ratios = sorted(throughput(rng.choices(ours, k=len(ours))) /
                    throughput(rng.choices(base, k=len(base))) for _ in range(resamples))
    return {"ratio": throughput(ours) / throughput(base),
            "low": ratios[int(0.025 * resamples)], "high": ratios[int(0.975 * resamples) - 1],
            "p_at_least_1": sum(r >= 1.0 for r in ratios) / resamples,
            "waves": [len(ours), len(base)]}


def compare(cells: dict[tuple[str, int], list[Wave]], ours_prefix: str, base_prefix: str,
            resamples: int, seed: int) -> list[dict]:
    """Every (suffix, concurrency) that both ``ours_prefix+suffix`` and ``base_prefix+suffix``
    served, e.g. ours_acc6.44 against builtin_acc6.44."""
    rng = random.Random(seed)
    out = []
    for (server, c) in sorted(cells, key=lambda k: (k[0], k[1])):
        if not server.startswith(ours_prefix):
            continue
        suffix = server[len(ours_prefix):]
        base = cells.get((base_prefix + suffix, c))
        if base is None:
            continue
        out.append({"cell": suffix, "concurrency": c,
                    **ratio_interval(cells[(server, c)], base, resamples, rng)})
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("requests", nargs="+", help="TAG.requests.jsonl[.gz] of sglang_dflash.bench")
    ap.add_argument("--pair", default="ours_:builtin_", help="server name prefixes, ours:base")
    ap.add_argument("--resamples", type=int, default=4000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", help="also write the rows here")
    a = ap.parse_args(argv)
    ours, _, base = a.pair.partition(":")
    if not ours or not base:
        raise SystemExit(f"error: --pair: expected OURS_PREFIX:BASE_PREFIX, got {a.pair!r}")
    cells = cell_waves(read_rows(a.requests))
    rows = compare(cells, ours, base, a.resamples, a.seed)
    if not rows:
        raise SystemExit(f"error: no cell served by both {ours}* and {base}* in {a.requests}")
    print("| cell | c | waves (ours / base) | ratio | 95% interval | share >= 1 |\n"
          "|---|---:|---:|---:|---|---:|")
    for r in rows:
        print(f"| {r['cell']} | {r['concurrency']} | {r['waves'][0]} / {r['waves'][1]} | "
              f"{r['ratio']:.3f} | {r['low']:.3f} - {r['high']:.3f} | {r['p_at_least_1']:.2f} |")
    if a.json:
        Path(a.json).write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
