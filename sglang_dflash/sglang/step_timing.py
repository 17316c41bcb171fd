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
launch latency the GPU could not hide). ``launch`` is the mean host time of ``_decode`` itself
(from its start until it returns with everything queued): under overlap scheduling it is
hidden while it stays below the GPU's share, but the first step after a prefill waits for it.

Prefills are timed too, on their own line: GPU time of the target's prefill forward and of the
context K/V write (``PREFILL_PHASES``), and the host time of ``_extend``; these bear on the time
to first token.

Off by default. When on, it records six CUDA events per step (three per prefill) and reads them once at least N
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
PREFILL_PHASES = ("target", "context_kv")


class StepTimer:
    def __init__(self, every: int):
        self.every = int(every)
        self._steps: list[tuple[list[torch.cuda.Event], int, float]] = []  # (events, bs, launch s)
        self._events: list[torch.cuda.Event] = []
        self._host_start = 0.0
        # prefills: (events [start, target done, context K/V done], tokens, host seconds)
        self._prefills: list[tuple[list[torch.cuda.Event], int, float]] = []
        self._prefill_events: list[torch.cuda.Event] = []
        self._prefill_host = 0.0
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
        self._host_start = now
        self._events = [_event()]

    def mark(self) -> None:
        """End of the next phase, in ``PHASES`` order."""
        self._events.append(_event())

    def end(self, batch_size: int) -> None:
        if len(self._events) != len(PHASES) + 1:
            raise RuntimeError(f"StepTimer: {len(self._events) - 1} phases marked, "
                               f"expected {len(PHASES)}")
        self._steps.append((self._events, batch_size, time.perf_counter() - self._host_start))
        # report once the newest step's events are done on the GPU: no host sync, so the
        # overlap scheduler keeps running ahead (a few steps more may join the report)
        if len(self._steps) >= self.every and self._steps[-1][0][-1].query():
            self.report()

    def report(self) -> dict:
        self._steps[-1][0][-1].synchronize()  # a no-op from end(); report() may be called early
        n = len(self._steps)
        ms = {p: sum(ev[i].elapsed_time(ev[i + 1]) for ev, _, _ in self._steps) / n
              for i, p in enumerate(PHASES)}
        gpu = sum(ms.values())
        # the median: a step after a prefill or an idle pause is not a decode step's cost
        step = 1e3 * statistics.median(self._intervals) if self._intervals else float("nan")
        mean_bs = sum(bs for _, bs, _ in self._steps) / n
        launch = 1e3 * sum(h for _, _, h in self._steps) / n
        logger.info("%s", format_report(n, mean_bs, ms, step, launch))
        self._steps.clear()
        self._intervals.clear()
        out = dict(ms, phases=gpu, step=step, batch=mean_bs, launch=launch)
        prefill = self._report_prefills()
        if prefill is not None:
            out["prefill"] = prefill
        return out

    # ---- prefills (``DFlashWorker._extend``) ------------------------------------------
    def prefill_start(self) -> None:
        self._prefill_host = time.perf_counter()
        self._prefill_events = [_event()]

    def prefill_mark(self) -> None:
        """End of the next prefill phase, in ``PREFILL_PHASES`` order."""
        self._prefill_events.append(_event())

    def prefill_end(self, tokens: int) -> None:
        if len(self._prefill_events) != len(PREFILL_PHASES) + 1:
            raise RuntimeError(f"StepTimer: {len(self._prefill_events) - 1} prefill phases marked, "
                               f"expected {len(PREFILL_PHASES)}")
        self._prefills.append((self._prefill_events, int(tokens),
                               time.perf_counter() - self._prefill_host))

    def _report_prefills(self) -> dict | None:
        """Log the prefills whose events are done (with the decode report); keep the rest."""
        done = [p for p in self._prefills if p[0][-1].query()]
        if not done:
            return None
        self._prefills = [p for p in self._prefills if p not in done]
        n = len(done)
        ms = {p: sum(ev[i].elapsed_time(ev[i + 1]) for ev, _, _ in done) / n
              for i, p in enumerate(PREFILL_PHASES)}
        tokens = sum(t for _, t, _ in done) / n
        launch = 1e3 * sum(h for _, _, h in done) / n
        logger.info("%s", format_prefill_report(n, tokens, ms, launch))
        return dict(ms, prefills=n, tokens=tokens, launch=launch)


def format_report(steps: int, batch: float, ms: dict, step: float, launch: float) -> str:
    """The log line (``sglang_dflash.bench.steptiming`` parses it back)."""
    gpu = sum(ms[p] for p in PHASES)
    return (f"sglang-dflash step timing ({steps} steps, mean batch {batch:.1f}): "
            + ", ".join(f"{p} {ms[p]:.3f} ms" for p in PHASES)
            + f" | phases {gpu:.3f} ms, step {step:.3f} ms, host+scheduler {step - gpu:.3f} ms"
            + f", launch {launch:.3f} ms")


def format_prefill_report(prefills: int, tokens: float, ms: dict, launch: float) -> str:
    return (f"sglang-dflash prefill timing ({prefills} prefills, mean {tokens:.1f} tokens): "
            + ", ".join(f"{p} {ms[p]:.3f} ms" for p in PREFILL_PHASES)
            + f" | launch {launch:.3f} ms")


class NullTimer:
    """The disabled timer: every call does nothing."""

    def start(self) -> None:
        pass

    def mark(self) -> None:
        pass

    def end(self, batch_size: int) -> None:
        pass

    def prefill_start(self) -> None:
        pass

    def prefill_mark(self) -> None:
        pass

    def prefill_end(self, tokens: int) -> None:
        pass


def _event() -> torch.cuda.Event:
    ev = torch.cuda.Event(enable_timing=True)
    ev.record()
    return ev
