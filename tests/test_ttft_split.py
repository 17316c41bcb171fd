"""bench/h200/ttft_split.py: a first token split into stages by the server's timestamps."""
import importlib.util
import json
import time
from pathlib import Path

import pytest

from fake_openai_server import FakeServer
from sglang_dflash.bench.client import RequestSpec, send

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("ttft_split", ROOT / "bench/h200/ttft_split.py")
ttft_split = importlib.util.module_from_spec(spec)
spec.loader.exec_module(ttft_split)


def row(server="ours", c=1, sent=100.0, ttft=0.050, stamps=(0.002, 0.005, 0.010, 0.040)):
    keys = ttft_split.NEEDED
    return {"server": server, "concurrency": c, "ok": True, "sent_at": sent, "ttft": ttft,
            "server_times": {k: sent + d for k, d in zip(keys, stamps)}}


def test_stages_add_up_to_the_ttft():
    got = ttft_split.split(row())
    assert got == pytest.approx({"http_in": 2.0, "dispatch": 3.0, "to_batch": 5.0,
                                 "prefill": 30.0, "out": 10.0})
    assert sum(got.values()) == pytest.approx(50.0)


def test_rows_without_timestamps_are_left_out():
    bare = row()
    bare["server_times"] = {}
    assert ttft_split.split(bare) is None
    s = ttft_split.summarize([row(ttft=0.050), row(ttft=0.070), bare])
    assert s["n"] == 2
    assert s["out"]["mean"] == pytest.approx(20.0)      # 10 and 30 ms
    assert s["ttft"]["median"] == pytest.approx(60.0)   # the bare row's TTFT is not counted


def test_cli_table_and_json(tmp_path, capsys):
    f = tmp_path / "run.requests.jsonl"
    rows = [row("ours", stamps=(0.002, 0.005, 0.010, 0.045)), row("builtin")]
    f.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    assert ttft_split.main([str(f), "--json", str(tmp_path / "split.json")]) == 0
    out = capsys.readouterr().out
    assert "| builtin c=1 | 1 |" in out and "| ours c=1 | 1 |" in out
    table = json.loads((tmp_path / "split.json").read_text())
    assert table["ours c=1"]["prefill"]["mean"] == pytest.approx(35.0)
    assert table["builtin c=1"]["prefill"]["mean"] == pytest.approx(30.0)


def test_cli_says_how_to_get_timestamps(tmp_path):
    f = tmp_path / "run.requests.jsonl"
    bare = row()
    bare["server_times"] = {}
    f.write_text(json.dumps(bare) + "\n")
    with pytest.raises(SystemExit, match="--enable-metrics"):
        ttft_split.main([str(f)])


def test_a_real_request_splits_without_negative_stages():
    """The client's clock and the (fake) server's agree: every stage is >= 0."""
    with FakeServer(accept=2, step_s=0.01, metrics=True) as s:
        sent = time.time()                    # as the runner sets sent_at
        res = send(s.url, "generate", RequestSpec(text="a b c", messages=[], max_tokens=4),
                   timeout=5)
    got = ttft_split.split({"sent_at": sent, "ttft": res.ttft, "server_times": res.server_times})
    assert got is not None
    assert all(v >= -1.0 for v in got.values()), got   # ms; allow clock-read jitter
    assert sum(got.values()) == pytest.approx(1e3 * res.ttft, abs=0.01)  # epoch-sized floats
