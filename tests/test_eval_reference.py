"""Eval through the reference decoder on a tiny random target + DFlash drafter (no downloads)."""

import json

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from sglang_dflash.bench.prompts import Prompt  # noqa: E402
from sglang_dflash.eval.backends import ReferenceBackend  # noqa: E402
from sglang_dflash.eval.cli import main  # noqa: E402
from sglang_dflash.eval.evaluate import evaluate  # noqa: E402
from sglang_dflash.eval.tasks import load_tasks  # noqa: E402
from sglang_dflash.testing import agreeable_pair, tiny_target  # noqa: E402

CHAT_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def byte_tokenizer():
    """A 258-token byte-level tokenizer with a chat template, built offline."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {c: i for i, c in enumerate(sorted(pre_tokenizers.ByteLevel.alphabet()))}
    tk = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tk.decoder = decoders.ByteLevel()
    tok = PreTrainedTokenizerFast(tokenizer_object=tk, eos_token="<|im_end|>",
                                  additional_special_tokens=["<|im_start|>"])
    tok.chat_template = CHAT_TEMPLATE
    return tok


class ShortCodec:
    """Bytes of the last user turn, cut to 24 tokens; no EOS, so every turn runs to max tokens."""

    eos_token_ids: list[int] = []

    def encode(self, messages):
        return list(messages[-1]["content"].encode())[:24] or [0]

    def decode(self, ids):
        return bytes(i % 128 for i in ids).decode("ascii", "replace")


@pytest.fixture(scope="module")
def pair():
    target = tiny_target("qwen3", vocab=260)          # float64: the fastest on small CPUs
    drafter = agreeable_pair(target, block_size=4)
    return target, drafter


def test_reference_backend_reports_steps_and_acceptance(pair):
    target, drafter = pair
    backend = ReferenceBackend(target, drafter, ShortCodec(), max_tokens=16)
    turns = backend.run(Prompt(pid="p", turns=("hello there", "second turn")))
    assert len(turns) == 2
    for t in turns:
        assert t.ok and t.output_tokens == 16 and t.steps == len(t.step_accepts) > 0
        assert all(1 <= a <= 4 for a in t.step_accepts)
        # first token comes from prefill; the last step may be cut at max_tokens
        assert t.output_tokens <= 1 + sum(t.step_accepts)
        assert t.accept_len == pytest.approx(16 / t.steps)


def test_reference_eval_accepts_drafts_of_an_agreeable_pair(pair):
    target, drafter = pair
    tasks = load_tasks(["gsm", "chat"], num_prompts=2)
    stats = evaluate(tasks, ReferenceBackend(target, drafter, ShortCodec(), max_tokens=16),
                     concurrency=8, progress=False)
    assert [s.task for s in stats] == ["gsm", "chat"] and stats[1].turns == 4
    for s in stats:
        assert s.failed == 0 and s.steps == sum(s.step_histogram.values())
        assert 1.0 <= s.accept_len_pooled <= 4.0
    # the agreeable drafter always proposes a token the target often picks: some steps keep drafts
    assert any(a > 1 for s in stats for a in s.step_histogram)


def test_eval_cli_reference_from_saved_dirs(pair, tmp_path):
    target, drafter = pair
    tdir, ddir = tmp_path / "target", tmp_path / "drafter"
    target.save_pretrained(tdir)
    byte_tokenizer().save_pretrained(tdir)
    drafter.save_pretrained(str(ddir))
    rc = main(["--target", str(tdir), "--drafter", str(ddir), "--tasks", "code",
               "--num-prompts", "2", "--max-tokens", "12", "--block-size", "3",
               "--dtype", "float64", "--out", str(tmp_path / "out"), "--no-progress"])
    assert rc == 0
    data = json.loads((tmp_path / "out" / "eval.json").read_text())
    [task] = data["tasks"]
    assert data["backend"] == "reference" and task["turns"] == 2 and task["failed"] == 0
    assert task["output_tokens"] <= 24 and task["steps"] > 0
    assert all(1 <= int(a) <= 3 for a in task["step_histogram"])   # --block-size 3 honoured
