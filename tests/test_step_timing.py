"""SGLANG_DFLASH_STEP_TIMING: parsing, the disabled path, and (on a GPU) a timed report."""

from __future__ import annotations

import pytest
import torch

from sglang_dflash.sglang.step_timing import ENV, PHASES, NullTimer, StepTimer


@pytest.mark.parametrize("value", [None, "", "0"])
def test_off_by_default(monkeypatch, value):
    if value is None:
        monkeypatch.delenv(ENV, raising=False)
    else:
        monkeypatch.setenv(ENV, value)
    assert isinstance(StepTimer.from_env(torch.device("cuda")), NullTimer)


@pytest.mark.parametrize("value", ["often", "-3"])
def test_bad_values_name_the_variable(monkeypatch, value):
    monkeypatch.setenv(ENV, value)
    with pytest.raises(ValueError, match=ENV):
        StepTimer.from_env(torch.device("cuda"))


def test_cpu_device_gets_the_null_timer(monkeypatch):
    monkeypatch.setenv(ENV, "10")
    timer = StepTimer.from_env(torch.device("cpu"))
    assert isinstance(timer, NullTimer)
    timer.start(), timer.mark(), timer.end(1)  # all no-ops


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA events need a GPU")
def test_report_on_gpu():
    timer = StepTimer(every=1000)
    x = torch.randn(2048, 2048, device="cuda")
    for _ in range(3):
        timer.start()
        for _ in PHASES:
            x = x @ x.t() / 2048
            timer.mark()
        timer.end(4)
    rep = timer.report()
    assert all(rep[p] > 0 for p in PHASES)
    assert rep["batch"] == 4 and rep["step"] > 0
    with pytest.raises(RuntimeError, match="phases marked"):
        timer.start(), timer.end(1)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA events need a GPU")
def test_reports_itself_once_the_gpu_is_done(caplog):
    timer = StepTimer(every=2)
    with caplog.at_level("INFO", logger="sglang_dflash.sglang.step_timing"):
        for _ in range(3):
            timer.start()
            for _ in PHASES:
                timer.mark()
            torch.cuda.synchronize()  # the events are complete: end() may report
            timer.end(1)
    assert any("sglang-dflash step timing (2 steps" in r.getMessage() for r in caplog.records)
