"""Run every task through a backend and aggregate acceptance per task.

Per task: ``accept_len_mean`` is the mean over turns of tokens / steps (how z-lab's benchmark
averages SGLang's ``spec_accept_length``), ``accept_len_pooled`` is sum(tokens) / sum(steps),
and, from the reference decoder only, ``step_histogram`` counts steps by A+1.
"""

from __future__ import annotations

import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass

from tqdm import tqdm

from .backends import Backend, TurnResult
from .tasks import Task


@dataclass
class TaskStats:
    task: str
    prompts: int
    turns: int                       # turns answered
    failed: int                      # turns that failed (a failed turn ends its conversation)
    errors: dict[str, int]
    output_tokens: int
    steps: int
    accept_len_mean: float | None
    accept_len_pooled: float | None
    step_histogram: dict[int, int]
    seconds: float

    def to_dict(self) -> dict:
        return asdict(self)


def summarize(task: str, prompts: int, turns: list[TurnResult], seconds: float) -> TaskStats:
    ok = [t for t in turns if t.ok]
    spec = [t for t in ok if t.steps]
    hist = Counter(a for t in ok for a in t.step_accepts)
    return TaskStats(
        task=task,
        prompts=prompts,
        turns=len(ok),
        failed=len(turns) - len(ok),
        errors=dict(Counter(t.error or "unknown" for t in turns if not t.ok)),
        output_tokens=sum(t.output_tokens for t in ok),
        steps=sum(t.steps for t in spec),
        accept_len_mean=sum(t.accept_len for t in spec) / len(spec) if spec else None,
        accept_len_pooled=(sum(t.output_tokens for t in spec) / sum(t.steps for t in spec)
                           if spec else None),
        step_histogram=dict(sorted(hist.items())),
        seconds=seconds,
    )


def evaluate(tasks: list[Task], backend: Backend, concurrency: int = 1,
             progress: bool = True) -> list[TaskStats]:
    workers = concurrency if backend.parallel else 1
    stats = []
    for task in tasks:
        t0 = time.perf_counter()
        turns: list[TurnResult] = []
        bar = tqdm(total=len(task.prompts), desc=task.name, unit="prompt", disable=not progress,
                   leave=False)
        with ThreadPoolExecutor(max_workers=workers) as pool:
            for result in pool.map(backend.run, task.prompts):
                turns.extend(result)
                bar.update(1)
        bar.close()
        stats.append(summarize(task.name, len(task.prompts), turns, time.perf_counter() - t0))
    return stats


def overall(stats: list[TaskStats]) -> dict:
    """Unweighted mean of the per-task acceptance (each task counts once), as z-lab tables do."""
    vals = [s.accept_len_mean for s in stats if s.accept_len_mean is not None]
    return {"accept_len_task_mean": sum(vals) / len(vals) if vals else None,
            "tasks_with_acceptance": len(vals)}
