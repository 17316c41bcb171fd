"""A whole sweep and its reports, against a loopback server and a dead URL."""

import json
from dataclasses import replace

import pytest

from fake_openai_server import FakeServer
from sglang_dflash.bench import report as rep
from sglang_dflash.bench.cli import main
from sglang_dflash.bench.client import RequestSpec
from sglang_dflash.bench.runner import Workload, probe, requests_for_level, run_level, served_model_name
from sglang_dflash.bench.sweep import Target, run_sweep


@pytest.fixture(scope="module")
def server():
    with FakeServer(accept=4, slow_s=2.0) as s:
        yield s


def _work(texts, n=12, **kw):
    specs = tuple(RequestSpec(text=t, messages=[{"role": "user", "content": t}], max_tokens=n)
                  for t in texts)
    return Workload(specs=specs, progress=False, warmup=1, **kw)


def test_requests_per_level_default():
    assert requests_for_level(1, None, 10) == 10
    assert requests_for_level(32, None, 10) == 128
    assert requests_for_level(8, 5, 100) == 5
    assert requests_for_level(32, None, 10, min_waves=16) == 512


def test_probe_and_model_name(server):
    assert probe(server.url) is None
    assert "Connection refused" in probe("http://127.0.0.1:9", timeout=1)
    assert served_model_name(server.url) == "fake-model"
    assert served_model_name("http://127.0.0.1:9", timeout=1) is None


def test_warm_up_rounds_run_the_level_batch_size_before_counting():
    """--warmup N: N rounds of `concurrency` short requests in flight together, then the level."""
    with FakeServer(accept=4, slow_s=0.4) as fake:
        work = _work(["a [slow]", "b [slow]", "c [slow]"], n=40, timeout=5)
        stats, _ = run_level("fake", fake.url, replace(work, warmup=2), concurrency=3, num_requests=3)
        sent = fake.requests
    assert stats.completed == 3
    tokens = [r["sampling_params"]["max_new_tokens"] for r in sent]
    assert tokens == [16] * 6 + [40] * 3
    for k in (0, 3):  # each warm-up round: its 3 requests arrive together, not one slow reply apart
        arrivals = [r["_arrived"] for r in sent[k: k + 3]]
        assert max(arrivals) - min(arrivals) < 0.3
    assert sent[3]["_arrived"] - sent[0]["_arrived"] >= 0.35  # round 2 starts after round 1 ends


def test_sweep_counts_failures_and_never_raises(server):
    work = _work(["a b", "c d e", "f [500]", "g [slow]"], timeout=0.5)
    servers, levels = run_sweep(
        [Target("fake", url=server.url), Target("dead", url="http://127.0.0.1:9")],
        work, concurrencies=[1, 4], num_requests=8)
    assert [s["name"] for s in servers] == ["fake", "dead"]
    assert "error" in servers[1] and "error" not in servers[0]
    assert servers[0]["server_info"] == {"version": "0.5.17", "attention_backend": "fa3",
                                         "tp_size": 1, "speculative_algorithm": "DFLASH",
                                         "speculative_num_draft_tokens": 16,
                                         "avg_spec_accept_length": 2.5}
    assert servers[0]["server_avg_spec_accept_length"] == 2.5
    assert [(lv.server, lv.concurrency) for lv in levels] == [
        ("fake", 1), ("fake", 4), ("dead", 1), ("dead", 4)]
    for lv in levels[:2]:
        assert (lv.num_requests, lv.completed, lv.failed) == (8, 4, 4)
        assert lv.errors == {"http_500": 2, "timeout": 2}
        assert lv.output_tokens == 4 * 12
        assert lv.accept_len_mean == pytest.approx(4.0)       # 12 tokens in 3 steps of 4
        assert lv.ttft_ms["n"] == 4 and lv.itl_ms["n"] == 4 * 2
    assert levels[3].errors == {"unreachable": 8} and levels[3].completed == 0


def _report(levels, servers):
    return {
        "environment": {"gpus": [{"name": "H200"}], "cpu": "cpu", "date": "2026-01-01",
                        "versions": {"sglang": "0.5.17"}, "sglang_dflash_commit": "abc"},
        "workload": {"prompts": "mix", "num_prompts": 3, "api": "generate", "max_tokens": 12,
                     "ignore_eos": True, "temperature": 0.0},
        "servers": servers,
        "results": [lv.to_dict() for lv in levels],
    }


def test_markdown_has_speedup_against_baseline(server):
    work = _work(["a b"], timeout=5)
    targets = [Target("baseline", url=server.url), Target("ours", url=server.url)]
    servers, levels = run_sweep(targets, work, [1], num_requests=2)
    levels[1].output_throughput = 2 * levels[0].output_throughput
    table = rep.markdown_table(_report(levels, servers))
    lines = table.strip().splitlines()
    assert lines[0].startswith("| server | conc.")
    assert lines[2].startswith("| baseline | 1 | 2 / 0 |") and lines[2].endswith("| 1.00x |")
    assert lines[3].endswith("| 4.00 | 2.00x |")


def test_cli_end_to_end_writes_json_markdown_png(server, tmp_path):
    prompts = tmp_path / "p.txt"
    prompts.write_text("one two\nthree four five\nsix [500]\n")
    out = tmp_path / "out"
    rc = main(["--url", f"fake={server.url}", "--url", "dead=http://127.0.0.1:9",
               "--prompts", str(prompts), "--raw-prompts", "--concurrency", "1,2",
               "--max-tokens", "9", "--num-requests", "6", "--warmup", "0",
               "--out", str(out), "--no-progress", "--tag", "run", "--save-requests"])
    assert rc == 1                                      # the dead server completed nothing
    data = json.loads((out / "run.json").read_text())
    assert data["schema"] == "sglang-dflash-bench/1"
    env = data["environment"]
    assert {"gpus", "cpu", "versions", "date", "python"} <= env.keys()
    assert {"sglang", "torch", "sglang-dflash"} <= env["versions"].keys()
    assert data["flags"]["max_tokens"] == 9 and data["flags"]["concurrency"] == "1,2"
    assert data["workload"]["ignore_eos"] is True and data["workload"]["chat_template"] == "none"
    fake = [r for r in data["results"] if r["server"] == "fake"]
    assert [(r["completed"], r["failed"]) for r in fake] == [(4, 2), (4, 2)]
    assert all(r["accept_len_mean"] == pytest.approx(3.0) for r in fake)   # 9 tokens / 3 steps
    rows = [json.loads(line) for line in (out / "run.requests.jsonl").read_text().splitlines()]
    assert len(rows) == 12 and {r["server"] for r in rows} == {"fake"}      # dead: none sent
    assert sum(r["ok"] for r in rows) == 8 and all(r["verify_ct"] == 3 for r in rows if r["ok"])
    sent = [r["sent_at"] for r in rows]  # wall-clock send times, to line up waves with server logs
    assert all(isinstance(t, float) and t > 1.7e9 for t in sent) and max(sent) - min(sent) < 60
    md = (out / "run.md").read_text()
    assert "- fake: sglang 0.5.17, attention fa3, DFLASH B=16, tp 1" in md
    assert "| fake | 2 | 4 / 2 |" in md and "unreachable x6" in md and "http_500 x2" in md
    pytest.importorskip("matplotlib")
    png = out / "run.png"
    assert png.exists() and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cli_chat_api_picks_model_name(server, tmp_path):
    rc = main(["--url", server.url, "--api", "chat", "--prompts", "gsm", "--num-prompts", "2",
               "--concurrency", "2", "--max-tokens", "5", "--warmup", "0",
               "--out", str(tmp_path), "--no-progress",
               "--chat-template-kwargs", '{"enable_thinking": false}'])
    assert rc == 0
    sent = server.requests[-1]
    assert sent["model"] == "fake-model"
    assert sent["chat_template_kwargs"] == {"enable_thinking": False}
    data = json.loads((tmp_path / "bench.json").read_text())
    assert data["workload"]["chat_template"] == "server"
    assert data["results"][0]["accept_len_mean"] is None      # streamed chat: no meta_info


def test_cli_rejects_bad_input(tmp_path):
    with pytest.raises(SystemExit, match="--url or --launch"):
        main(["--out", str(tmp_path)])
    with pytest.raises(SystemExit, match="unknown configuration"):
        main(["--launch", "turbo", "--model", "m", "--out", str(tmp_path)])
    with pytest.raises(SystemExit, match="neither a file nor a named set"):
        main(["--url", "http://127.0.0.1:9", "--prompts", "nope", "--out", str(tmp_path)])


def test_rounds_let_running_servers_take_turns():
    """--rounds 3: each level in three parts, servers alternating A B, B A, A B; each server
    still gets every prompt once, in order, and the warm-up only before its first part."""
    from sglang_dflash.bench.sweep import run_interleaved

    with FakeServer(accept=4) as a, FakeServer(accept=4) as b:
        work = _work([f"p{i}" for i in range(6)], n=40)
        servers, levels = run_interleaved(
            [Target("A", url=a.url), Target("B", url=b.url), Target("dead", url="http://127.0.0.1:9")],
            work, concurrencies=[1], num_requests=6, rounds=3)
        log = sorted([(r["_arrived"], "A", r) for r in a.requests] + [(r["_arrived"], "B", r) for r in b.requests],
                     key=lambda x: x[0])
    timed = [(who, r["text"]) for _, who, r in log if r["sampling_params"]["max_new_tokens"] == 40]
    assert [who for who, _ in timed] == list("AABBBBAAAABB")
    for who in "AB":
        assert [t for w, t in timed if w == who] == [f"p{i}" for i in range(6)]
    warm = [who for _, who, r in log if r["sampling_params"]["max_new_tokens"] != 40]
    assert warm == ["A", "B"]  # warmup=1, concurrency 1: one short request each, before part 1
    by = {s.server: s for s in levels}
    assert by["A"].completed == by["B"].completed == 6 and by["A"].duration_s > 0
    assert by["dead"].errors == {"unreachable": 6} and "error" in servers[2]


def test_rounds_refuse_launched_servers(tmp_path):
    with pytest.raises(SystemExit, match="--rounds > 1 interleaves running servers"):
        main(["--launch", "baseline", "--model", "x", "--rounds", "2", "--out", str(tmp_path)])


def test_min_waves_sets_the_requests_of_high_concurrency_levels(tmp_path):
    """--min-waves W: a level gets at least W x concurrency requests (so TTFT rests on W waves)."""
    from dataclasses import replace

    from sglang_dflash.bench.sweep import run_interleaved

    with FakeServer(accept=4) as a:
        work = replace(_work(["p0", "p1"], n=8), warmup=0, min_waves=3)
        _, levels = run_interleaved([Target("A", url=a.url)], work, concurrencies=[1, 2], rounds=2)
    # c=1: 3 requests -> 4 (two parts of whole waves); c=2: 6 -> 8 (two parts of two waves)
    assert [(s.concurrency, s.completed) for s in levels] == [(1, 4), (2, 8)]
    with pytest.raises(SystemExit, match="--min-waves must be >= 1, got 0"):
        main(["--url", "a=http://127.0.0.1:9", "--model", "x", "--min-waves", "0", "--out", str(tmp_path)])
