"""Aggregation of timed requests into the numbers a sweep reports.

Definitions (all per concurrency level, successful requests only unless said otherwise):

* output throughput  = sum of output tokens / wall time of the level (first send to last reply)
* request throughput = completed requests / wall time
* TTFT               = send -> first chunk carrying output
* ITL                = gap between consecutive chunks that carry output, as a client sees it.
                       A speculative server emits several tokens per step, so one gap can cover
                       several tokens; TPOT below spreads them out.
* TPOT               = per request, (latency - TTFT) / (output tokens - 1)
* acceptance length  = per request, output tokens / target verify steps (bonus included);
                       ``accept_len_mean`` averages it over requests (how z-lab's benchmark reports
                       it), ``accept_len_pooled`` is sum(tokens) / sum(steps).
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import asdict, dataclass, field

from .client import RequestResult


def percentile(values: list[float], q: float) -> float | None:
    """``q``-th percentile (0..100), linear between closest ranks (numpy's default method)."""
    if not values:
        return None
    xs = sorted(values)
    pos = (len(xs) - 1) * q / 100.0
    lo = math.floor(pos)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def describe(values: list[float], scale: float = 1.0) -> dict:
    """mean / p50 / p90 / p99 / max of ``values`` times ``scale`` (None when empty)."""
    vals = [v * scale for v in values]
    out = {"n": len(vals), "mean": sum(vals) / len(vals) if vals else None}
    for q in (50, 90, 99):
        out[f"p{q}"] = percentile(vals, q)
    out["max"] = max(vals) if vals else None
    return out


@dataclass
class LevelStats:
    """One (server, concurrency) cell of a sweep."""

    server: str
    concurrency: int
    num_requests: int
    completed: int
    failed: int
    errors: dict[str, int]
    error_examples: dict[str, str]
    duration_s: float
    output_tokens: int
    output_throughput: float | None     # tokens / s
    request_throughput: float | None    # requests / s
    ttft_ms: dict
    itl_ms: dict
    tpot_ms: dict
    latency_s: dict
    accept_len_mean: float | None
    accept_len_pooled: float | None
    accept_samples: int
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


def aggregate(
    server: str, concurrency: int, results: list[RequestResult], duration_s: float
) -> LevelStats:
    ok = [r for r in results if r.ok]
    bad = [r for r in results if not r.ok]
    errors = Counter(r.error or "unknown" for r in bad)
    examples: dict[str, str] = {}
    for r in bad:
        examples.setdefault(r.error or "unknown", r.detail[:300])

    tokens = sum(r.output_tokens for r in ok)
    itl = [b - a for r in ok for a, b in zip(r.chunk_times, r.chunk_times[1:], strict=False)]
    tpot = [
        (r.latency - r.ttft) / (r.output_tokens - 1)
        for r in ok
        if r.latency is not None and r.ttft is not None and r.output_tokens > 1
    ]
    spec = [r for r in ok if r.verify_ct]
    accept_mean = sum(r.accept_len for r in spec) / len(spec) if spec else None
    accept_pooled = (
        sum(r.output_tokens for r in spec) / sum(r.verify_ct for r in spec) if spec else None
    )
    rate = (lambda x: x / duration_s) if duration_s > 0 else (lambda x: None)
    return LevelStats(
        server=server,
        concurrency=concurrency,
        num_requests=len(results),
        completed=len(ok),
        failed=len(bad),
        errors=dict(errors),
        error_examples=examples,
        duration_s=duration_s,
        output_tokens=tokens,
        output_throughput=rate(tokens) if ok else None,
        request_throughput=rate(len(ok)) if ok else None,
        ttft_ms=describe([r.ttft for r in ok if r.ttft is not None], 1e3),
        itl_ms=describe(itl, 1e3),
        tpot_ms=describe(tpot, 1e3),
        latency_s=describe([r.latency for r in ok if r.latency is not None]),
        accept_len_mean=accept_mean,
        accept_len_pooled=accept_pooled,
        accept_samples=len(spec),
    )


def unreachable(server: str, concurrency: int, num_requests: int, reason: str) -> LevelStats:
    """A level that was never run because the server could not be reached or started."""
    stats = aggregate(server, concurrency, [], 0.0)
    stats.num_requests = stats.failed = num_requests
    stats.errors = {"unreachable": num_requests}
    stats.error_examples = {"unreachable": reason[:2000]}
    return stats
