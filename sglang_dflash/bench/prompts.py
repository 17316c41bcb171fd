"""Prompt sets for the bench and eval tools.

A prompt is one conversation: one or more user turns and an optional system message.
The bench sends only the first turn; the eval tool plays every turn, feeding the model's
own answers back in between (MT-Bench style).

Sources:
  * a named set shipped in ``sglang_dflash/assets/prompts/<name>.jsonl`` (see ``SOURCES.md``
    there), or ``mix`` = every shipped set in turn;
  * a ``.txt`` file: one prompt per non-empty line;
  * a ``.jsonl`` file: one JSON value per line, either a string or an object with
    ``prompt`` / ``text`` (one turn), ``turns`` (list of user turns) or ``messages``
    (OpenAI chat messages; the user messages become the turns, a system message is kept).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

ASSET_DIR = Path(__file__).resolve().parent.parent / "assets" / "prompts"


class PromptError(ValueError):
    """A prompt file or set name that cannot be read; the message says where and why."""


@dataclass(frozen=True)
class Prompt:
    pid: str                    # "<set>/<index>" or "<file name>/<line>"
    turns: tuple[str, ...]      # user turns, at least one
    system: str | None = None
    task: str = ""              # name of the set it came from

    def first_messages(self) -> list[dict]:
        """Chat messages for the first turn only (what the bench sends)."""
        return self.messages_for(0, [])

    def messages_for(self, turn: int, answers: list[str]) -> list[dict]:
        """Chat messages up to user turn ``turn``, with the model's earlier ``answers``."""
        msgs: list[dict] = []
        if self.system:
            msgs.append({"role": "system", "content": self.system})
        for i in range(turn):
            msgs.append({"role": "user", "content": self.turns[i]})
            msgs.append({"role": "assistant", "content": answers[i]})
        msgs.append({"role": "user", "content": self.turns[turn]})
        return msgs


def named_sets() -> list[str]:
    """Names of the prompt sets shipped with the package (``mix`` not included)."""
    return sorted(p.stem for p in ASSET_DIR.glob("*.jsonl"))


def load_prompts(source: str) -> list[Prompt]:
    """Load a named set, ``mix``, or a ``.txt`` / ``.jsonl`` file."""
    if source == "mix":
        return [p for name in named_sets() for p in load_prompts(name)]
    if source in named_sets():
        return _load_jsonl(ASSET_DIR / f"{source}.jsonl", task=source)
    path = Path(source)
    if not path.is_file():
        raise PromptError(
            f"prompt source {source!r} is neither a file nor a named set "
            f"(named sets: {', '.join(named_sets() + ['mix'])})"
        )
    if path.suffix == ".jsonl":
        return _load_jsonl(path, task=path.stem)
    return _load_txt(path)


def _load_txt(path: Path) -> list[Prompt]:
    lines = path.read_text(encoding="utf-8").splitlines()
    prompts = [
        Prompt(pid=f"{path.name}/{i + 1}", turns=(line.strip(),), task=path.stem)
        for i, line in enumerate(lines)
        if line.strip()
    ]
    if not prompts:
        raise PromptError(f"{path}: no prompts (expected one prompt per non-empty line)")
    return prompts


def _load_jsonl(path: Path, task: str) -> list[Prompt]:
    prompts = []
    for i, line in enumerate(path.read_text(encoding="utf-8").splitlines()):
        if not line.strip():
            continue
        where = f"{path}:{i + 1}"
        try:
            value = json.loads(line)
        except json.JSONDecodeError as e:
            raise PromptError(f"{where}: not valid JSON ({e.msg})") from None
        system, turns = _parse_record(value, where)
        prompts.append(Prompt(pid=f"{task}/{len(prompts)}", turns=turns, system=system, task=task))
    if not prompts:
        raise PromptError(f"{path}: no prompts")
    return prompts


def _parse_record(value: object, where: str) -> tuple[str | None, tuple[str, ...]]:
    if isinstance(value, str):
        return None, (value,)
    if not isinstance(value, dict):
        raise PromptError(f"{where}: expected a string or an object, got {type(value).__name__}")
    system = value.get("system")
    for key in ("prompt", "text"):
        if isinstance(value.get(key), str):
            return system, (value[key],)
    if isinstance(value.get("turns"), list) and value["turns"]:
        return system, tuple(str(t) for t in value["turns"])
    if isinstance(value.get("messages"), list):
        msgs = value["messages"]
        system = next((m["content"] for m in msgs if m.get("role") == "system"), system)
        turns = tuple(m["content"] for m in msgs if m.get("role") == "user")
        if turns:
            return system, turns
    raise PromptError(
        f"{where}: object needs 'prompt', 'text', 'turns' or 'messages' with a user turn"
    )
