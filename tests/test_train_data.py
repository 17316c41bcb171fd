"""Training data: shapes it accepts, and clear errors for data it cannot use."""
import json

import pytest

from sglang_dflash.train.data import DataError, build_examples, kind, read_records
from sglang_dflash.train.prompts import build


class NoTemplateTokenizer:
    chat_template = None
    bos_token_id = None

    def encode(self, text, add_special_tokens=False):
        return [ord(c) % 200 for c in text]


def write(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_record_kinds():
    assert kind({"text": "a"}) == "text"
    assert kind({"prompt": "q"}) == "prompt"
    assert kind({"prompt": "q", "response": "a"}) == "chat"
    assert kind({"messages": [{"role": "user", "content": "q"}]}) == "prompt"
    assert kind({"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}) == "chat"


@pytest.mark.parametrize("content, message", [
    ("", "file is empty"),
    ("{not json}\n", ":1: not valid JSON"),
    ('{"foo": 1}\n', "needs 'text', 'prompt' or 'messages'"),
    ('{"messages": [{"role": "robot", "content": "x"}]}\n', "each message needs a role"),
    ('[1, 2]\n', "expected a JSON object"),
])
def test_bad_files_are_named_errors(tmp_path, content, message):
    p = tmp_path / "d.jsonl"
    p.write_text(content)
    with pytest.raises(DataError, match=message):
        read_records([p])


def test_missing_file(tmp_path):
    with pytest.raises(DataError, match="no such file"):
        read_records([tmp_path / "nope.jsonl"])


def test_chat_data_needs_a_chat_template(tmp_path):
    recs = read_records([write(tmp_path / "c.jsonl", [{"messages": [
        {"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}])])
    with pytest.raises(DataError, match="chat template"):
        build_examples(recs, NoTemplateTokenizer(), 64)


def test_prompts_without_replies_need_self_distill(tmp_path):
    recs = read_records([write(tmp_path / "p.jsonl", [{"prompt": "hello there"}])])
    with pytest.raises(DataError, match="--self-distill"):
        build_examples(recs, NoTemplateTokenizer(), 64)


def test_text_and_plain_prompt_response_without_template(tmp_path):
    (tmp_path / "t.txt").write_text("first passage here\n\nsecond passage")
    recs = read_records([tmp_path / "t.txt", write(tmp_path / "r.jsonl", [{"prompt": "ab", "response": "cd"}])])
    ex = build_examples(recs, NoTemplateTokenizer(), 64)
    assert len(ex) == 3
    assert ex[2].loss_mask == [False, False, True, True]


def test_prompt_generator_is_deterministic_and_split():
    train, held = build(300, 20, seed=0)
    again, held2 = build(300, 20, seed=0)
    assert train == again and held == held2
    seen = {json.dumps(c["messages"]) for c in train}
    assert not any(json.dumps(c["messages"]) in seen for c in held)
    assert all(m["role"] in ("system", "user") for c in train for m in c["messages"])
    assert len({c["category"].split("/")[-1] for c in train}) >= 10


def test_parallel_tokenizing_gives_the_same_examples():
    recs = [{"text": f"passage number {i} " * (1 + i % 5)} for i in range(4100)] + [{"prompt": "q"}]
    serial = build_examples(recs, NoTemplateTokenizer(), 32)
    assert build_examples(recs, NoTemplateTokenizer(), 32, workers=3) == serial
