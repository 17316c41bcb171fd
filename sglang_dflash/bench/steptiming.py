"""Read the per-step time split that ``SGLANG_DFLASH_STEP_TIMING=N`` makes our worker log.

Usage: python -m sglang_dflash.bench.steptiming SERVER_LOG [...] [--out split.json]

Each report line covers N decode steps; the table groups the reports by the mean batch size
they saw (c=1 runs report batch 1.0), and averages them weighted by their step counts.
"""

from __future__ import annotations

import argparse
import json
import re
import sys

from ..sglang.step_timing import PHASES

_LINE = re.compile(r"sglang-dflash step timing \((?P<steps>\d+) steps, mean batch (?P<batch>[\d.]+)\): "
                   r"(?P<phases>.*?) \| phases (?P<gpu>[\d.]+) ms, step (?P<step>[\d.]+|nan) ms")
_PHASE = re.compile(r"(\w+) ([\d.]+) ms")


def parse(text: str) -> list[dict]:
    """Every report line in a server log -> {steps, batch, <phase>..., phases, step} (ms)."""
    out = []
    for m in _LINE.finditer(text):
        row = {"steps": int(m["steps"]), "batch": float(m["batch"]),
               "phases": float(m["gpu"]), "step": float(m["step"])}
        row.update({name: float(ms) for name, ms in _PHASE.findall(m["phases"])})
        missing = [p for p in PHASES if p not in row]
        if missing:
            raise ValueError(f"step timing line without phases {missing}: {m.group(0)!r}")
        out.append(row)
    return out


def by_batch(rows: list[dict]) -> dict[str, dict]:
    """Step-weighted means per (rounded) mean batch size."""
    groups: dict[str, list[dict]] = {}
    for r in rows:
        groups.setdefault(f"{r['batch']:.0f}", []).append(r)
    table = {}
    for key, rs in sorted(groups.items(), key=lambda kv: float(kv[0])):
        n = sum(r["steps"] for r in rs)
        mean = {k: round(sum(r[k] * r["steps"] for r in rs) / n, 4)
                for k in (*PHASES, "phases", "step")}
        mean["host_and_scheduler"] = round(mean["step"] - mean["phases"], 4)
        table[key] = dict(mean, steps=n, reports=len(rs))
    return table


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m sglang_dflash.bench.steptiming", description=__doc__)
    ap.add_argument("logs", nargs="+")
    ap.add_argument("--out")
    a = ap.parse_args(argv)
    result = {}
    for path in a.logs:
        with open(path, errors="replace") as f:
            result[path] = by_batch(parse(f.read()))
    text = json.dumps(result, indent=2)
    if a.out:
        with open(a.out, "w") as f:
            f.write(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
