"""Eval tasks, per-task aggregation by hand, and the server backend on a loopback fake."""

import json

import pytest

from fake_openai_server import FakeServer
from sglang_dflash.eval.backends import ServerBackend, TurnResult
from sglang_dflash.eval.cli import main
from sglang_dflash.eval.evaluate import evaluate, overall, summarize
from sglang_dflash.eval.tasks import DEFAULT_TASKS, load_tasks


def test_default_tasks_are_the_shipped_sets():
    tasks = load_tasks(list(DEFAULT_TASKS), num_prompts=3)
    assert [t.name for t in tasks] == ["gsm", "math", "humaneval", "code", "chat"]
    assert all(len(t.prompts) == 3 for t in tasks)


def test_summarize_by_hand():
    turns = [
        TurnResult(ok=True, output_tokens=12, steps=4, step_accepts=[4, 3, 3, 1]),   # 3.0
        TurnResult(ok=True, output_tokens=10, steps=2, step_accepts=[4, 5]),         # 5.0
        TurnResult(ok=True, output_tokens=5, steps=None),          # server gave no meta_info
        TurnResult(ok=False, error="timeout"),
    ]
    s = summarize("gsm", 3, turns, seconds=1.5)
    assert (s.prompts, s.turns, s.failed, s.errors) == (3, 3, 1, {"timeout": 1})
    assert s.output_tokens == 27 and s.steps == 6
    assert s.accept_len_mean == pytest.approx(4.0)      # mean of 3.0 and 5.0
    assert s.accept_len_pooled == pytest.approx(22 / 6)
    assert s.step_histogram == {1: 1, 3: 2, 4: 2, 5: 1}
    empty = summarize("x", 1, [TurnResult(ok=False, error="http_500")], 0.0)
    assert empty.accept_len_mean is None and empty.steps == 0
    assert overall([s, empty]) == {"accept_len_task_mean": pytest.approx(4.0),
                                   "tasks_with_acceptance": 1}


@pytest.fixture(scope="module")
def server():
    with FakeServer(accept=4) as s:
        yield s


def test_server_backend_plays_every_turn(server):
    backend = ServerBackend(server.url, max_tokens=8, extra_body={"chat_template_kwargs": {}})
    [task] = load_tasks(["chat"], num_prompts=2)
    n0 = len(server.requests)
    [stats] = evaluate([task], backend, concurrency=2, progress=False)
    sent = server.requests[n0:]
    assert len(sent) == 4 and all(r["return_meta_info"] and not r["stream"] for r in sent)
    second = [r for r in sent if len(r["messages"]) == 3]
    assert len(second) == 2 and all(r["messages"][1]["role"] == "assistant" for r in second)
    assert (stats.turns, stats.failed, stats.output_tokens) == (4, 0, 32)
    assert stats.accept_len_mean == pytest.approx(4.0)           # 8 tokens in 2 steps of 4


def test_server_failures_are_counted(server, tmp_path):
    f = tmp_path / "mixed.jsonl"
    rows = [{"prompt": "fine"}, {"prompt": "x [500]"}, {"turns": ["ok first", "then [500]"]},
            {"prompt": "x [badjson]"}]
    f.write_text("\n".join(json.dumps(r) for r in rows))
    [stats] = evaluate(load_tasks([str(f)]), ServerBackend(server.url, max_tokens=6),
                       concurrency=3, progress=False)
    # ok: "fine" and the first turn of the conversation; its second turn gets a 500
    assert stats.turns == 2
    assert stats.failed == 3 and stats.errors == {"http_500": 2, "bad_json": 1}
    dead = ServerBackend("http://127.0.0.1:9", max_tokens=6, timeout=2)
    [stats] = evaluate(load_tasks(["gsm"], 2), dead, progress=False)
    assert stats.turns == 0 and stats.errors == {"connection": 2}


def test_eval_cli_server(server, tmp_path):
    rc = main(["--url", server.url, "--tasks", "gsm,chat", "--num-prompts", "2",
               "--max-tokens", "6", "--out", str(tmp_path), "--no-progress",
               "--chat-template-kwargs", '{"enable_thinking": false}'])
    assert rc == 0
    assert server.requests[-1]["chat_template_kwargs"] == {"enable_thinking": False}
    assert server.requests[-1]["model"] == "fake-model"
    data = json.loads((tmp_path / "eval.json").read_text())
    assert data["schema"] == "sglang-dflash-eval/1" and [t["task"] for t in data["tasks"]] == [
        "gsm", "chat"]
    assert data["tasks"][1]["turns"] == 4
    assert data["overall"]["accept_len_task_mean"] == pytest.approx(6 / 2)
    assert data["server_info"]["attention_backend"] == "fa3"
    md = (tmp_path / "eval.md").read_text()
    assert "sglang 0.5.17; attention fa3, B = 16" in md
    assert "| gsm | math word problems | 2 | 2 / 0 | 12 | 3.00 | 3.00 |" in md


def test_eval_cli_needs_one_backend(tmp_path):
    with pytest.raises(SystemExit, match="either --url"):
        main(["--out", str(tmp_path)])
    with pytest.raises(SystemExit, match="either --url"):
        main(["--url", "http://x", "--target", "t", "--out", str(tmp_path)])
    with pytest.raises(SystemExit, match="needs both"):
        main(["--target", "t", "--out", str(tmp_path)])
