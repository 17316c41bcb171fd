"""Read the per-step time split that ``SGLANG_DFLASH_STEP_TIMING=N`` makes our worker log.

Usage: python -m sglang_dflash.bench.steptiming SERVER_LOG [...] [--out split.json]

Each report line covers N decode steps; the table groups the reports by the mean batch size
they saw (c=1 runs report batch 1.0), and averages them weighted by their step counts. Prefill
lines (same variable) are averaged over all prefills, under the key "prefill".
"""

from __future__ import annotations

import argparse
import json
import re
import sys

from ..sglang.step_timing import PHASES, PREFILL_PHASES

_LINE = re.compile(r"sglang-dflash step timing \((?P<steps>\d+) steps, mean batch (?P<batch>[\d.]+)\): "
                   r"(?P<phases>.*?) \| phases (?P<gpu>[\d.]+) ms, step (?P<step>[\d.]+|nan) ms"
                   r"(?:, host\+scheduler \S+ ms, launch (?P<launch>[\d.]+) ms)?"
                   r"(?:, launch max (?P<launch_max>[\d.]+) ms, eager steps (?P<eager>\d+))?")
_PREFILL = re.compile(r"sglang-dflash prefill timing \((?P<n>\d+) prefills, mean (?P<tokens>[\d.]+) tokens\): "
                      r"(?P<phases>.*?) \| launch (?P<launch>[\d.]+) ms")
_PHASE = re.compile(r"(\w+) ([\d.]+) ms")


def _rows(pattern: re.Pattern, text: str, phases: tuple, what: str, fields: dict) -> list[dict]:
    """Each match of `pattern` -> a row of `fields` ({key: (group, type)}, absent groups left
    out) and the per-phase ms; a line missing one of `phases` is an error."""
    out = []
    for m in pattern.finditer(text):
        row = {key: kind(m[group]) for key, (group, kind) in fields.items() if m[group] is not None}
        row.update({name: float(ms) for name, ms in _PHASE.findall(m["phases"])})
        missing = [p for p in phases if p not in row]
        if missing:
            raise ValueError(f"{what} timing line without phases {missing}: {m.group(0)!r}")
        out.append(row)
    return out


def parse(text: str) -> list[dict]:
    """Every step report line in a server log -> {steps, batch, <phase>..., phases, step,
    launch, launch_max, eager} (ms; logs written before a field was added lack it)."""
    return _rows(_LINE, text, PHASES, "step", {
        "steps": ("steps", int), "batch": ("batch", float), "phases": ("gpu", float),
        "step": ("step", float), "launch": ("launch", float), "launch_max": ("launch_max", float),
        "eager": ("eager", int)})


def parse_prefills(text: str) -> list[dict]:
    """Every prefill line -> {prefills, tokens, target, context_kv, launch} (ms)."""
    return _rows(_PREFILL, text, PREFILL_PHASES, "prefill", {
        "prefills": ("n", int), "tokens": ("tokens", float), "launch": ("launch", float)})


def prefill_mean(rows: list[dict]) -> dict | None:
    """Means over all prefills (each line weighted by its prefill count)."""
    n = sum(r["prefills"] for r in rows)
    if not n:
        return None
    mean = {k: round(sum(r[k] * r["prefills"] for r in rows) / n, 4)
            for k in (*PREFILL_PHASES, "tokens", "launch")}
    return dict(mean, prefills=n, reports=len(rows))


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
        if all("launch" in r for r in rs):
            mean["launch"] = round(sum(r["launch"] * r["steps"] for r in rs) / n, 4)
        if all("eager" in r for r in rs):
            mean["launch_max"] = max(r["launch_max"] for r in rs)
            mean["eager_steps"] = sum(r["eager"] for r in rs)
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
            text = f.read()
        result[path] = by_batch(parse(text))
        prefill = prefill_mean(parse_prefills(text))
        if prefill is not None:
            result[path]["prefill"] = prefill
    text = json.dumps(result, indent=2)
    if a.out:
        with open(a.out, "w") as f:
            f.write(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
