"""The name of a Hugging Face model's KV-cache argument, which transformers renamed.

Up to about 5.12 (SGLang 0.5.17's pin) a causal LM's ``forward`` takes ``past_key_values`` and
returns it under the same name; later 5.x releases take and return ``cache``, warn on the old
name and announce its removal. Our plain decoding loops run under both (the demo installs the
newest transformers, the SGLang harness its pin), so they pass and read the cache through
these two helpers.
"""
from __future__ import annotations

import functools
import inspect


@functools.lru_cache(maxsize=None)
def _cache_arg(model_class: type) -> str:
    params = inspect.signature(model_class.forward).parameters
    return "cache" if "cache" in params else "past_key_values"


def with_cache(model, cache) -> dict:
    """Keyword arguments that hand ``cache`` (None on the first call) to ``model``'s forward."""
    return {_cache_arg(type(model)): cache}


def cache_of(output):
    """The KV cache a forward with ``use_cache=True`` returned."""
    fields = getattr(type(output), "__dataclass_fields__", {})
    return getattr(output, "cache" if "cache" in fields else "past_key_values")
