"""Aggregation rules, checked against values worked out by hand."""

import pytest

from sglang_dflash.bench.client import RequestResult
from sglang_dflash.bench.stats import aggregate, describe, percentile, unreachable


def test_percentile_linear_between_ranks():
    xs = [15, 20, 35, 40, 50]
    assert percentile(xs, 0) == 15 and percentile(xs, 100) == 50
    assert percentile(xs, 50) == 35
    # pos = 4 * 0.40 = 1.6 -> 20 + 0.6 * (35 - 20) = 29
    assert percentile(xs, 40) == pytest.approx(29.0)
    # pos = 4 * 0.99 = 3.96 -> 40 + 0.96 * 10 = 49.6
    assert percentile(list(reversed(xs)), 99) == pytest.approx(49.6)
    assert percentile([7.0], 99) == 7.0
    assert percentile([], 50) is None


def test_describe_scales_and_handles_empty():
    d = describe([0.001, 0.003], scale=1e3)
    assert d["n"] == 2 and d["mean"] == pytest.approx(2.0) and d["p50"] == pytest.approx(2.0)
    assert d["p99"] == pytest.approx(1 + 0.99 * 2) and d["max"] == pytest.approx(3.0)
    assert describe([]) == {"n": 0, "mean": None, "p50": None, "p90": None, "p99": None,
                            "max": None}


def _ok(ttft, chunks, latency, tokens, verify=None):
    return RequestResult(ok=True, ttft=ttft, chunk_times=chunks, latency=latency,
                         output_tokens=tokens, verify_ct=verify)


def test_aggregate_by_hand():
    results = [
        # 10 tokens in 4 verify steps: accept 2.5; gaps 0.1, 0.1, 0.2; TPOT (0.5-0.1)/9
        _ok(0.1, [0.1, 0.2, 0.3, 0.5], 0.5, 10, verify=4),
        # 6 tokens in 2 verify steps: accept 3.0; gap 0.4; TPOT (0.6-0.2)/5
        _ok(0.2, [0.2, 0.6], 0.6, 6, verify=2),
        RequestResult(ok=False, error="timeout", detail="slow"),
        RequestResult(ok=False, error="http_500", detail="boom"),
        RequestResult(ok=False, error="timeout", detail="slow again"),
    ]
    s = aggregate("ours", 8, results, duration_s=2.0)
    assert (s.num_requests, s.completed, s.failed) == (5, 2, 3)
    assert s.errors == {"timeout": 2, "http_500": 1}
    assert s.error_examples["timeout"] == "slow"
    assert s.output_tokens == 16
    assert s.output_throughput == pytest.approx(8.0)         # 16 tokens / 2 s
    assert s.request_throughput == pytest.approx(1.0)        # 2 requests / 2 s
    assert s.ttft_ms["mean"] == pytest.approx(150.0)
    # gaps in ms: 100, 100, 200, 400 -> sorted; p50 = (100 + 200) / 2
    assert s.itl_ms["n"] == 4 and s.itl_ms["p50"] == pytest.approx(150.0)
    assert s.itl_ms["p99"] == pytest.approx(200 + 0.97 * 200)
    assert s.tpot_ms["p50"] == pytest.approx((400 / 9 + 400 / 5) / 2)
    assert s.accept_len_mean == pytest.approx((2.5 + 3.0) / 2)    # z-lab: mean over requests
    assert s.accept_len_pooled == pytest.approx(16 / 6)           # sum tokens / sum steps
    assert s.accept_samples == 2


def test_aggregate_without_meta_info_or_successes():
    s = aggregate("baseline", 1, [_ok(0.1, [0.1], 0.1, 1)], 1.0)
    assert s.accept_len_mean is None and s.accept_len_pooled is None
    assert s.tpot_ms["n"] == 0                                   # one token: no TPOT
    empty = aggregate("x", 1, [RequestResult(error="connection")], 1.0)
    assert empty.output_throughput is None and empty.completed == 0
    u = unreachable("dead", 32, 128, "refused")
    assert (u.failed, u.completed, u.errors) == (128, 0, {"unreachable": 128})
