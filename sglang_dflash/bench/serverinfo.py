"""What a running SGLang server says about itself (``GET /server_info``), for the report.

A result table must name the SGLang version and the attention backends it ran with; the
server knows them better than our command line does (it resolves "auto" choices), so we ask it.
"""

from __future__ import annotations

import json
import urllib.request

KEYS = (
    "version", "model_path", "served_model_name", "dtype", "load_format", "tp_size", "dp_size",
    "attention_backend", "prefill_attention_backend", "decode_attention_backend",
    "sampling_backend", "kv_cache_dtype", "max_running_requests", "cuda_graph_max_bs",
    "disable_cuda_graph", "disable_overlap_schedule", "speculative_algorithm",
    "speculative_draft_model_path", "speculative_num_draft_tokens",
    "speculative_draft_attention_backend", "speculative_dflash_block_size",
)


def _find(obj: object, key: str, depth: int = 0):
    """First value under ``key`` anywhere in nested dicts (server args may be grouped)."""
    if isinstance(obj, dict):
        if key in obj and not isinstance(obj[key], dict):
            return obj[key]
        if depth < 4:
            for value in obj.values():
                found = _find(value, key, depth + 1)
                if found is not None:
                    return found
    return None


def server_info(base_url: str, timeout: float = 10.0) -> dict:
    """Selected settings (``KEYS``) plus ``avg_spec_accept_length``; empty when unavailable."""
    for path in ("/server_info", "/get_server_info"):
        try:
            with urllib.request.urlopen(base_url.rstrip("/") + path, timeout=timeout) as r:
                data = json.loads(r.read())
            break
        except Exception:  # noqa: BLE001 - not an SGLang server, or an older one
            data = None
    if not isinstance(data, dict):
        return {}
    info = {k: v for k in KEYS if (v := _find(data, k)) is not None}
    states = data.get("internal_states") or []
    if states and isinstance(states[0], dict) and "avg_spec_accept_length" in states[0]:
        info["avg_spec_accept_length"] = states[0]["avg_spec_accept_length"]
    return info
