"""bench/h200/waves.py: a bench run's requests grouped into the waves of one concurrency level."""
import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("waves", ROOT / "bench/h200/waves.py")
waves = importlib.util.module_from_spec(spec)
spec.loader.exec_module(waves)


def rows(server, sends_and_ttfts, c=4):
    return [{"server": server, "concurrency": c, "ok": True, "sent_at": t, "ttft": f}
            for t, f in sends_and_ttfts]


def test_requests_sent_close_together_form_one_wave():
    r = rows("a", [(10.0, 0.1), (10.005, 0.2), (10.012, 0.3), (12.0, 0.1), (12.001, 0.1), (14.5, 0.4)])
    got = waves.waves(list(reversed(r)), gap_s=0.02)
    assert [len(w) for w in got] == [3, 2, 1]
    assert [x["sent_at"] for x in got[0]] == [10.0, 10.005, 10.012]


def test_cli_prints_wave_medians_per_server(tmp_path, capsys):
    f = tmp_path / "run.requests.jsonl"
    data = rows("ours", [(1.0, 0.10), (1.001, 0.30), (1.002, 0.20), (5.0, 0.05), (5.001, 0.07)]) \
        + rows("builtin", [(2.0, 0.01), (2.001, 0.02)]) + rows("ours", [(9.0, 9.9)], c=1) \
        + [{"server": "ours", "concurrency": 4, "ok": False, "sent_at": 3.0, "ttft": None}]
    f.write_text("".join(json.dumps(d) + "\n" for d in data))
    assert waves.main([str(f), "--concurrency", "4"]) == 0
    out = capsys.readouterr().out
    assert "| ours | 4 | 2 | 130.0 |" in out            # wave medians 200 and 60 ms
    assert "| builtin | 4 | 1 | 15.0 |" in out and "9900" not in out
    with pytest.raises(SystemExit, match="no successful requests with a send time"):
        waves.main([str(f), "--concurrency", "8"])
