"""bench/h200/gpu_idle.py: GPU idle time per step from a GPU-only profiler trace."""
import gzip
import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("gpu_idle", ROOT / "bench/h200/gpu_idle.py")
gpu_idle = importlib.util.module_from_spec(spec)
spec.loader.exec_module(gpu_idle)

STEP = "ReduceOp<c10::BFloat16, at::native::ArgMaxOps<float>>"


def k(name, ts, dur, cat="kernel"):
    return {"ph": "X", "cat": cat, "name": name, "ts": ts, "dur": dur}


def test_idle_gaps_inside_bursts_counted_once_and_keyed_by_neighbours():
    events = [
        # burst 1: two steps; 10 us gap a->b, overlapping kernels on two streams, 5 us gap
        k("a", 0, 100), k("b", 110, 50), k("c", 120, 100),   # c overlaps b: busy 110..220
        k(STEP, 225, 10),                                     # 5 us gap c -> argmax
        k("a", 300, 40), k(STEP, 340, 20),                    # 65 us gap argmax -> a
        # burst 2 (starts 1 s later): one step, no gaps
        k("a", 1_000_000, 30), k(STEP, 1_000_030, 10, cat="gpu_memcpy"),
        {"ph": "X", "cat": "cuda_runtime", "name": "cudaLaunchKernel", "ts": 50, "dur": 500},
    ]
    res = gpu_idle.analyze(events, step_kernel=STEP, burst_gap_ms=20.0, min_gap_us=3.0)
    assert res["bursts"] == 2
    assert res["wall_ms"] == pytest.approx((360 + 40) / 1e3)
    assert res["busy_ms"] == pytest.approx((100 + 110 + 10 + 60 + 40) / 1e3)
    assert res["idle_ms"] == pytest.approx((10 + 5 + 65) / 1e3)
    assert res["steps"] == 3
    assert res["per_step_ms"]["idle"] == pytest.approx(80 / 1e3 / 3)
    gaps = {g["between"]: (round(g["ms"] * 1e3), g["count"]) for g in res["top_gaps"]}
    assert gaps == {f"{STEP[:42]}... -> a": (65, 1), "a -> b": (10, 1), f"c -> {STEP[:42]}...": (5, 1)}
    assert res["top_kernels"][0]["name"] == "a" and res["top_kernels"][0]["count"] == 3


def test_trace_without_gpu_events_is_an_error(tmp_path):
    path = tmp_path / "t.trace.json.gz"
    with gzip.open(path, "wt") as f:
        json.dump({"traceEvents": [{"ph": "X", "cat": "cpu_op", "name": "x", "ts": 0, "dur": 1}]}, f)
    with pytest.raises(ValueError, match="no GPU events"):
        gpu_idle.analyze(gpu_idle.load_trace(str(path)))


def test_cli_analyze_prints_the_per_step_row(tmp_path, capsys):
    path = tmp_path / "t.trace.json"
    path.write_text(json.dumps({"traceEvents": [k("a", 0, 10), k(STEP, 20, 10)]}))
    assert gpu_idle.main(["--analyze", str(path), "--step-kernel", STEP]) == 0
    out = capsys.readouterr().out
    assert "| - | - | 1 | 0.030 | 0.020 | 0.010 | 33.33 |" in out


def test_only_must_name_given_servers(tmp_path):
    with pytest.raises(SystemExit):
        gpu_idle.main(["--url", "a=http://127.0.0.1:9", "--out", str(tmp_path), "--only", "b"])
