"""Prompt files and the shipped prompt sets."""

import json

import pytest

from sglang_dflash.bench.prompts import PromptError, load_prompts, named_sets


def test_txt_one_prompt_per_non_empty_line(tmp_path):
    f = tmp_path / "p.txt"
    f.write_text("first prompt\n\n  second prompt  \n")
    prompts = load_prompts(str(f))
    assert [p.turns for p in prompts] == [("first prompt",), ("second prompt",)]
    assert prompts[0].pid == "p.txt/1" and prompts[1].pid == "p.txt/3"
    assert prompts[0].first_messages() == [{"role": "user", "content": "first prompt"}]


def test_jsonl_accepts_every_record_shape(tmp_path):
    rows = [
        "plain string",
        {"prompt": "with prompt key"},
        {"text": "with text key", "system": "be brief"},
        {"turns": ["turn one", "turn two"]},
        {"messages": [{"role": "system", "content": "sys"}, {"role": "user", "content": "u1"},
                      {"role": "assistant", "content": "a1"}, {"role": "user", "content": "u2"}]},
    ]
    f = tmp_path / "set.jsonl"
    f.write_text("\n".join(json.dumps(r) for r in rows) + "\n\n")
    p = load_prompts(str(f))
    assert [x.turns for x in p] == [("plain string",), ("with prompt key",), ("with text key",),
                                     ("turn one", "turn two"), ("u1", "u2")]
    assert p[2].system == "be brief" and p[4].system == "sys"
    assert all(x.task == "set" for x in p)
    # second turn replays the model's first answer
    assert p[4].messages_for(1, ["A1"]) == [
        {"role": "system", "content": "sys"}, {"role": "user", "content": "u1"},
        {"role": "assistant", "content": "A1"}, {"role": "user", "content": "u2"}]


@pytest.mark.parametrize("line, msg", [("{oops", "not valid JSON"), ("[1, 2]", "expected a string"),
                                        ('{"foo": 1}', "needs 'prompt'")])
def test_jsonl_errors_name_the_line(tmp_path, line, msg):
    f = tmp_path / "bad.jsonl"
    f.write_text('"ok"\n' + line + "\n")
    with pytest.raises(PromptError, match=f"bad.jsonl:2: .*{msg}"):
        load_prompts(str(f))


def test_unknown_source_lists_named_sets():
    with pytest.raises(PromptError, match="named sets: .*gsm.*mix"):
        load_prompts("no-such-set")


def test_shipped_sets_load_and_mix_is_their_union():
    names = named_sets()
    assert set(names) >= {"gsm", "math", "humaneval", "code", "chat"}
    sizes = {n: len(load_prompts(n)) for n in names}
    assert all(20 <= s <= 40 for s in sizes.values()), sizes
    assert len(load_prompts("mix")) == sum(sizes.values())
    assert all(len(p.turns) == 2 for p in load_prompts("chat"))
    assert load_prompts("humaneval")[0].turns[0].count("```") == 2
