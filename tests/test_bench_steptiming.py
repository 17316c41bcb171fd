"""The step-timing log parser: a line as the worker writes it round-trips into the table."""

from __future__ import annotations

import pytest

from sglang_dflash.bench import steptiming
from sglang_dflash.sglang import step_timing


def _line(steps, batch, ms, step, launch=1.5, launch_max=3.0, eager=0):
    return step_timing.format_report(steps, batch, ms, step, launch, launch_max, eager)


def test_parse_and_group():
    ms = dict(zip(step_timing.PHASES, [0.01, 0.3, 5.0, 0.1, 0.2]))
    text = "\n".join([
        "noise line",
        _line(100, 1.0, ms, 6.0, launch=1.0, launch_max=41.5, eager=2),
        _line(300, 1.0, {p: 2 * v for p, v in ms.items()}, 12.0, launch=2.0, eager=1),
        _line(50, 31.6, ms, 9.0),
    ])
    rows = steptiming.parse(text)
    assert len(rows) == 3 and rows[0]["draft"] == 0.3 and rows[2]["batch"] == 31.6
    table = steptiming.by_batch(rows)
    assert list(table) == ["1", "32"]
    one = table["1"]
    assert one["steps"] == 400 and one["reports"] == 2
    assert one["verify"] == pytest.approx((100 * 5.0 + 300 * 10.0) / 400)
    assert one["step"] == pytest.approx((100 * 6 + 300 * 12) / 400)
    assert one["host_and_scheduler"] == pytest.approx(one["step"] - one["phases"])
    assert one["launch"] == pytest.approx((100 * 1.0 + 300 * 2.0) / 400)
    assert one["launch_max"] == 41.5 and one["eager_steps"] == 3    # the slowest launch; eager steps summed
    assert table["32"]["eager_steps"] == 0


def test_lines_without_launch_still_parse():
    """Logs written before the launch time was added (session-2 results) parse as before."""
    old = ("sglang-dflash step timing (10 steps, mean batch 1.0): block 0.020 ms, draft 0.900 ms, "
           "verify 5.400 ms, accept 0.060 ms, context_kv 0.090 ms | phases 6.470 ms, "
           "step 6.500 ms, host+scheduler 0.030 ms")
    rows = steptiming.parse(old)
    assert len(rows) == 1 and "launch" not in rows[0]
    assert "launch" not in steptiming.by_batch(rows)["1"]
    session4 = old + ", launch 1.200 ms"  # launch, but no launch max / eager steps yet
    rows = steptiming.parse(session4)
    assert rows[0]["launch"] == 1.2 and "eager" not in rows[0]
    assert "eager_steps" not in steptiming.by_batch(rows)["1"]


def test_prefill_lines_are_averaged_per_prefill(tmp_path, capsys):
    a = step_timing.format_prefill_report(2, 40.0, {"target": 10.0, "context_kv": 0.1}, 3.0)
    b = step_timing.format_prefill_report(6, 80.0, {"target": 20.0, "context_kv": 0.3}, 1.0)
    rows = steptiming.parse_prefills("x\n" + a + "\n" + b)
    mean = steptiming.prefill_mean(rows)
    assert mean["prefills"] == 8 and mean["reports"] == 2
    assert mean["target"] == pytest.approx((2 * 10 + 6 * 20) / 8)
    assert mean["tokens"] == pytest.approx((2 * 40 + 6 * 80) / 8)
    assert mean["launch"] == pytest.approx((2 * 3 + 6 * 1) / 8)
    assert steptiming.prefill_mean([]) is None
    log = tmp_path / "server.log"
    log.write_text(a + "\n" + _line(10, 1.0, dict.fromkeys(step_timing.PHASES, 0.1), 1.0) + "\n")
    assert steptiming.main([str(log)]) == 0
    out = capsys.readouterr().out
    assert '"prefill"' in out and '"1"' in out


def test_line_missing_a_phase_is_an_error():
    bad = ("sglang-dflash step timing (10 steps, mean batch 1.0): block 0.1 ms, draft 0.2 ms | "
           "phases 0.300 ms, step 1.000 ms, host+scheduler 0.700 ms")
    with pytest.raises(ValueError, match="without phases"):
        steptiming.parse(bad)
