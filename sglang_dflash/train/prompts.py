"""Offline chat prompts for drafter training: templates x word lists, no downloads.

    python -m sglang_dflash.train.prompts --out DIR [--num 8000] [--heldout 200] [--seed 0]

writes DIR/train.jsonl and DIR/heldout.jsonl, one conversation per line:
`{"category": ..., "messages": [{"role": "system"|"user", "content": ...}, ...]}`.
Conversations hold only system and user turns; the trainer's self-distillation mode has the
target write every assistant reply (multi-turn conversations get one reply per user turn).
Categories: math word problems, arithmetic and algebra, coding, code explanation, concept
explanations, comparisons, why/how questions, creative writing, emails, advice lists, lists,
and two- or three-turn follow-ups. The split is by prompt text, so no held-out prompt is in train.
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

from . import prompt_words as W


def _math_word(r: random.Random) -> str:
    name, other = r.sample(W.NAMES, 2)
    he = W.PRONOUN[name]
    one, many = r.choice(W.ITEMS)
    a, b, c = r.randint(3, 60), r.randint(2, 30), r.randint(2, 9)
    item, price = r.choice(W.UNITS_PRICE)
    forms = [
        f"{name} has {a} {many}. {he.capitalize()} buys {b} more at {r.choice(W.PLACES)} and then gives "
        f"{min(c, a)} to {other}. How many {many} does {name} have now?",
        f"{name} buys {c} {item}s for ${price} each. How much does {he} spend in total?",
        f"A class has {a + 10} students. {b % 10 + 2} of them are absent today. How many students are in class?",
        f"{name} reads {c} pages every day. How many pages does {he} read in {b} days?",
        f"There are {a} {many} shared equally among {c} children. How many does each child get, and how many are left over?",
        f"{name} runs {c} kilometers on Monday and {b} kilometers on Tuesday. How far does {he} run in total?",
        f"A train travels at {a + 20} km per hour. How far does it travel in {c} hours?",
        f"{name} earns ${a * 10} a week and saves {r.choice([10, 20, 25, 50])}% of it. How much does {he} save in {c} weeks?",
        f"A rectangle is {a} cm long and {b} cm wide. What is its area and its perimeter?",
        f"{name} is {b} years old. {other} is {c} years older. How old will {other} be in {a % 10 + 1} years?",
        f"A recipe needs {c} eggs for {b % 6 + 2} people. How many eggs are needed for {2 * (b % 6 + 2)} people?",
        f"{name} had ${a * 5}. {he.capitalize()} spent ${b * 2} on a {item} and ${c * 3} on lunch. How much money is left?",
        f"A shop sells {many} in packs of {c}. {name} needs {a} {many}. How many packs should {he} buy?",
        f"The temperature was {b} degrees in the morning and dropped by {c} degrees every hour for {c % 5 + 2} hours. What is the temperature now?",
    ]
    q = r.choice(forms)
    return q + r.choice(["", " Explain your reasoning.", " Show your work step by step.", " Think step by step."])


def _arith(r: random.Random) -> str:
    a, b, c = r.randint(2, 99), r.randint(2, 99), r.randint(2, 500)
    forms = [
        f"What is {a} times {b}?", f"What is {a * b} divided by {b}?", f"Calculate {a} + {b} * {c % 20}.",
        f"Solve for x: {a % 12 + 2}x + {b} = {c}.", f"What is {r.choice([10, 15, 20, 25, 30])}% of {c}?",
        f"Is {c} a prime number?", f"What is the square root of {(a % 30 + 1) ** 2}?",
        f"Convert {c} minutes into hours and minutes.", f"Simplify the fraction {a * 2}/{b * 2}.",
        f"What is the sum of all numbers from 1 to {a}?", f"Round {c}.{b} to the nearest ten.",
        f"What is the least common multiple of {a % 15 + 2} and {b % 15 + 2}?",
    ]
    return r.choice(forms)


def _code_write(r: random.Random) -> str:
    task, lang = r.choice(W.CODE_TASKS), r.choice(W.LANGUAGES)
    forms = [
        f"Write a {lang} function that {task}.", f"How do I write a function in {lang} that {task}?",
        f"Can you show me {lang} code that {task}?",
        f"Write a {lang} function that {task}. Add a short comment explaining it.",
        f"I need a {lang} program that {task}. Please include an example.",
    ]
    return r.choice(forms)


def _snippet(r: random.Random) -> str:
    v, f = r.choice(["x", "n", "total", "count", "items", "value"]), r.choice(["compute", "process", "helper", "solve"])
    k = r.randint(2, 9)
    bodies = [
        f"def {f}({v}):\n    result = 0\n    for i in range({v}):\n        if i % {k} == 0:\n            result += i\n    return result",
        f"def {f}({v}):\n    return [c for c in {v} if c.isalpha()]",
        f"def {f}({v}):\n    if {v} <= 1:\n        return {v}\n    return {f}({v} - 1) + {f}({v} - 2)",
        f"def {f}({v}):\n    seen = set()\n    out = []\n    for a in {v}:\n        if a not in seen:\n            seen.add(a)\n            out.append(a)\n    return out",
        f"def {f}({v}):\n    return sorted({v}, key=len)[-{k % 3 + 1}:]",
        f"def {f}({v}):\n    d = {{}}\n    for w in {v}.split():\n        d[w] = d.get(w, 0) + 1\n    return d",
        f"for i in range(1, {k * 5}):\n    print(i * i)",
        f"{v} = [{', '.join(str(r.randint(1, 50)) for _ in range(k))}]\nprint(sum({v}) / len({v}))",
    ]
    ask = r.choice(["Explain what this Python code does:", "What does this code do?",
                    "Can you explain this function line by line?", "Is there a bug in this code? If so, fix it."])
    return f"{ask}\n\n{r.choice(bodies)}"


def _code_concept(r: random.Random) -> str:
    c = r.choice(W.CODE_CONCEPTS)
    return r.choice([f"Explain {c} in programming.", f"What is {c}?", f"Can you give an example of {c}?",
                     f"When should I use {c}?"]) + r.choice(W.STYLES)


def _explain(r: random.Random) -> str:
    c = r.choice(W.CONCEPTS)
    return r.choice([f"Explain {c} in simple terms.", f"What is {c}?", f"Can you tell me about {c}?",
                     f"Explain {c} to a high school student.", f"Give me a short overview of {c}.",
                     f"Why is {c} important?"]) + r.choice(W.STYLES)


def _compare(r: random.Random) -> str:
    a, b = r.choice(W.PAIRS)
    return r.choice([f"What is the difference between {a} and {b}?", f"Compare {a} and {b}.",
                     f"How is {a} different from {b}?"]) + r.choice(W.STYLES)


def _why_how(r: random.Random) -> str:
    if r.random() < 0.5:
        return f"Why {r.choice(W.WHY)}?" + r.choice(W.STYLES)
    return f"How does {r.choice(W.HOW)} work?" + r.choice(W.STYLES)


def _writing(r: random.Random) -> str:
    t, ch, ev = r.choice(W.TOPICS), r.choice(W.CHARACTERS), r.choice(W.EVENTS)
    forms = [
        f"Write a short poem about {t}.", f"Write a haiku about {t}.",
        f"Write a short story about {ch} who {ev}.", f"Write the opening paragraph of a story about {ch}.",
        f"Write a limerick about {ch}.", f"Describe {t} in three sentences.",
        f"Write a product description for a {r.choice(W.UNITS_PRICE)[0]}.",
        f"Write a short speech about {t} for a school assembly.",
        f"Write a tweet about {t}.",
    ]
    return r.choice(forms)


def _email(r: random.Random) -> str:
    return (f"Write an email to {r.choice(W.RECIPIENTS)} {r.choice(['about', 'regarding'])} "
            f"{r.choice(W.EMAIL_SUBJECTS)}." + r.choice(["", " Keep it polite.", " Keep it brief.", " Make it friendly."]))


def _advice(r: random.Random) -> str:
    a, n = r.choice(W.ACTIVITIES), r.randint(3, 7)
    return r.choice([f"Give me {n} tips for {a}.", f"What are some good ways of {a}?",
                     f"I am struggling with {a}. What should I do?", f"How can I get better at {a}?"])


def _list(r: random.Random) -> str:
    return r.choice([f"List {r.randint(3, 10)} {r.choice(W.LIST_THINGS)}.",
                     f"Name some {r.choice(W.LIST_THINGS)}."])


SINGLE = {
    "math_word": (_math_word, 4), "arithmetic": (_arith, 2), "code_write": (_code_write, 3),
    "code_explain": (_snippet, 2), "code_concept": (_code_concept, 1), "explain": (_explain, 4),
    "compare": (_compare, 1), "why_how": (_why_how, 2), "writing": (_writing, 3), "email": (_email, 1),
    "advice": (_advice, 2), "list": (_list, 1),
}


def make_conversation(r: random.Random) -> dict:
    cats = list(SINGLE)
    cat = r.choices(cats, weights=[SINGLE[c][1] for c in cats])[0]
    msgs = []
    if r.random() < 0.15:
        msgs.append({"role": "system", "content": r.choice(W.SYSTEMS)})
    msgs.append({"role": "user", "content": SINGLE[cat][0](r)})
    turns = r.choices([1, 2, 3], weights=[85, 12, 3])[0]
    for _ in range(turns - 1):
        follow = r.choice(W.FOLLOW_UPS) if r.random() < 0.7 else SINGLE[r.choice(cats)][0](r)
        msgs.append({"role": "user", "content": follow})
    return {"category": cat if turns == 1 else f"multi_turn/{cat}", "messages": msgs}


def build(num: int, heldout: int, seed: int = 0) -> tuple[list[dict], list[dict]]:
    """`num` train and `heldout` held-out conversations, unique by their text."""
    r = random.Random(seed)
    seen, convs = set(), []
    tries = 0
    while len(convs) < num + heldout:
        tries += 1
        if tries > 50 * (num + heldout):
            raise RuntimeError(f"only {len(convs)} unique prompts after {tries} tries")
        c = make_conversation(r)
        key = json.dumps(c["messages"], sort_keys=True)
        if key in seen:
            continue
        seen.add(key)
        convs.append(c)
    return convs[heldout:], convs[:heldout]


def write_jsonl(path: Path, rows) -> None:
    with open(path, "w") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m sglang_dflash.train.prompts", description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--num", type=int, default=8000)
    ap.add_argument("--heldout", type=int, default=200)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args(argv)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    train, held = build(a.num, a.heldout, a.seed)
    write_jsonl(out / "train.jsonl", train)
    write_jsonl(out / "heldout.jsonl", held)
    print(f"wrote {len(train)} train and {len(held)} held-out conversations to {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
