"""Self-distillation with a pluggable generator (what distill_sglang plugs SGLang into): multi-turn
rounds, the held-out exclusion, and a deadline that keeps what was answered."""
import json
import time

from sglang_dflash.train.distill import distill
from sglang_dflash.train.distill_sglang import prompt_key, sglang_generate_fn
from smollm2_fixture import smollm2, smollm2_dir  # noqa: F401


def convs(n, turns=1):
    return [{"messages": [{"role": "user", "content": f"Question {i} turn {t}?"} for t in range(turns)]}
            for i in range(n)]


def test_generate_fn_answers_every_turn(tmp_path, smollm2):  # noqa: F811
    _, tok = smollm2
    seen = []

    def gen(prompts, seed):
        seen.append(len(prompts))
        return [(tok.encode(f"Answer {len(p)}", add_special_tokens=False), False) for p in prompts]

    recs = convs(3, turns=2) + convs(2)
    out = distill(None, tok, recs, tmp_path / "c.jsonl", batch_size=2, generate_fn=gen, eos_ids={2},
                  model_name="fake", progress=False)
    assert [sum(m["role"] == "assistant" for m in r["messages"]) for r in out] == [2, 2, 2, 1, 1]
    assert out[0]["messages"][1]["content"].startswith("Answer ")
    assert sum(seen) == 8  # 5 first turns + 3 second turns
    again = distill(None, tok, recs, tmp_path / "c.jsonl", batch_size=2, generate_fn=gen, eos_ids={2},
                    model_name="fake", progress=False)
    assert again == out and sum(seen) == 8  # all from the cache


def test_deadline_keeps_answered_conversations(tmp_path, smollm2):  # noqa: F811
    _, tok = smollm2

    def slow(prompts, seed):
        time.sleep(0.3)
        return [([100, 101], True) for _ in prompts]

    out = distill(None, tok, convs(10), tmp_path / "c.jsonl", batch_size=2, generate_fn=slow, eos_ids={2},
                  model_name="fake", progress=False, deadline=time.time() + 0.75)
    assert 2 <= len(out) < 10 and all(r["messages"][-1].get("truncated") for r in out)


def test_sglang_generate_fn_reads_engine_outputs_and_drops_late_ones():
    import asyncio

    class Engine:
        loop = asyncio.new_event_loop()

        async def async_generate(self, input_ids, sampling_params):
            assert sampling_params["stop_token_ids"] == [2] and sampling_params["temperature"] == 0.0
            if input_ids[0] == [9]:
                await asyncio.sleep(5)  # past the deadline
            return [{"output_ids": [5, 6, 2], "meta_info": {"finish_reason": {"type": "stop", "matched": 2}}},
                    {"output_ids": [7, 8], "meta_info": {"finish_reason": {"type": "length", "length": 2}}}][
                : len(input_ids)]

    gen = sglang_generate_fn(Engine(), max_new_tokens=2, temperature=0.0, top_p=1.0, eos_ids={2},
                             deadline=time.time() + 0.5, sub_batch=2)
    t = time.time()
    assert gen([[1], [1, 3], [9], [4]], 0) == [([5, 6], False), ([7, 8], True), None, None]
    assert time.time() - t < 2


def test_in_flight_prompts_stay_within_the_bound():
    """--max-in-flight: never more prompts in the engine than asked, and every prompt answered."""
    import asyncio

    class Engine:
        loop = asyncio.new_event_loop()
        now = peak = 0

        async def async_generate(self, input_ids, sampling_params):
            Engine.now += len(input_ids)
            Engine.peak = max(Engine.peak, Engine.now)
            await asyncio.sleep(0.01)
            Engine.now -= len(input_ids)
            return [{"output_ids": [p[0] + 100, 2], "meta_info": {"finish_reason": {"type": "stop"}}}
                    for p in input_ids]

    prompts = [[i] for i in range(50)]
    gen = sglang_generate_fn(Engine(), max_new_tokens=4, temperature=0.0, top_p=1.0, eos_ids={2},
                             sub_batch=4, max_in_flight=12)
    assert gen(prompts, 0) == [([i + 100], False) for i in range(50)]
    assert Engine.peak == 12
    Engine.peak = 0
    everything = sglang_generate_fn(Engine(), max_new_tokens=4, temperature=0.0, top_p=1.0,
                                    eos_ids={2}, sub_batch=4)
    assert len(everything(prompts, 0)) == 50 and Engine.peak == 50


def test_prompt_key_ignores_replies_and_category():
    a = {"category": "x", "messages": [{"role": "user", "content": "hi"}]}
    b = {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]}
    assert prompt_key(a) == prompt_key(b) != prompt_key({"prompt": "ho"})
    assert json.loads(prompt_key(a)) == [["user", "hi"]]


def test_unanswered_outputs_end_generation(tmp_path, smollm2):  # noqa: F811
    _, tok = smollm2

    def half(prompts, seed):
        return [([100], False) if i % 2 == 0 else None for i in range(len(prompts))]

    out = distill(None, tok, convs(6, turns=2), tmp_path / "c.jsonl", batch_size=100, generate_fn=half,
                  eos_ids={2}, model_name="fake", progress=False)
    assert len(out) == 3 and all(sum(m["role"] == "assistant" for m in r["messages"]) == 1 for r in out)


def test_select_records_drops_text_heldout_and_extra(tmp_path):
    from sglang_dflash.train.distill import select_records, write_answered

    chats = convs(4)
    data = tmp_path / "d.jsonl"
    data.write_text("\n".join(json.dumps(r) for r in chats + [{"text": "plain"}]) + "\n")
    held = tmp_path / "h.jsonl"  # the held-out copy carries a reply: the prompt alone must match
    held.write_text(json.dumps({"messages": chats[1]["messages"] + [{"role": "assistant", "content": "x"}]}) + "\n")
    kept, dropped = select_records([data], [held], num=2)
    assert [r["messages"] for r in kept] == [chats[0]["messages"], chats[2]["messages"]] and dropped == 3
    out = tmp_path / "o.jsonl"
    assert write_answered(out, [{"messages": chats[0]["messages"] + [{"role": "assistant", "content": "é"}]}]) == 1
    assert json.loads(out.read_text())["messages"][-1]["content"] == "é"
