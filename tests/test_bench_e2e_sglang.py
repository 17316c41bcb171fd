"""bench and eval against real SGLang 0.5.17 servers on CPU: baseline, builtin and ours.

Uses the CPU harness in ``tests/cpu_sglang`` (stubs, env, the steered tiny pair whose drafts
are often accepted); skipped when the harness or SGLang is missing.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

e2e = pytest.importorskip("cpu_sglang.e2e")
cpu_server = pytest.importorskip("cpu_sglang.server")
e2e.require_sglang()
pytestmark = [pytest.mark.sglang, pytest.mark.slow]

from sglang_dflash.bench.cli import main as bench_main  # noqa: E402
from sglang_dflash.bench.server import LaunchedServer, LaunchSpec  # noqa: E402
from sglang_dflash.eval.cli import main as eval_main  # noqa: E402

_spec = importlib.util.spec_from_file_location(
    "ttft_split", Path(__file__).resolve().parents[1] / "bench/h200/ttft_split.py")
ttft_split = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(ttft_split)

BLOCK = 4
ENV_KEYS = ("SGLANG_USE_CPU_ENGINE", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "OMP_NUM_THREADS",
            "PYTHONPATH")


def _server_flags() -> list[str]:
    flags = list(cpu_server.CPU_FLAGS)
    i = flags.index("--host")
    return flags[:i] + flags[i + 2:]        # the bench sets --host itself


def _env() -> dict[str, str]:
    env = cpu_server.cpu_env()
    return {k: env[k] for k in ENV_KEYS if k in env}


@pytest.fixture(scope="module")
def pair():
    return e2e.steered_pair()


@pytest.fixture(scope="module")
def ours(pair, tmp_path_factory):
    """Our worker, launched the way the bench launches it; shared by both tests."""
    # --enable-metrics: SGLang returns its own per-request timestamps (bench/h200/ttft_split.py)
    spec = LaunchSpec(config="ours", model=pair.target, drafter=pair.drafters[BLOCK],
                      block_size=BLOCK, extra_args=_server_flags() + ["--enable-metrics"], env=_env(),
                      python=e2e.sglang_python())
    with LaunchedServer(spec, log_dir=str(tmp_path_factory.mktemp("ours"))) as server:
        server.wait_healthy(300)
        yield server


def test_bench_builtin_launched_and_ours_running(pair, ours, tmp_path):
    """Two launches in total keep this under a few minutes: builtin is launched by the bench,
    ours is the running server above (its log is checked for our worker separately)."""
    args = ["--launch", "builtin", "--url", f"ours={ours.url}", "--python", e2e.sglang_python(),
            "--model", pair.target, "--drafter", pair.drafters[BLOCK], "--block-size", str(BLOCK),
            "--server-args", " ".join(_server_flags()), "--launch-timeout", "300",
            "--prompts", "gsm", "--concurrency", "1,3", "--num-requests", "3", "--warmup", "0",
            "--max-tokens", "16", "--out", str(tmp_path), "--no-progress", "--raw-prompts",
            "--save-requests"]
    for k, v in _env().items():
        args += ["--env", f"{k}={v}"]
    assert bench_main(args) == 0
    assert ours.detected_worker() == "sglang_dflash"
    data = json.loads((tmp_path / "bench.json").read_text())
    servers = {s["name"]: s for s in data["servers"]}
    assert servers["builtin"]["worker"] == "builtin"
    assert not any("warning" in s or "error" in s for s in servers.values())
    assert servers["ours"]["server_info"]["speculative_num_draft_tokens"] == BLOCK
    cells = {(r["server"], r["concurrency"]): r for r in data["results"]}
    assert all(r["completed"] == 3 and r["failed"] == 0 for r in cells.values())
    assert all(r["output_tokens"] == 3 * 16 for r in cells.values())       # ignore_eos
    for c in (1, 3):
        mine, builtin = cells[("ours", c)], cells[("builtin", c)]
        assert 1.0 < mine["accept_len_mean"] <= BLOCK and 1.0 < builtin["accept_len_mean"] <= BLOCK
        # same drafter, same greedy rule: the two workers keep the same drafts
        assert mine["accept_len_pooled"] == pytest.approx(builtin["accept_len_pooled"], abs=0.05)
    # the server's own timestamps came back from ours (metrics on), none from the builtin
    rows = [json.loads(line) for line in (tmp_path / "bench.requests.jsonl").read_text().splitlines()]
    ours_rows = [r for r in rows if r["server"] == "ours"]
    assert ours_rows and all(ttft_split.split(r) is not None for r in ours_rows)
    assert all(r["server_times"] == {} for r in rows if r["server"] == "builtin")
    for r in ours_rows:
        stages = ttft_split.split(r)
        assert stages["prefill"] > 0 and sum(stages.values()) == pytest.approx(1e3 * r["ttft"], abs=0.01)


def test_eval_through_our_server(ours, tmp_path):
    rc = eval_main(["--url", ours.url, "--tasks", "gsm,chat", "--num-prompts", "2",
                    "--max-tokens", "16", "--out", str(tmp_path), "--no-progress"])
    assert rc == 0
    data = json.loads((tmp_path / "eval.json").read_text())
    for task in data["tasks"]:
        assert task["failed"] == 0 and task["steps"] > 0
        assert 1.0 < task["accept_len_mean"] <= BLOCK
    assert data["server_info"]["speculative_algorithm"] == "DFLASH"
