"""Client-side chat templating, for endpoints that take raw text (``/generate``, completions).

DFlash drafters are trained on chat-formatted text, so sending a bare question to ``/generate``
measures a different (lower) acceptance than a chat request. Given the target's tokenizer
directory we render the same prompt the chat endpoint would.
"""

from __future__ import annotations

from collections.abc import Callable

Formatter = Callable[[list[dict]], str]


def plain(messages: list[dict]) -> str:
    """Fallback without a tokenizer: the last user message, untouched."""
    return messages[-1]["content"]


def hf_chat_formatter(tokenizer_dir: str, template_kwargs: dict | None = None) -> Formatter:
    """Render messages with the tokenizer's own chat template (``transformers`` is a core dep)."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tokenizer_dir)
    if not getattr(tok, "chat_template", None):
        raise ValueError(f"{tokenizer_dir}: tokenizer has no chat template; use --raw-prompts")
    kwargs = dict(template_kwargs or {})

    def render(messages: list[dict]) -> str:
        return tok.apply_chat_template(
            messages, tokenize=False, add_generation_prompt=True, **kwargs
        )

    return render
