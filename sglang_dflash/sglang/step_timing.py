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
from typing import NamedTuple

import torch

logger = logging.getLogger(__name__)

ENV = "SGLANG_DFLASH_STEP_TIMING"
PHASES = ("block", "draft", "verify", "accept", "context_kv")
PREFILL_PHASES = ("target", "context_kv")


class Call(NamedTuple):
    """One timed decode step or prefill."""

    events: list  # CUDA events: the call's start, then the end of each phase
    size: int  # batch size, or extended tokens
    host_s: float  # host time from start() to end()
    eager: bool  # some forward of the call ran without its CUDA graph


class PhaseCalls:
    """CUDA events at the borders of named phases, for each timed call (a decode step or a
    prefill), with the call's size (batch or tokens) and its host time."""

    def __init__(self, phases: tuple[str, ...], what: str):
        self.phases, self.what = phases, what
        self.calls: list[Call] = []
        self._events: list[torch.cuda.Event] = []
        self._host_start = 0.0

    def start(self) -> None:
        self._host_start = time.perf_counter()
        self._events = [_event()]

    def mark(self) -> None:
        self._events.append(_event())

    def end(self, size: int, eager: bool = False) -> None:
        if len(self._events) != len(self.phases) + 1:
            raise RuntimeError(f"StepTimer: {len(self._events) - 1} {self.what} phases marked, "
                               f"expected {len(self.phases)}")
        self.calls.append(Call(self._events, int(size), time.perf_counter() - self._host_start, bool(eager)))

    def take(self, only_done: bool) -> dict | None:
        """Means over the calls (all, or those done on the GPU), which leave the list:
        {phase: GPU ms, ..., calls, size, launch (mean host ms), launch_max (host ms),
        eager (calls that ran some forward without its graph)}; None when there are none."""
        calls, rest = [], []
        for c in self.calls:
            (calls if not only_done or c.events[-1].query() else rest).append(c)
        if not calls:
            return None
        self.calls = rest
        calls[-1].events[-1].synchronize()  # a no-op for calls already done
        n = len(calls)
        out = {p: sum(c.events[i].elapsed_time(c.events[i + 1]) for c in calls) / n
               for i, p in enumerate(self.phases)}
        out.update(calls=n, size=sum(c.size for c in calls) / n,
                   launch=1e3 * sum(c.host_s for c in calls) / n,
                   launch_max=1e3 * max(c.host_s for c in calls), eager=sum(c.eager for c in calls))
        return out


class StepTimer:
    def __init__(self, every: int):
        self.every = int(every)
        self.steps = PhaseCalls(PHASES, "step")              # size = batch
        self.prefills = PhaseCalls(PREFILL_PHASES, "prefill")  # size = extended tokens
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

    # ---- decode steps (``DFlashWorker._decode``) --------------------------------------
    def start(self) -> None:
        now = time.perf_counter()
        if self._last_start is not None:
            self._intervals.append(now - self._last_start)
        self._last_start = now
        self.steps.start()

    def mark(self) -> None:
        """End of the next phase, in ``PHASES`` order."""
        self.steps.mark()

    def end(self, batch_size: int, eager: bool = False) -> None:
        """`eager`: the step's draft or verify forward ran without its CUDA graph."""
        self.steps.end(batch_size, eager)
        # Report once `every` steps are done on the GPU. Ask the `every`-th oldest step, not
        # the newest: the overlap scheduler launches ahead of the GPU, so the step just
        # launched is (almost) never done here. query() does not block the host.
        calls = self.steps.calls
        if len(calls) >= self.every and calls[self.every - 1].events[-1].query():
            self.report(only_done=True)

    def report(self, only_done: bool = False) -> dict:
        """Log (and return) the means of the steps so far (only_done: those finished on the
        GPU; else all, waiting for the last), and of the prefills done by now."""
        ms = self.steps.take(only_done=only_done)
        if ms is None:
            return {}
        # the median: a step after a prefill or an idle pause is not a decode step's cost
        step = 1e3 * statistics.median(self._intervals) if self._intervals else float("nan")
        self._intervals.clear()
        phases = {p: ms[p] for p in PHASES}
        logger.info("%s", format_report(ms["calls"], ms["size"], phases, step, ms["launch"],
                                        ms["launch_max"], ms["eager"]))
        out = dict(phases, phases=sum(phases.values()), step=step, batch=ms["size"],
                   launch=ms["launch"], launch_max=ms["launch_max"], eager=ms["eager"])
        pre = self.prefills.take(only_done=True)
        if pre is not None:
            logger.info("%s", format_prefill_report(pre["calls"], pre["size"],
                                                    {p: pre[p] for p in PREFILL_PHASES},
                                                    pre["launch"]))
            out["prefill"] = dict({p: pre[p] for p in PREFILL_PHASES}, prefills=pre["calls"],
                                  tokens=pre["size"], launch=pre["launch"])
        return out

    # ---- prefills (``DFlashWorker._extend``) ------------------------------------------
    def prefill_start(self) -> None:
        self.prefills.start()

    def prefill_mark(self) -> None:
        """End of the next prefill phase, in ``PREFILL_PHASES`` order."""
        self.prefills.mark()

    def prefill_end(self, tokens: int) -> None:
        self.prefills.end(tokens)


def format_report(steps: int, batch: float, ms: dict, step: float, launch: float,
                  launch_max: float, eager: int) -> str:
    """The log line (``sglang_dflash.bench.steptiming`` parses it back). A long `launch max`
    with `eager steps` above 0 marks steps that ran a forward without its CUDA graph."""
    gpu = sum(ms[p] for p in PHASES)
    return (f"sglang-dflash step timing ({steps} steps, mean batch {batch:.1f}): "
            + ", ".join(f"{p} {ms[p]:.3f} ms" for p in PHASES)
            + f" | phases {gpu:.3f} ms, step {step:.3f} ms, host+scheduler {step - gpu:.3f} ms"
            + f", launch {launch:.3f} ms, launch max {launch_max:.3f} ms, eager steps {eager}")


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

    def end(self, batch_size: int, eager: bool = False) -> None:
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
