"""bench/h200/ratio_ci.py: a throughput ratio with a bootstrap interval over waves."""
import gzip
import importlib.util
import json
import random
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("ratio_ci", ROOT / "bench/h200/ratio_ci.py")
ratio_ci = importlib.util.module_from_spec(spec)
sys.modules["ratio_ci"] = ratio_ci  # its dataclass looks its module up there
spec.loader.exec_module(ratio_ci)


def run_rows(server, n_waves, c, latency, rng, jitter=0.02, tokens=256, start=0.0):
    """Waves of c requests sent together, one after another; latencies jittered."""
    out, t = [], start
    for _ in range(n_waves):
        lat = [latency * (1 + rng.uniform(-jitter, jitter)) for _ in range(c)]
        out += [{"server": server, "concurrency": c, "ok": True, "sent_at": t + 0.001 * i,
                 "latency": lat[i], "ttft": 0.05, "output_tokens": tokens} for i in range(c)]
        t += max(lat) + 0.05  # the next wave comes after this one, well past the 20 ms gap
    return out


def test_waves_become_tokens_over_wall_time():
    rng = random.Random(0)
    rows = [{**r, "run": 0} for r in run_rows("ours_a", 3, 4, 0.5, rng, jitter=0)]
    cells = ratio_ci.cell_waves(rows)
    ws = cells[("ours_a", 4)]
    assert len(ws) == 3 and all(w.tokens == 4 * 256 for w in ws)
    assert ratio_ci.throughput(ws) == pytest.approx(4 * 256 / (0.5 + 0.003), rel=1e-6)


def test_equal_servers_straddle_one_and_a_real_gap_does_not():
    rng = random.Random(1)
    rows = (run_rows("ours_x", 40, 1, 0.30, rng) + run_rows("builtin_x", 40, 1, 0.30, rng)
            + run_rows("ours_y", 40, 1, 0.30, rng) + run_rows("builtin_y", 40, 1, 0.33, rng))
    rows = [{**r, "run": 0} for r in rows]
    got = {r["cell"]: r for r in ratio_ci.compare(ratio_ci.cell_waves(rows), "ours_", "builtin_",
                                                  2000, seed=0)}
    assert got["x"]["low"] < 1.0 < got["x"]["high"]
    assert got["y"]["ratio"] == pytest.approx(1.1, rel=0.01)
    assert got["y"]["low"] > 1.05 and got["y"]["p_at_least_1"] == 1.0


def test_cli_pools_runs_and_reads_gzip(tmp_path, capsys):
    rng = random.Random(2)
    paths = []
    for i in range(2):
        rows = run_rows("ours_acc1", 5, 8, 2.0, rng) + run_rows("builtin_acc1", 5, 8, 2.0, rng)
        p = tmp_path / f"run{i}.requests.jsonl.gz"
        with gzip.open(p, "wt") as f:
            f.writelines(json.dumps(r) + "\n" for r in rows)
        paths.append(str(p))
    out_json = tmp_path / "ci.json"
    assert ratio_ci.main(paths + ["--resamples", "500", "--json", str(out_json)]) == 0
    assert "| acc1 | 8 | 10 / 10 |" in capsys.readouterr().out  # 5 waves from each run
    assert json.loads(out_json.read_text())[0]["waves"] == [10, 10]
    with pytest.raises(SystemExit, match="no cell served by both"):
        ratio_ci.main(paths + ["--pair", "mine_:theirs_"])
