"""DFlash drafter configuration: parse a z-lab `config.json`, check it against the target.

A z-lab DFlash drafter config is a Qwen3 config plus a few DFlash keys, some of which moved
between releases (`block_size` at top level in the first drafters, inside `dflash_config` in
newer ones). `parse_drafter_config` accepts every released layout and returns one frozen
`DFlashConfig`; `validate_against_target` checks that the drafter fits the target it will
borrow an embedding, an LM head and hidden states from.

Every problem raises `DFlashConfigError`, whose message names the field, what was expected
and what was found.
"""
from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from typing import Any, Mapping

SUPPORTED_ARCHITECTURES = ("DFlashDraftModel",)
# Known relatives that need more than base DFlash (convolutions, candidate selectors, other
# projector names). Refused by name instead of half-loaded.
UNSUPPORTED_ARCHITECTURES = (
    "DFlash2DraftModel",
    "DFlash2BeamDraftModel",
    "MiniMaxDFlash2DraftModel",
    "MuseGlimmerAssistantModel",
    "DFlashLagunaForCausalLM",
)
LAYER_TYPES = ("full_attention", "sliding_attention")
SUPPORTED_ACTIVATIONS = ("silu",)
DEFAULT_BLOCK_SIZE = 16


class DFlashConfigError(ValueError):
    """A drafter config that cannot be used: names the field, the expected and the actual value."""

    def __init__(self, field_name: str, expected: str, actual: Any, source: str | None = None):
        self.field = field_name
        self.expected = expected
        self.actual = actual
        where = f" in {source}" if source else ""
        super().__init__(f"drafter config{where}: field '{field_name}': expected {expected}, got {actual!r}")


def build_target_layer_ids(num_target_layers: int, num_draft_layers: int) -> list[int]:
    """Default choice of target layers to read: the middle one for a single draft layer,
    otherwise evenly spaced from layer 1 to layer L-3 (inclusive)."""
    if num_draft_layers == 1:
        return [num_target_layers // 2]
    if num_target_layers < 4:
        raise DFlashConfigError("num_target_layers", ">= 4 to space target layers", num_target_layers)
    span = num_target_layers - 4
    return [round(1 + i * span / (num_draft_layers - 1)) for i in range(num_draft_layers)]


@dataclass(frozen=True)
class DFlashConfig:
    # drafter geometry (Qwen3-style decoder layers)
    hidden_size: int
    num_hidden_layers: int
    num_attention_heads: int
    num_key_value_heads: int
    head_dim: int
    intermediate_size: int
    vocab_size: int | None
    rms_norm_eps: float
    rope_theta: float
    rope_scaling: dict | None
    max_position_embeddings: int
    attention_bias: bool
    hidden_act: str
    # DFlash keys
    block_size: int
    mask_token_id: int
    target_layer_ids: tuple[int, ...]
    num_target_layers: int | None
    layer_types: tuple[str, ...]
    sliding_window: int | None
    is_causal: bool | None
    tie_word_embeddings: bool = False
    # keys we carried through unchanged (written back by to_dict)
    extra: dict = field(default_factory=dict, compare=False, hash=False, repr=False)

    @property
    def num_context_layers(self) -> int:
        return len(self.target_layer_ids)

    def layer_is_causal(self, i: int) -> bool:
        """Block-to-block attention: bidirectional for full layers, causal for sliding ones,
        unless `is_causal` overrides every layer."""
        if self.is_causal is not None:
            return self.is_causal
        return self.layer_types[i] == "sliding_attention"

    def layer_window(self, i: int) -> int | None:
        """Sliding window (tokens, the query itself included) of layer i, or None."""
        return self.sliding_window if self.layer_types[i] == "sliding_attention" else None

    def to_dict(self) -> dict:
        """The z-lab `config.json` content for this drafter."""
        d = dict(self.extra)
        d.update(
            architectures=["DFlashDraftModel"],
            model_type=d.get("model_type", "qwen3"),
            hidden_size=self.hidden_size,
            num_hidden_layers=self.num_hidden_layers,
            num_attention_heads=self.num_attention_heads,
            num_key_value_heads=self.num_key_value_heads,
            head_dim=self.head_dim,
            intermediate_size=self.intermediate_size,
            rms_norm_eps=self.rms_norm_eps,
            rope_theta=self.rope_theta,
            rope_scaling=self.rope_scaling,
            max_position_embeddings=self.max_position_embeddings,
            attention_bias=self.attention_bias,
            hidden_act=self.hidden_act,
            layer_types=list(self.layer_types),
            sliding_window=self.sliding_window,
            tie_word_embeddings=self.tie_word_embeddings,
            block_size=self.block_size,
            num_target_layers=self.num_target_layers,
        )
        if self.vocab_size is not None:
            d["vocab_size"] = self.vocab_size
        if self.is_causal is not None:
            d["is_causal"] = self.is_causal
        dflash = dict(d.get("dflash_config") or {})
        dflash.update(mask_token_id=self.mask_token_id, target_layer_ids=list(self.target_layer_ids),
                      block_size=self.block_size)
        d["dflash_config"] = dflash
        return d

    def save(self, path: str) -> None:
        os.makedirs(path, exist_ok=True)
        with open(os.path.join(path, "config.json"), "w") as f:
            json.dump(self.to_dict(), f, indent=2, sort_keys=True)

    @classmethod
    def for_target(cls, target_config: Any, *, num_layers: int, block_size: int, mask_token_id: int,
                   target_layer_ids: list[int] | None = None, **overrides: Any) -> "DFlashConfig":
        """A drafter shaped like the target's layers (the trainer's starting point)."""
        t = _target_dict(target_config)
        n_target = int(t["num_hidden_layers"])
        heads = int(t["num_attention_heads"])
        raw = dict(
            architectures=["DFlashDraftModel"],
            hidden_size=t["hidden_size"],
            num_hidden_layers=num_layers,
            num_attention_heads=heads,
            num_key_value_heads=t.get("num_key_value_heads") or heads,
            head_dim=t.get("head_dim") or t["hidden_size"] // heads,
            intermediate_size=t["intermediate_size"],
            vocab_size=t["vocab_size"],
            rms_norm_eps=t.get("rms_norm_eps", 1e-6),
            rope_theta=_rope_theta(t),
            max_position_embeddings=t.get("max_position_embeddings", 32768),
            num_target_layers=n_target,
            dflash_config=dict(mask_token_id=mask_token_id, block_size=block_size,
                               target_layer_ids=list(target_layer_ids or build_target_layer_ids(n_target, num_layers))),
        )
        raw.update(overrides)
        cfg = parse_drafter_config(raw)
        validate_against_target(cfg, target_config)
        return cfg


def _target_dict(target_config: Any) -> dict:
    d = target_config if isinstance(target_config, Mapping) else target_config.to_dict()
    d = dict(d)
    if isinstance(d.get("text_config"), Mapping):  # multimodal wrappers keep the LM here
        d = dict(d["text_config"])
    return d


def _rope_theta(d: Mapping) -> float:
    if d.get("rope_theta") is not None:
        return float(d["rope_theta"])
    params = d.get("rope_parameters")
    if isinstance(params, Mapping) and params.get("rope_theta") is not None:
        return float(params["rope_theta"])
    return 10000.0


def _rope_scaling(d: Mapping) -> dict | None:
    scaling = d.get("rope_scaling")
    if scaling is None and isinstance(d.get("rope_parameters"), Mapping):
        params = {k: v for k, v in d["rope_parameters"].items() if k != "rope_theta"}
        if params.get("rope_type", "default") != "default":
            scaling = params
    return dict(scaling) if scaling else None


def _int(d: Mapping, name: str, source: str | None, *, minimum: int = 1, default: Any = ...) -> int:
    value = d.get(name, default)
    if value is ...:
        raise DFlashConfigError(name, "an integer (required)", None, source)
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise DFlashConfigError(name, f"an integer >= {minimum}", value, source)
    return value


def _pick(d: Mapping, dflash: Mapping, name: str, source: str | None) -> Any:
    """A DFlash key may sit at top level or inside `dflash_config`; both must agree."""
    top, inner = d.get(name), dflash.get(name)
    if top is not None and inner is not None and top != inner:
        raise DFlashConfigError(f"dflash_config.{name}", f"the same value as top-level {name}={top!r}",
                                inner, source)
    return inner if inner is not None else top


def parse_drafter_config(d: Mapping, source: str | None = None) -> DFlashConfig:
    """Parse a z-lab DFlash drafter `config.json` (as a dict). `source` names it in errors."""
    if not isinstance(d, Mapping):
        raise DFlashConfigError("<root>", "a JSON object", type(d).__name__, source)
    archs = d.get("architectures")
    if archs is not None:
        if not isinstance(archs, list) or not archs:
            raise DFlashConfigError("architectures", "a non-empty list", archs, source)
        bad = [a for a in archs if a in UNSUPPORTED_ARCHITECTURES]
        if bad:
            raise DFlashConfigError("architectures", f"one of {list(SUPPORTED_ARCHITECTURES)} "
                                    f"({bad[0]} is a DFlash variant sglang-dflash does not serve)", archs, source)
        if not any(a in SUPPORTED_ARCHITECTURES for a in archs):
            raise DFlashConfigError("architectures", f"one of {list(SUPPORTED_ARCHITECTURES)}", archs, source)
    dflash = d.get("dflash_config") or {}
    if not isinstance(dflash, Mapping):
        raise DFlashConfigError("dflash_config", "a JSON object", dflash, source)

    hidden = _int(d, "hidden_size", source)
    layers = _int(d, "num_hidden_layers", source)
    heads = _int(d, "num_attention_heads", source)
    kv_heads = _int(d, "num_key_value_heads", source, default=heads)
    if heads % kv_heads:
        raise DFlashConfigError("num_key_value_heads", f"a divisor of num_attention_heads={heads}", kv_heads, source)
    head_dim = _int(d, "head_dim", source, default=hidden // heads if hidden % heads == 0 else ...)
    if head_dim % 2:
        raise DFlashConfigError("head_dim", "an even number (rotary embedding)", head_dim, source)
    inter = _int(d, "intermediate_size", source)
    vocab = d.get("vocab_size")
    if vocab is not None:
        vocab = _int(d, "vocab_size", source)
    act = d.get("hidden_act", "silu")
    if act not in SUPPORTED_ACTIVATIONS:
        raise DFlashConfigError("hidden_act", f"one of {list(SUPPORTED_ACTIVATIONS)}", act, source)
    eps = d.get("rms_norm_eps", 1e-6)
    if not isinstance(eps, (int, float)) or isinstance(eps, bool) or not 0 < eps < 1:
        raise DFlashConfigError("rms_norm_eps", "a number in (0, 1)", eps, source)
    rope_theta = _rope_theta(d)
    if rope_theta <= 0:
        raise DFlashConfigError("rope_theta", "a positive number", rope_theta, source)

    block = _pick(d, dflash, "block_size", source)
    block = DEFAULT_BLOCK_SIZE if block is None else block
    if isinstance(block, bool) or not isinstance(block, int) or block < 2:
        raise DFlashConfigError("block_size", "an integer >= 2", block, source)
    mask_id = _pick(d, dflash, "mask_token_id", source)
    if mask_id is None:
        raise DFlashConfigError("dflash_config.mask_token_id", "an integer token id (required)", None, source)
    if isinstance(mask_id, bool) or not isinstance(mask_id, int) or mask_id < 0:
        raise DFlashConfigError("dflash_config.mask_token_id", "a non-negative integer", mask_id, source)
    if vocab is not None and mask_id >= vocab:
        raise DFlashConfigError("dflash_config.mask_token_id", f"< vocab_size={vocab}", mask_id, source)

    n_target = _pick(d, dflash, "num_target_layers", source)
    if n_target is not None and (isinstance(n_target, bool) or not isinstance(n_target, int) or n_target < 1):
        raise DFlashConfigError("num_target_layers", "a positive integer", n_target, source)
    ids = _pick(d, dflash, "target_layer_ids", source)
    if ids is None:
        if n_target is None:
            raise DFlashConfigError("dflash_config.target_layer_ids",
                                    "a list of target layer ids (or num_target_layers to derive them)", None, source)
        ids = build_target_layer_ids(n_target, layers)
    if (not isinstance(ids, (list, tuple)) or not ids
            or any(isinstance(i, bool) or not isinstance(i, int) or i < 0 for i in ids)):
        raise DFlashConfigError("dflash_config.target_layer_ids", "a non-empty list of layer ids >= 0", ids, source)
    if n_target is not None and max(ids) >= n_target:
        raise DFlashConfigError("dflash_config.target_layer_ids", f"ids < num_target_layers={n_target}", list(ids), source)

    layer_types = d.get("layer_types") or ["full_attention"] * layers
    if not isinstance(layer_types, (list, tuple)) or len(layer_types) != layers:
        raise DFlashConfigError("layer_types", f"a list of {layers} entries (num_hidden_layers)", layer_types, source)
    for t in layer_types:
        if t not in LAYER_TYPES:
            raise DFlashConfigError("layer_types", f"entries in {list(LAYER_TYPES)}", t, source)
    window = d.get("sliding_window")
    if "sliding_attention" in layer_types:
        if isinstance(window, bool) or not isinstance(window, int) or window < 1:
            raise DFlashConfigError("sliding_window", "a positive integer (layer_types has sliding layers)", window, source)
    else:
        window = None
    is_causal = d.get("is_causal")
    if is_causal is not None and not isinstance(is_causal, bool):
        raise DFlashConfigError("is_causal", "true, false or absent", is_causal, source)

    known = {"hidden_size", "num_hidden_layers", "num_attention_heads", "num_key_value_heads", "head_dim",
             "intermediate_size", "vocab_size", "rms_norm_eps", "rope_theta", "rope_scaling", "rope_parameters",
             "max_position_embeddings", "attention_bias", "hidden_act", "block_size", "mask_token_id",
             "target_layer_ids", "num_target_layers", "layer_types", "sliding_window", "is_causal",
             "tie_word_embeddings", "architectures"}
    return DFlashConfig(
        hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads, num_key_value_heads=kv_heads,
        head_dim=head_dim, intermediate_size=inter, vocab_size=vocab, rms_norm_eps=float(eps),
        rope_theta=rope_theta, rope_scaling=_rope_scaling(d),
        max_position_embeddings=int(d.get("max_position_embeddings") or 32768),
        attention_bias=bool(d.get("attention_bias", False)), hidden_act=act,
        block_size=block, mask_token_id=mask_id, target_layer_ids=tuple(ids), num_target_layers=n_target,
        layer_types=tuple(layer_types), sliding_window=window, is_causal=is_causal,
        tie_word_embeddings=bool(d.get("tie_word_embeddings", False)),
        extra={k: v for k, v in d.items() if k not in known},
    )


def raw_config_file(path: str | None, revision: str | None = None) -> str | None:
    """The drafter's own `config.json`: in `path` when it is a folder, else the Hugging Face
    cache's copy of hub id `path` (None when neither exists). Parse this rather than a
    transformers config object: those rewrite fields (Qwen3Config sets `sliding_window` to
    None unless `use_sliding_window` is true, which drafters with sliding layers may not set)."""
    if not path:
        return None
    if os.path.isdir(path):
        file = os.path.join(path, "config.json")
        return file if os.path.isfile(file) else None
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return None
    try:
        file = try_to_load_from_cache(path, "config.json", revision=revision)
    except Exception:  # not a valid repo id, unreadable cache: no raw file to offer
        return None
    return file if isinstance(file, str) and os.path.isfile(file) else None


def drafter_config_from(path: str | None, hf_config=None, revision: str | None = None) -> DFlashConfig:
    """The drafter's config as its own `config.json` says (``raw_config_file``); when that file
    cannot be found, from `hf_config`, the transformers config object SGLang loaded."""
    file = raw_config_file(path, revision)
    if file is not None:
        return load_drafter_config(file)
    if hf_config is None:
        raise DFlashConfigError("config.json", "a drafter folder or a hub id in the HF cache", path)
    raw = hf_config.to_dict() if hasattr(hf_config, "to_dict") else dict(vars(hf_config))
    return parse_drafter_config(raw, source=path or "drafter config")


def load_drafter_config(path: str) -> DFlashConfig:
    """Read `config.json` from a drafter directory (or the file itself)."""
    file = os.path.join(path, "config.json") if os.path.isdir(path) else path
    if not os.path.exists(file):
        raise DFlashConfigError("config.json", "an existing file", file)
    try:
        with open(file) as f:
            raw = json.load(f)
    except json.JSONDecodeError as e:
        raise DFlashConfigError("config.json", "valid JSON", f"{e.msg} at line {e.lineno}", file) from e
    return parse_drafter_config(raw, source=file)


def validate_against_target(cfg: DFlashConfig, target_config: Any) -> None:
    """Check that the drafter can run on this target (a HF `PretrainedConfig` or a dict)."""
    t = _target_dict(target_config)
    src = "target check"
    if t.get("hidden_size") != cfg.hidden_size:
        raise DFlashConfigError("hidden_size", f"the target's hidden_size={t.get('hidden_size')}", cfg.hidden_size, src)
    n_layers = t.get("num_hidden_layers")
    if cfg.num_target_layers is not None and cfg.num_target_layers != n_layers:
        raise DFlashConfigError("num_target_layers", f"the target's num_hidden_layers={n_layers}",
                                cfg.num_target_layers, src)
    bad = [i for i in cfg.target_layer_ids if not 0 <= i < n_layers]
    if bad:
        raise DFlashConfigError("dflash_config.target_layer_ids", f"ids in [0, {n_layers}) (target layers)",
                                list(cfg.target_layer_ids), src)
    vocab = t.get("vocab_size")
    if cfg.vocab_size is not None and vocab is not None and cfg.vocab_size > vocab:
        raise DFlashConfigError("vocab_size", f"<= the target's vocab_size={vocab}", cfg.vocab_size, src)
    if vocab is not None and cfg.mask_token_id >= vocab:
        raise DFlashConfigError("dflash_config.mask_token_id", f"< the target's vocab_size={vocab}",
                                cfg.mask_token_id, src)


def config_summary(cfg: DFlashConfig) -> dict:
    """Plain dict of the parsed fields (for logs and reports)."""
    d = asdict(cfg)
    d.pop("extra")
    return d
