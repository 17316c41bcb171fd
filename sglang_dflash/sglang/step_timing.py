"""Where a decode step's time goes: ``SGLANG_DFLASH_STEP_TIMING=N`` logs, every N steps,
the mean GPU time of each phase of ``DFlashWorker._decode`` and the mean wall time between
the starts of consecutive steps.

Phases (CUDA events between them, so the numbers are GPU time, not launch time):
    block       block ids, positions and KV slots
    draft       the drafter forward and its proposals
    verify      the target's TARGET_VERIFY forward of every block
    accept      logit adjustments and the accept decision
    context_kv  the verified tokens' context K/V written into the draft pool
``step`` is the median wall time from one decode step's start to the next; whatever it holds beyond the
phases is the scheduler's and the host's share (batch bookkeeping, result processing, and
launch latency the GPU could not hide).

Off by default. When on, it records six CUDA events per step and reads them once at least N
steps are done on the GPU (``Event.query``, so it never blocks the host; a report may cover
a few more than N steps).
"""

from __future__ import annotations

import logging
import os
import statistics
import time

import torch

logger = logging.getLogger(__name__)

ENV = "SGLANG_DFLASH_STEP_TIMING"
PHASES = ("block", "draft", "verify", "accept", "context_kv")


class StepTimer:
    def __init__(self, every: int):
        self.every = int(every)
        self._steps: list[tuple[list[torch.cuda.Event], float]] = []  # (events, host start)
        self._events: list[torch.cuda.Event] = []
        self._host_start = 0.0
        self._last_start: float | None = None
        self._intervals: list[float] = []   # wall seconds between step starts

    @staticmethod
    def from_env(device: torch.device):
        raw = os.environ.get(ENV, "").strip()
        if not raw or raw == "0":
            return NullTimer()
        try:
            every = int(raw)
        except ValueError:
            raise ValueError(f"{ENV}: expected a number of steps between reports, got {raw!r}")
        if every < 1:
            raise ValueError(f"{ENV}: expected a number of steps >= 1, got {every}")
        if device.type != "cuda":
            logger.warning("%s is set but the device is %s: step timing needs CUDA events",
                           ENV, device.type)
            return NullTimer()
        return StepTimer(every)

    def start(self) -> None:
        now = time.perf_counter()
        if self._last_start is not None:
            self._intervals.append(now - self._last_start)
        self._last_start = now
        self._events = [_event()]

    def mark(self) -> None:
        """End of the next phase, in ``PHASES`` order."""
        self._events.append(_event())

    def end(self, batch_size: int) -> None:
        if len(self._events) != len(PHASES) + 1:
            raise RuntimeError(f"StepTimer: {len(self._events) - 1} phases marked, "
                               f"expected {len(PHASES)}")
        self._steps.append((self._events, batch_size))
        # report once the newest step's events are done on the GPU: no host sync, so the
        # overlap scheduler keeps running ahead (a few steps more may join the report)
        if len(self._steps) >= self.every and self._steps[-1][0][-1].query():
            self.report()

    def report(self) -> dict:
        self._steps[-1][0][-1].synchronize()  # a no-op from end(); report() may be called early
        n = len(self._steps)
        ms = {p: sum(ev[i].elapsed_time(ev[i + 1]) for ev, _ in self._steps) / n
              for i, p in enumerate(PHASES)}
        gpu = sum(ms.values())
        # the median: a step after a prefill or an idle pause is not a decode step's cost
        step = 1e3 * statistics.median(self._intervals) if self._intervals else float("nan")
        mean_bs = sum(bs for _, bs in self._steps) / n
        logger.info("%s", format_report(n, mean_bs, ms, step))
        self._steps.clear()
        self._intervals.clear()
        return dict(ms, phases=gpu, step=step, batch=mean_bs)


def format_report(steps: int, batch: float, ms: dict, step: float) -> str:
    """The log line (``sglang_dflash.bench.steptiming`` parses it back)."""
    gpu = sum(ms[p] for p in PHASES)
    return (f"sglang-dflash step timing ({steps} steps, mean batch {batch:.1f}): "
            + ", ".join(f"{p} {ms[p]:.3f} ms" for p in PHASES)
            + f" | phases {gpu:.3f} ms, step {step:.3f} ms, host+scheduler {step - gpu:.3f} ms")


class NullTimer:
    """The disabled timer: every call does nothing."""

    def start(self) -> None:
        pass

    def mark(self) -> None:
        pass

    def end(self, batch_size: int) -> None:
        pass


def _event() -> torch.cuda.Event:
    ev = torch.cuda.Event(enable_timing=True)
    ev.record()
    return ev
