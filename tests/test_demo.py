"""`python -m sglang_dflash.demo` runs end to end on the CPU."""
import os
import subprocess
import sys

from smollm2_fixture import smollm2_dir  # noqa: F401


def test_demo_runs(smollm2_dir):  # noqa: F811
    env = dict(os.environ, SGLANG_DFLASH_SMOLLM2_DIR=str(smollm2_dir))
    cmd = [sys.executable, "-m", "sglang_dflash.demo", "--max-new-tokens", "24", "--threads", "2",
           "--prompt", "What is the capital of France?", "--prompt", "Write a haiku about the sea."]
    res = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stdout + res.stderr
    out = res.stdout
    assert out.count("same tokens as plain decoding: yes") == 2, out
    assert "[acceptance per step]" in out and "overall: mean acceptance" in out
    assert "Paris" in out
