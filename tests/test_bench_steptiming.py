"""The step-timing log parser: a line as the worker writes it round-trips into the table."""

from __future__ import annotations

import pytest

from sglang_dflash.bench import steptiming
from sglang_dflash.sglang import step_timing


def _line(steps, batch, ms, step):
    return step_timing.format_report(steps, batch, ms, step)


def test_parse_and_group():
    ms = dict(zip(step_timing.PHASES, [0.01, 0.3, 5.0, 0.1, 0.2]))
    text = "\n".join([
        "noise line",
        _line(100, 1.0, ms, 6.0),
        _line(300, 1.0, {p: 2 * v for p, v in ms.items()}, 12.0),
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


def test_line_missing_a_phase_is_an_error():
    bad = ("sglang-dflash step timing (10 steps, mean batch 1.0): block 0.1 ms, draft 0.2 ms | "
           "phases 0.300 ms, step 1.000 ms, host+scheduler 0.700 ms")
    with pytest.raises(ValueError, match="without phases"):
        steptiming.parse(bad)
