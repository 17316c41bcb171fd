"""Where acceptance lengths come from: a running server, or the reference decoder.

Both play every user turn of a prompt in order, feeding the model's own answer back before
the next turn, and report per turn the output tokens and the number of verify steps. The
acceptance length of a turn is ``tokens / steps`` in both cases: SGLang's ``completion_tokens /
spec_verify_ct``, where the first token (from prefill) is counted but is not a step.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from ..bench.client import RequestSpec, send
from ..bench.prompts import Prompt


@dataclass
class TurnResult:
    ok: bool
    output_tokens: int = 0
    steps: int | None = None                 # verify steps; None if the server did not say
    step_accepts: list[int] = field(default_factory=list)   # A+1 per step (reference only)
    error: str | None = None
    detail: str = ""
    text: str = ""

    @property
    def accept_len(self) -> float | None:
        return self.output_tokens / self.steps if self.steps else None


class Backend(Protocol):
    name: str
    parallel: bool                           # may prompts run in several threads at once

    def run(self, prompt: Prompt) -> list[TurnResult]: ...


class ServerBackend:
    """Non-streaming chat requests with ``return_meta_info`` (the only way SGLang 0.5.17's
    OpenAI API returns ``spec_verify_ct``); the server applies its own chat template."""

    parallel = True

    def __init__(self, url: str, *, max_tokens: int, temperature: float = 0.0,
                 timeout: float = 600.0, model: str = "default", extra_body: dict | None = None):
        self.name = f"server {url}"
        self.url, self.timeout = url, timeout
        self.base = RequestSpec(text="", messages=[], max_tokens=max_tokens, ignore_eos=False,
                                temperature=temperature, stream=False, model=model,
                                extra_body=dict(extra_body or {}))

    def run(self, prompt: Prompt) -> list[TurnResult]:
        answers: list[str] = []
        out = []
        for turn in range(len(prompt.turns)):
            msgs = prompt.messages_for(turn, answers)
            spec = RequestSpec(**{**self.base.__dict__, "messages": msgs})
            r = send(self.url, "chat", spec, self.timeout)
            if not r.ok:
                out.append(TurnResult(ok=False, error=r.error, detail=r.detail))
                break                        # later turns need this answer
            out.append(TurnResult(ok=True, output_tokens=r.output_tokens, steps=r.verify_ct,
                                  text=r.text))
            answers.append(r.text)
        return out


class ChatCodec(Protocol):
    """Turns chat messages into target token ids and generated ids back into text."""

    eos_token_ids: list[int]

    def encode(self, messages: list[dict]) -> list[int]: ...

    def decode(self, ids: list[int]) -> str: ...


class HFChatCodec:
    """A Hugging Face tokenizer with its chat template (plain user text when it has none)."""

    def __init__(self, tokenizer, template_kwargs: dict | None = None, eos_token_ids=None):
        self.tok = tokenizer
        self.kwargs = dict(template_kwargs or {})
        eos = eos_token_ids if eos_token_ids is not None else tokenizer.eos_token_id
        self.eos_token_ids = [eos] if isinstance(eos, int) else list(eos or [])

    def encode(self, messages: list[dict]) -> list[int]:
        if getattr(self.tok, "chat_template", None):
            text = self.tok.apply_chat_template(messages, tokenize=False,
                                                add_generation_prompt=True, **self.kwargs)
            return self.tok(text, add_special_tokens=False)["input_ids"]
        text = "\n\n".join(m["content"] for m in messages)
        return self.tok(text)["input_ids"]

    def decode(self, ids: list[int]) -> str:
        return self.tok.decode(ids, skip_special_tokens=True)


class ReferenceBackend:
    """``sglang_dflash.reference.generate`` over an in-memory target and drafter, one prompt
    at a time (the reference loop is the oracle, not a fast path)."""

    parallel = False

    def __init__(self, target, drafter, codec: ChatCodec, *, max_tokens: int,
                 block_size: int | None = None, temperature: float = 0.0, seed: int = 0):
        self.name = "reference"
        self.target, self.drafter, self.codec = target, drafter, codec
        self.max_tokens, self.block_size = max_tokens, block_size
        self.temperature, self.seed = temperature, seed

    @classmethod
    def from_dirs(cls, target_dir: str, drafter_dir: str, *, device: str = "cpu",
                  dtype: str = "float32", template_kwargs: dict | None = None, **kw):
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig

        from ..model import DFlashDrafter

        torch_dtype = getattr(torch, dtype)
        target = AutoModelForCausalLM.from_pretrained(target_dir, dtype=torch_dtype)
        target = target.to(device).eval()
        drafter = DFlashDrafter.from_pretrained(drafter_dir, dtype=torch_dtype, device=device,
                                                target_config=target.config).eval()
        eos = None
        try:                                 # chat models often stop on several ids
            eos = GenerationConfig.from_pretrained(target_dir).eos_token_id
        except (OSError, ValueError):
            pass
        codec = HFChatCodec(AutoTokenizer.from_pretrained(target_dir), template_kwargs, eos)
        return cls(target, drafter, codec, **kw)

    def run(self, prompt: Prompt) -> list[TurnResult]:
        import torch

        from ..reference import generate
        from ..sampling import SamplingParams

        device = next(self.target.parameters()).device
        gen = torch.Generator(device=device).manual_seed(self.seed)
        answers: list[str] = []
        out = []
        for turn in range(len(prompt.turns)):
            ids = self.codec.encode(prompt.messages_for(turn, answers))
            res = generate(self.target, self.drafter, [ids], max_new_tokens=self.max_tokens,
                           block_size=self.block_size,
                           sampling=SamplingParams.make(1, self.temperature, device=device),
                           eos_token_id=self.codec.eos_token_ids, generator=gen)
            tokens, accepts = res.tokens[0], res.accept_lens[0]
            text = self.codec.decode(tokens)
            out.append(TurnResult(ok=True, output_tokens=len(tokens), steps=len(accepts),
                                  step_accepts=list(accepts), text=text))
            answers.append(text)
        return out
