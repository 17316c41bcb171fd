"""Training data: read files, render chats, tokenize into (input_ids, loss_mask) examples.

Accepted inputs (any mix; one record per line for JSONL):
* `*.txt` (or any non-JSON file): plain text, split on blank lines into passages; every token
  after the first is a training target.
* JSONL `{"text": "..."}`: the same, one passage per line.
* JSONL `{"prompt": "...", "response": "..."}`: rendered as a one-turn chat when the tokenizer has
  a chat template, else as plain `prompt + response`; only the response is trained on. Without
  `response` the record is a prompt for self-distillation.
* JSONL `{"messages": [{"role": ..., "content": ...}, ...]}`: a chat rendered with the target's
  chat template; only assistant turns are trained on. Without assistant turns it is a prompt for
  self-distillation. A message may carry `"truncated": true` (a reply cut at the token limit):
  then the template's closing tokens after it are not trained on.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
from dataclasses import dataclass
from pathlib import Path


class DataError(ValueError):
    """Unusable training data; the message says which file / line and why."""


@dataclass
class Example:
    input_ids: list[int]
    loss_mask: list[bool]  # True where a token may be predicted (and anchor) during training

    def __len__(self) -> int:
        return len(self.input_ids)


ROLES = {"system", "user", "assistant", "tool"}


def read_records(paths) -> list[dict]:
    """All records of `paths`, each tagged with `_src` = "file:line" for error messages."""
    if isinstance(paths, (str, Path)):
        paths = [paths]
    if not paths:
        raise DataError("no data files given")
    records = []
    for path in map(Path, paths):
        if not path.is_file():
            raise DataError(f"{path}: no such file")
        text = path.read_text(encoding="utf-8")
        if not text.strip():
            raise DataError(f"{path}: file is empty")
        if path.suffix in (".jsonl", ".json"):
            n0 = len(records)
            for i, line in enumerate(text.splitlines(), 1):
                if not line.strip():
                    continue
                try:
                    rec = json.loads(line)
                except json.JSONDecodeError as e:
                    raise DataError(f"{path}:{i}: not valid JSON ({e.msg})") from None
                if not isinstance(rec, dict):
                    raise DataError(f"{path}:{i}: expected a JSON object, got {type(rec).__name__}")
                kind(rec, f"{path}:{i}")  # validates the shape early
                rec["_src"] = f"{path}:{i}"
                records.append(rec)
            if len(records) == n0:
                raise DataError(f"{path}: no records")
        else:
            for j, passage in enumerate(p.strip() for p in text.split("\n\n")):
                if passage:
                    records.append({"text": passage, "_src": f"{path}#{j}"})
    return records


def kind(rec: dict, src: str = "") -> str:
    """'text', 'prompt' (needs a response generated) or 'chat' (has its own assistant turns)."""
    where = f"{src}: " if src else ""
    if "messages" in rec:
        msgs = rec["messages"]
        if not isinstance(msgs, list) or not msgs:
            raise DataError(f"{where}'messages' must be a non-empty list")
        for m in msgs:
            if not isinstance(m, dict) or m.get("role") not in ROLES or not isinstance(m.get("content"), str):
                raise DataError(f"{where}each message needs a role in {sorted(ROLES)} and string content, got {m!r}")
        if msgs[0]["role"] == "assistant":
            raise DataError(f"{where}a conversation cannot start with an assistant turn")
        has_reply = any(m["role"] == "assistant" for m in msgs)
        return "chat" if has_reply else "prompt"
    if "prompt" in rec:
        if not isinstance(rec["prompt"], str) or not rec["prompt"].strip():
            raise DataError(f"{where}'prompt' must be a non-empty string")
        return "chat" if isinstance(rec.get("response"), str) else "prompt"
    if "text" in rec:
        if not isinstance(rec["text"], str):
            raise DataError(f"{where}'text' must be a string")
        return "text"
    raise DataError(f"{where}a record needs 'text', 'prompt' or 'messages'; got keys {sorted(rec)}")


def messages_of(rec: dict) -> list[dict]:
    """The conversation of a prompt/chat record as a message list."""
    if "messages" in rec:
        return rec["messages"]
    msgs = [{"role": "user", "content": rec["prompt"]}]
    if isinstance(rec.get("response"), str):
        msgs.append({"role": "assistant", "content": rec["response"]})
    return msgs


def _template_ids(tokenizer, messages, add_generation_prompt: bool) -> list[int]:
    out = tokenizer.apply_chat_template(messages, tokenize=True, add_generation_prompt=add_generation_prompt)
    if isinstance(out, dict) or hasattr(out, "keys"):
        out = out["input_ids"]
    return list(out)


def render_prompt(tokenizer, messages) -> list[int]:
    """Token ids of `messages` followed by the assistant header (what the target continues)."""
    require_chat_template(tokenizer)
    return _template_ids(tokenizer, messages, True)


def require_chat_template(tokenizer) -> None:
    if not getattr(tokenizer, "chat_template", None):
        raise DataError("chat/prompt data needs a tokenizer with a chat template, and this target's "
                        "tokenizer has none; give plain text ({'text': ...} or .txt) instead")


def chat_example(tokenizer, messages, max_len: int) -> Example:
    """Render a conversation; loss on the tokens of each assistant turn (its closing tokens too,
    unless the turn is marked truncated).

    Turns are located in the rendered text (the chat template must render a conversation's prefix
    as a prefix of its text), then mapped to tokens through the fast tokenizer's character
    offsets, so a token that straddles the header/reply boundary (say a merged blank line) is
    simply not trained on."""
    require_chat_template(tokenizer)
    clean = [{"role": m["role"], "content": m["content"]} for m in messages]

    def text(msgs, gen):
        return tokenizer.apply_chat_template(msgs, tokenize=False, add_generation_prompt=gen)

    full = text(clean, False)
    enc = tokenizer(full, add_special_tokens=False, return_offsets_mapping=True)
    ids, offsets = list(enc["input_ids"]), enc["offset_mapping"]
    mask = [False] * len(ids)
    for i, m in enumerate(messages):
        if m["role"] != "assistant":
            continue
        before, upto = text(clean[:i], True), text(clean[: i + 1], False)
        if not (full.startswith(before) and full.startswith(upto)):
            raise DataError("the chat template does not render conversations incrementally (a prefix of "
                            "the conversation is not a prefix of its text); give prompt/response text instead")
        start = len(before)
        end = start + len(m["content"]) if m.get("truncated") else len(upto)
        for j, (a, _) in enumerate(offsets):
            if start <= a < end:
                mask[j] = True
    return Example(ids[:max_len], mask[:max_len])


def text_example(tokenizer, text: str, max_len: int) -> list[Example]:
    ids = tokenizer.encode(text, add_special_tokens=False)
    bos = getattr(tokenizer, "bos_token_id", None)
    if bos is not None and getattr(tokenizer, "add_bos_token", False):
        ids = [bos] + ids
    out = []
    for s in range(0, max(len(ids) - 1, 1), max_len):
        chunk = ids[s: s + max_len]
        if len(chunk) >= 2:
            out.append(Example(chunk, [False] + [True] * (len(chunk) - 1)))
    return out


def plain_prompt_example(tokenizer, prompt: str, response: str, max_len: int) -> Example:
    p = tokenizer.encode(prompt, add_special_tokens=False)
    r = tokenizer.encode(response, add_special_tokens=False)
    return Example((p + r)[:max_len], ([False] * len(p) + [True] * len(r))[:max_len])


def build_examples(records, tokenizer, max_len: int, min_loss_tokens: int = 2, workers: int = 1) -> list[Example]:
    """Tokenize records that carry their own targets ('text' and 'chat'); 'prompt' records must
    first get their responses from `distill`. Raises DataError if nothing usable remains.

    `workers` > 1 tokenizes in that many forked processes (0 = one per core, up to 16), for large
    data sets only (>= 4000 records); the result is the same, in the same order."""
    if workers == 0:
        workers = min(16, os.cpu_count() or 1)
    if workers > 1 and len(records) >= 4000 and "fork" in mp.get_all_start_methods():
        global _WORKER_TOK
        _WORKER_TOK = tokenizer
        step = -(-len(records) // (4 * workers))
        parts = [records[s: s + step] for s in range(0, len(records), step)]
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
        with mp.get_context("fork").Pool(workers) as pool:
            done = pool.starmap(_examples_part, [(p, max_len, min_loss_tokens) for p in parts])
        examples = [e for part, _ in done for e in part]
        pending = sum(n for _, n in done)
    else:
        examples, pending = _examples_part(records, max_len, min_loss_tokens, tokenizer)
    if pending and not examples:
        raise DataError(f"{pending} records are prompts without responses: pass --self-distill to have "
                        "the target write the responses, or give responses / assistant turns")
    if not examples:
        raise DataError(f"no usable training examples (every example has < {min_loss_tokens} trainable "
                        f"tokens within --max-len {max_len})")
    return examples


_WORKER_TOK = None  # the tokenizer forked tokenizing processes inherit


def _examples_part(records, max_len: int, min_loss_tokens: int, tokenizer=None):
    tokenizer = tokenizer if tokenizer is not None else _WORKER_TOK
    examples = []
    pending = 0
    for rec in records:
        k = kind(rec, rec.get("_src", ""))
        if k == "prompt":
            pending += 1
            continue
        if k == "text":
            examples += text_example(tokenizer, rec["text"], max_len)
        elif "messages" not in rec and not getattr(tokenizer, "chat_template", None):
            examples.append(plain_prompt_example(tokenizer, rec["prompt"], rec["response"], max_len))
        else:
            examples.append(chat_example(tokenizer, messages_of(rec), max_len))
    return [e for e in examples if sum(e.loss_mask) >= min_loss_tokens], pending
