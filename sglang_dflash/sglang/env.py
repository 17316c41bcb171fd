"""Environment switches of the SGLang integration, read in one place.

Environment variables are the only way to configure a SGLang plugin: SGLang drops
command-line flags it does not know, and every SGLang process (launcher, scheduler,
detokenizer) re-runs the plugin, so the variables reach all of them.
"""

from __future__ import annotations

import os

IMPL_VAR = "SGLANG_DFLASH_IMPL"
IMPL_OURS = "sglang_dflash"
IMPL_BUILTIN = "builtin"
_IMPL_ALIASES = {"": IMPL_OURS, "ours": IMPL_OURS, "sglang_dflash": IMPL_OURS,
                 "sglang-dflash": IMPL_OURS, "builtin": IMPL_BUILTIN}


def impl() -> str:
    """Which DFLASH worker serves ``--speculative-algorithm DFLASH``.

    ``SGLANG_DFLASH_IMPL=builtin`` selects SGLang's own worker (for A/B runs); unset,
    empty or ``sglang_dflash`` selects ours. Anything else is a configuration error."""
    raw = os.environ.get(IMPL_VAR, "").strip().lower()
    if raw not in _IMPL_ALIASES:
        raise ValueError(
            f"{IMPL_VAR}: expected one of 'sglang_dflash' (default) or 'builtin', got {raw!r}"
        )
    return _IMPL_ALIASES[raw]


def cpu_engine() -> bool:
    """SGLang's CPU engine is selected (``SGLANG_USE_CPU_ENGINE=1``): our CPU fixes apply."""
    return os.environ.get("SGLANG_USE_CPU_ENGINE", "").strip().lower() in ("1", "true")
