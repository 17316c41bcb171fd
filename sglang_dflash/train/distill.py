"""Self-distillation: the target writes the assistant replies the drafter learns to predict.

Each conversation's user turns are answered in order (a multi-turn conversation takes one round
per user turn, the target seeing its own earlier replies). Generation is batched (left padding,
prompts sorted by length) with Hugging Face `generate`, greedy or sampled. Finished
conversations are appended to a JSONL cache keyed by conversation + settings, so an interrupted
or repeated run only generates what is missing.
"""

from __future__ import annotations

import hashlib
import json
import random
import time
from pathlib import Path

import torch
from tqdm.auto import tqdm

from .data import messages_of, read_records, render_prompt, require_chat_template


def add_io_args(ap) -> None:
    """The command-line options every distiller shares: target, data, output and selection."""
    ap.add_argument("--target", required=True, help="Hugging Face checkpoint folder, or 'smollm2'")
    ap.add_argument("--data", nargs="+", required=True, help="prompt / chat JSONL (assistant turns are regenerated)")
    ap.add_argument("--out", required=True, help="JSONL of the answered conversations (rewritten)")
    ap.add_argument("--cache", help="JSONL cache of fully answered conversations, reused by a later run "
                    "(default: OUT.cache)")
    ap.add_argument("--exclude", nargs="*", default=[], help="drop conversations whose prompts are in these files")
    ap.add_argument("--num", type=int, help="use only the first N conversations (after --exclude)")
    ap.add_argument("--max-new-tokens", type=int, default=256)


def prompt_key(rec: dict) -> str:
    """What identifies a conversation's prompt: its turns without the assistant's."""
    return json.dumps([(m["role"], m["content"]) for m in messages_of(rec) if m["role"] != "assistant"])


def select_records(data, exclude=(), num: int | None = None) -> tuple[list[dict], int]:
    """The prompt / chat records of the `data` files a distiller answers, and how many were
    dropped: plain-text records, those whose prompt is in the `exclude` files (held-out
    sets), and those past the first `num`."""
    records = read_records(data)
    skip = {prompt_key(r) for r in read_records(exclude)} if exclude else set()
    kept = [r for r in records if "text" not in r and prompt_key(r) not in skip]
    if num:
        kept = kept[:num]
    return kept, len(records) - len(kept)


def write_answered(path, done: list[dict]) -> int:
    """Write the answered conversations as chat JSONL; returns the number of replies."""
    with open(path, "w", encoding="utf-8") as f:
        for r in done:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    return sum(sum(m["role"] == "assistant" for m in r["messages"]) for r in done)


def _key(messages, settings: dict) -> str:
    blob = json.dumps({"m": [(m["role"], m["content"]) for m in messages], "s": settings}, sort_keys=True)
    return hashlib.sha1(blob.encode()).hexdigest()


def _load_cache(path: Path) -> dict:
    done = {}
    if path.is_file():
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line cut by an interrupted write
            done[row["key"]] = row
    return done


@torch.no_grad()
def _generate(target, prompts: list[list[int]], *, max_new_tokens, temperature, top_p, pad_id, eos_ids,
              generator_seed) -> list[tuple[list[int], bool]]:
    """(reply ids without the stop token, truncated) for each prompt; one padded batch."""
    device = next(target.parameters()).device
    n = max(len(p) for p in prompts)
    ids = torch.full((len(prompts), n), pad_id, dtype=torch.long)
    att = torch.zeros((len(prompts), n), dtype=torch.long)
    for i, p in enumerate(prompts):
        ids[i, n - len(p):] = torch.tensor(p)
        att[i, n - len(p):] = 1
    kw = dict(do_sample=False)
    if temperature > 0:
        torch.manual_seed(generator_seed)
        kw = dict(do_sample=True, temperature=temperature, top_p=top_p, top_k=0)
    out = target.generate(input_ids=ids.to(device), attention_mask=att.to(device), max_new_tokens=max_new_tokens,
                          pad_token_id=pad_id, eos_token_id=list(eos_ids), **kw)
    res = []
    for row in out[:, n:].tolist():
        cut = next((j for j, t in enumerate(row) if t in eos_ids), None)
        res.append((row if cut is None else row[:cut], cut is None))
    return res


def distill(target, tokenizer, records, cache_path, *, max_new_tokens=256, temperature=0.0, top_p=1.0,
            batch_size=64, max_prompt_len=1024, seed=0, max_minutes=None, progress=True,
            generate_fn=None, eos_ids=None, model_name=None, deadline=None) -> list[dict]:
    """Chat records (`{"messages": [...]}`) with every user turn answered by `target`.

    `records` are prompt or chat records (data.kind); any assistant turns in them are dropped and
    regenerated. Replies that hit `max_new_tokens` carry `"truncated": true`. With `max_minutes`,
    generation stops when that time is up: conversations answered so far are returned (those
    with only some turns answered end at their last reply and are not cached), the rest dropped.
    `deadline` (a time.time() value) does the same at an absolute time.

    Another generator (e.g. an SGLang engine, see distill_sglang) plugs in as `generate_fn(prompts,
    seed) -> [(reply ids without the stop token, truncated) or None, ...]` (None: not answered in
    time, which ends generation like the deadline); `target` may then be None, and
    `eos_ids` / `model_name` say what its generation_config / config would have."""
    require_chat_template(tokenizer)
    eos_ids = set(eos_ids or ())
    gen_cfg = getattr(target, "generation_config", None)
    for src in (getattr(gen_cfg, "eos_token_id", None), tokenizer.eos_token_id):
        eos_ids |= set(src if isinstance(src, (list, tuple)) else [src] if src is not None else [])
    if not eos_ids:
        raise ValueError("the target defines no eos token; self-distillation needs one to stop replies")
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else min(eos_ids)
    settings = {"max_new_tokens": max_new_tokens, "temperature": temperature, "top_p": top_p,
                "seed": seed, "model": model_name if model_name is not None
                else getattr(getattr(target, "config", None), "_name_or_path", "")}
    cache_path = Path(cache_path)
    cache_path.parent.mkdir(parents=True, exist_ok=True)
    done = _load_cache(cache_path)

    convs = []  # [key, history, remaining turns]
    for rec in records:
        msgs = [m for m in messages_of(rec) if m["role"] != "assistant"]
        key = _key(msgs, settings)
        if key not in done:
            convs.append([key, [], msgs])
    random.Random(seed).shuffle(convs)  # a time-capped run then keeps a random subset
    total_turns = sum(sum(m["role"] == "user" for m in c[2]) for c in convs)
    bar = tqdm(total=total_turns, desc="self-distill", unit="reply", disable=not progress)
    if max_minutes:
        deadline = min(deadline or float("inf"), time.time() + 60 * max_minutes)
    n_tok, rnd, out_of_time, last_batch_s = 0, 0, False, 0.0
    partial = {}
    with open(cache_path, "a", encoding="utf-8") as cache:
        while convs and not out_of_time:
            work = []
            for c in convs:  # move turns up to and including the next user turn into the history
                while c[2]:
                    m = c[2].pop(0)
                    c[1].append(dict(m))
                    if m["role"] == "user":
                        break
                work.append(c)
            answered = set()
            for s in range(0, len(work), batch_size):
                # stop when the next batch would not finish in time (as long as the last one took)
                if deadline and time.time() + last_batch_s > deadline:
                    out_of_time = True
                    break
                tb = time.time()
                chunk = [(c, render_prompt(tokenizer, c[1])[-max_prompt_len:]) for c in work[s: s + batch_size]]
                if generate_fn is not None:
                    outs = generate_fn([w[1] for w in chunk], seed + 7919 * rnd + s)
                else:
                    outs = _generate(target, [w[1] for w in chunk], max_new_tokens=max_new_tokens,
                                     temperature=temperature, top_p=top_p, pad_id=pad_id, eos_ids=eos_ids,
                                     generator_seed=seed + 7919 * rnd + s)
                for (c, _), res in zip(chunk, outs):
                    if res is None:  # the generator ran out of time for this one
                        out_of_time = True
                        continue
                    reply, truncated = res
                    msg = {"role": "assistant", "content": tokenizer.decode(reply, skip_special_tokens=False)}
                    if truncated:
                        msg["truncated"] = True
                    c[1].append(msg)
                    answered.add(c[0])
                    n_tok += len(reply)
                last_batch_s = (time.time() - tb) * len(work[s + batch_size: s + 2 * batch_size]) / len(chunk)
                bar.update(len(chunk))
                bar.set_postfix(tokens=n_tok)
                if out_of_time:
                    break
            unfinished = []
            for c in convs:
                if c[0] not in answered:  # cut off by the deadline: keep earlier replies, if any
                    hist = c[1][: max((i + 1 for i, m in enumerate(c[1]) if m["role"] == "assistant"), default=0)]
                    if hist:
                        partial[c[0]] = {"key": c[0], "messages": hist}
                elif any(m["role"] == "user" for m in c[2]):
                    unfinished.append(c)
                else:
                    row = {"key": c[0], "messages": c[1]}
                    done[c[0]] = row
                    cache.write(json.dumps(row, ensure_ascii=False) + "\n")
            cache.flush()
            if out_of_time:
                for c in unfinished:
                    partial[c[0]] = {"key": c[0], "messages": c[1]}
            convs = unfinished
            rnd += 1
    bar.close()
    out = []
    for rec in records:
        key = _key([m for m in messages_of(rec) if m["role"] != "assistant"], settings)
        row = done.get(key) or partial.get(key)
        if row is not None:
            out.append({"messages": row["messages"]})
    return out
