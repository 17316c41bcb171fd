"""Tasks = prompt sets; the default mix mirrors z-lab's (GSM8K, MATH-500, HumanEval, MBPP,
MT-Bench) with the sets shipped in ``assets/prompts`` (see ``SOURCES.md`` there)."""

from __future__ import annotations

from dataclasses import dataclass

from ..bench.prompts import Prompt, load_prompts

DEFAULT_TASKS = ("gsm", "math", "humaneval", "code", "chat")
DESCRIPTIONS = {
    "gsm": "math word problems",
    "math": "competition math",
    "humaneval": "code completion (HumanEval stubs)",
    "code": "short code tasks",
    "chat": "multi-turn chat",
}


@dataclass(frozen=True)
class Task:
    name: str
    prompts: tuple[Prompt, ...]


def load_tasks(sources: list[str], num_prompts: int | None = None) -> list[Task]:
    """One task per named set or prompt file, each cut to its first ``num_prompts`` prompts."""
    tasks = []
    for source in sources:
        prompts = load_prompts(source)[: num_prompts or None]
        tasks.append(Task(name=prompts[0].task or source, prompts=tuple(prompts)))
    return tasks
