"""SGLANG_DFLASH_STEP_TIMING: parsing, the disabled path, and (on a GPU) a timed report."""

from __future__ import annotations

import pytest
import torch

from sglang_dflash.sglang import step_timing
from sglang_dflash.sglang.step_timing import ENV, PHASES, PREFILL_PHASES, NullTimer, StepTimer


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
    timer.prefill_start(), timer.prefill_mark(), timer.prefill_end(5)


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
    assert rep["batch"] == 4 and rep["step"] > 0 and rep["launch"] > 0
    with pytest.raises(RuntimeError, match="phases marked"):
        timer.start(), timer.end(1)


class _FakeEvent:
    """Stands in for torch.cuda.Event on CPU: its "GPU time" is a counter the test advances."""
    clock = 0.0

    def __init__(self):
        self.t, self.done = _FakeEvent.clock, True

    def elapsed_time(self, later):
        return later.t - self.t

    def query(self):
        return self.done

    def synchronize(self):
        pass


def one_step(timer, batch_size=1):
    """A decode step with every phase marked (no work between the marks)."""
    timer.start()
    for _ in PHASES:
        timer.mark()
    timer.end(batch_size)


def test_bookkeeping_of_steps_and_prefills(monkeypatch):
    """The timer's arithmetic without a GPU: phases, batch, prefills kept until their events
    are done."""
    monkeypatch.setattr(step_timing, "_event", _FakeEvent)
    timer = StepTimer(every=1000)
    for n, ms in ((10, 4.0), (30, 8.0)):
        timer.prefill_start()
        for _ in PREFILL_PHASES:
            _FakeEvent.clock += ms
            timer.prefill_mark()
        timer.prefill_end(n)
    timer.prefills.calls[-1].events[-1].done = False  # the second prefill is still running on the GPU
    for bs in (2, 4):
        timer.start()
        for k, _ in enumerate(PHASES):
            _FakeEvent.clock += k + 1
            timer.mark()
        timer.end(bs, eager=bs == 4)
    rep = timer.report()
    assert [rep[p] for p in PHASES] == [1, 2, 3, 4, 5] and rep["phases"] == 15
    assert rep["batch"] == 3 and rep["launch"] >= 0
    assert rep["eager"] == 1 and rep["launch_max"] >= rep["launch"]
    assert rep["prefill"] == dict(target=4.0, context_kv=4.0, prefills=1, tokens=10,
                                  launch=rep["prefill"]["launch"])
    timer.prefills.calls[-1].events[-1].done = True
    one_step(timer)
    later = timer.report()
    assert later["prefill"]["tokens"] == 30 and later["prefill"]["target"] == 8.0
    one_step(timer)
    assert "prefill" not in timer.report()


def test_reports_while_the_newest_step_still_runs(monkeypatch, caplog):
    """Under the overlap scheduler the step just launched is never done when end() runs; the
    report must come anyway, from the steps the GPU has finished, without waiting."""
    monkeypatch.setattr(step_timing, "_event", _FakeEvent)
    timer = StepTimer(every=2)
    with caplog.at_level("INFO", logger="sglang_dflash.sglang.step_timing"):
        for step in range(4):
            for call in timer.steps.calls:  # the GPU finished every earlier step
                for e in call.events:
                    e.done = True
            timer.start()
            for _ in PHASES:
                timer.mark()
            for e in timer.steps._events:
                e.done = False  # this step is still queued on the GPU
            timer.end(1)
    lines = [r.getMessage() for r in caplog.records if "step timing" in r.getMessage()]
    assert len(lines) == 1 and lines[0].startswith("sglang-dflash step timing (2 steps")
    assert len(timer.steps.calls) == 2  # steps 3 and 4 wait for the next report


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA events need a GPU")
def test_prefills_join_the_report_once_done():
    timer = StepTimer(every=1000)
    x = torch.randn(1024, 1024, device="cuda")
    for n in (10, 30):
        timer.prefill_start()
        for _ in PREFILL_PHASES:
            x = x @ x.t() / 1024
            timer.prefill_mark()
        timer.prefill_end(n)
    one_step(timer)
    rep = timer.report()
    assert rep["prefill"]["prefills"] == 2 and rep["prefill"]["tokens"] == 20
    assert all(rep["prefill"][p] > 0 for p in PREFILL_PHASES)
    with pytest.raises(RuntimeError, match="prefill phases marked"):
        timer.prefill_start(), timer.prefill_end(1)


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
