"""Launching named configurations: the command line, health wait, and a server that dies."""

import sys
import textwrap
import time
from pathlib import Path

import pytest

from sglang_dflash.bench.client import RequestSpec
from sglang_dflash.bench.runner import Workload
from sglang_dflash.bench.server import LaunchedServer, LaunchSpec, ServerLaunchError, launch_command
from sglang_dflash.bench.sweep import Target, run_sweep


def test_launch_commands_for_each_configuration():
    base = dict(model="/m", drafter="/d", port=1234, python="py", extra_args=["--tp", "1"])
    argv, env = launch_command(LaunchSpec(config="baseline", **base))
    assert argv == ["py", "-m", "sglang.launch_server", "--model-path", "/m", "--host",
                    "127.0.0.1", "--port", "1234", "--tp", "1"]
    assert env == {}
    argv, env = launch_command(LaunchSpec(config="builtin", block_size=16, **base))
    assert argv[9:] == ["--speculative-algorithm", "DFLASH", "--speculative-draft-model-path",
                        "/d", "--speculative-num-draft-tokens", "16", "--tp", "1"]
    assert env == {"SGLANG_DFLASH_IMPL": "builtin"}
    argv, env = launch_command(LaunchSpec(config="ours", env={"SGLANG_SIMULATE_ACC_LEN": "6.44"},
                                          **base))
    assert "--speculative-algorithm" in argv and "--speculative-num-draft-tokens" not in argv
    assert env == {"SGLANG_DFLASH_IMPL": None, "SGLANG_SIMULATE_ACC_LEN": "6.44"}
    with pytest.raises(ValueError, match="needs a drafter"):
        launch_command(LaunchSpec(config="ours", model="/m", port=1))


@pytest.fixture
def fake_sglang(tmp_path):
    """A stand-in ``sglang.launch_server`` module that runs the fake server on --port."""
    pkg = tmp_path / "sglang"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    tests_dir = Path(__file__).parent
    (pkg / "launch_server.py").write_text(textwrap.dedent(f"""
        import os, sys, time
        sys.path.insert(0, {str(tests_dir)!r})
        from fake_openai_server import FakeServer
        args = sys.argv[1:]
        if "--crash" in args:
            print("fatal: simulated startup failure", flush=True)
            sys.exit(3)
        if "--speculative-algorithm" in args:
            if os.environ.get("SGLANG_DFLASH_IMPL") == "builtin" or "--no-plugin" in args:
                print("Initialized DFLASH draft runner. block_size=4", flush=True)
            else:
                print("sglang-dflash worker started: impl=ours", flush=True)
        time.sleep(0.5)
        FakeServer(port=int(args[args.index("--port") + 1])).httpd.serve_forever()
    """))
    return {"PYTHONPATH": str(tmp_path)}


def test_launched_server_becomes_healthy_and_stops(fake_sglang, tmp_path):
    spec = LaunchSpec(config="baseline", model="/m", env=fake_sglang, python=sys.executable)
    with LaunchedServer(spec, log_dir=str(tmp_path)) as srv:
        srv.wait_healthy(timeout=20, poll=0.2)
        proc = srv.proc
        assert proc.poll() is None
    assert proc.poll() is not None


def test_dying_server_reports_exit_code_and_log_tail(fake_sglang, tmp_path):
    spec = LaunchSpec(config="baseline", model="/m", env=fake_sglang, python=sys.executable,
                      extra_args=["--crash"])
    srv = LaunchedServer(spec, log_dir=str(tmp_path))
    srv.start()
    expected = "exited with code 3(.|\n)*simulated startup failure"
    with pytest.raises(ServerLaunchError, match=expected):
        srv.wait_healthy(timeout=20, poll=0.2)


def test_sweep_records_launch_failure_and_goes_on(fake_sglang, tmp_path):
    spec = LaunchSpec(config="baseline", model="/m", env=fake_sglang,
                      python=sys.executable, extra_args=["--crash"])
    ok = LaunchSpec(config="baseline", model="/m", env=fake_sglang, python=sys.executable)
    work = Workload(specs=(RequestSpec(text="a b", messages=[], max_tokens=4),), progress=False,
                    warmup=0, timeout=5)
    t0 = time.time()
    servers, levels = run_sweep([Target("broken", launch=spec), Target("good", launch=ok)], work,
                                [1], num_requests=2, launch_timeout=20, log_dir=str(tmp_path))
    assert time.time() - t0 < 20
    assert "exited with code 3" in servers[0]["error"] and servers[0]["command"][1:3] == [
        "-m", "sglang.launch_server"]
    assert levels[0].errors == {"unreachable": 2}
    assert levels[1].completed == 2


def test_sweep_checks_which_worker_served(fake_sglang, tmp_path):
    def spec(config, *extra):
        return LaunchSpec(config=config, model="/m", drafter="/d", env=fake_sglang,
                          python=sys.executable, extra_args=list(extra))

    work = Workload(specs=(RequestSpec(text="a b", messages=[], max_tokens=4),), progress=False,
                    warmup=0, timeout=5)
    targets = [Target("builtin", launch=spec("builtin")), Target("ours", launch=spec("ours")),
               Target("ours-broken", launch=spec("ours", "--no-plugin"))]
    servers, levels = run_sweep(targets, work, [1], num_requests=1, launch_timeout=20,
                                log_dir=str(tmp_path))
    assert [s["worker"] for s in servers] == ["builtin", "sglang_dflash", "builtin"]
    assert "warning" not in servers[0] and "warning" not in servers[1]
    assert "should run worker 'sglang_dflash' but its log shows 'builtin'" in servers[2]["warning"]
    assert all(lv.completed == 1 for lv in levels)
