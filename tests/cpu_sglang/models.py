"""Tiny, download-free target/drafter pairs for the CPU end-to-end tests.

Everything is built from seeds in a few seconds:

* a byte-level BPE tokenizer (vocab 512) trained on a generated word corpus, with
  ``<|endoftext|>`` = 0, ``<|im_start|>`` = 1, ``<|im_end|>`` = 2 (eos) and
  ``<|MASK|>`` = 3, plus a ChatML chat template;
* a random Qwen3 target (hidden 64, 4 layers) in fp32;
* z-lab format DFlash drafters (``architectures: ["DFlashDraftModel"]``).

Why the drafts get accepted ("steered" pairs). A random drafter never agrees with a
random target, which would leave the accept/commit path untested. So we steer both:

1. ``u`` = the mean direction of the target's final (normed) hidden states over
   the corpus. The target's LM-head row of a chosen token ``C`` is set to
   ``lam * |W| * u``: the target now says ``C`` in *some* contexts, decided by the
   whole context through attention (so any KV bug changes its choices).
2. The ``<|MASK|>`` embedding row (never in prompts) is set to ``|E| * u`` and the
   drafter's output projections (``o_proj``, ``down_proj``) are scaled by
   ``draft_mix`` (small): the drafter's hidden state at a mask position is close to
   ``norm(u)`` and it proposes ``C``, mostly; with ``draft_mix > 0`` its proposals
   also depend on the context K/V the worker writes from target hidden states.

Drafts are then accepted exactly while the target keeps choosing ``C``: acceptance
lengths vary between 1 and the block size.
"""

from __future__ import annotations

import json
import os
import random
from dataclasses import dataclass

import torch

BUILDER_VERSION = 1  # bump when the models built here change
VOCAB_SIZE = 512
EOS_ID = 2
MASK_ID = 3
SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|MASK|>"]

CHATML_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

_WORDS = (
    "the a an of to in on for with from by at as is was are were be been has have had "
    "river stone cloud light tree house garden window market city road bridge song "
    "story night morning winter summer ocean island mountain forest field flower bird "
    "horse dog cat child friend teacher doctor farmer sailor king queen castle tower "
    "red blue green golden silver quiet bright dark old young small large warm cold "
    "runs walks sings reads writes opens closes finds keeps brings carries builds "
    "slowly quickly often never always again together alone under over between "
    "one two three four five six seven eight nine ten hundred first last next "
    "what where when why how who which this that these those every many some "
    "hello please thank you yes no maybe today tomorrow yesterday here there"
).split()


def corpus(n_lines: int = 3000, seed: int = 0) -> list[str]:
    """Deterministic pseudo-sentences; also the prompt source for the tests."""
    rng = random.Random(seed)
    lines = []
    for _ in range(n_lines):
        words = [rng.choice(_WORDS) for _ in range(rng.randint(4, 14))]
        line = " ".join(words).capitalize()
        lines.append(line + rng.choice([".", "?", "!", ","]))
    return lines


def build_tokenizer(out_dir: str):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(corpus(), trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=None,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        mask_token="<|MASK|>",
        additional_special_tokens=["<|im_start|>"],
    )
    fast.chat_template = CHATML_TEMPLATE
    assert fast.convert_tokens_to_ids("<|MASK|>") == MASK_ID
    assert fast.convert_tokens_to_ids("<|im_end|>") == EOS_ID
    fast.save_pretrained(out_dir)
    return fast


# Shapes of the pairs. "tiny" is what the CPU tests use; "hd64" has head_dim 64, which SGLang's
# CUDA kernels are built for (head_dim 16 sends RoPE to a fallback and is outside the range of
# FlashInfer and FlashAttention), for the GPU suite.
GEOMETRIES = {
    "tiny": dict(hidden_size=64, intermediate_size=128, num_attention_heads=4,
                 num_key_value_heads=2, head_dim=16),
    "hd64": dict(hidden_size=256, intermediate_size=512, num_attention_heads=4,
                 num_key_value_heads=2, head_dim=64),
}


def _init_std(hidden_size: int) -> float:
    """0.15 at hidden 64; scaled so wider models keep the same activation growth per layer."""
    return 0.15 * (64 / hidden_size) ** 0.5


def _target_config(**overrides):
    from transformers import Qwen3Config

    cfg = dict(
        vocab_size=VOCAB_SIZE,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=4,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=16,
        max_position_embeddings=4096,
        rope_theta=10000.0,
        rms_norm_eps=1e-6,
        tie_word_embeddings=False,
        bos_token_id=None,
        eos_token_id=EOS_ID,
        pad_token_id=0,
        architectures=["Qwen3ForCausalLM"],
        torch_dtype="float32",
    )
    cfg.update(overrides)
    return Qwen3Config(**cfg)


def _randomize_(module: torch.nn.Module, std: float, generator: torch.Generator) -> None:
    """N(0, std) for every matrix, ones for norms: far from HF's 0.02 init so greedy
    text is varied rather than a single repeated token."""
    with torch.no_grad():
        for name, p in module.named_parameters():
            if p.ndim == 1:
                p.fill_(1.0)
            else:
                p.copy_(torch.randn(p.shape, generator=generator) * std)


@dataclass(frozen=True)
class Pair:
    target: str  # folder of the target (with tokenizer)
    drafters: dict  # block size -> drafter folder
    steer_token: int  # C, the token the drafter proposes


def build_target(out_dir: str, tokenizer_dir: str, *, seed: int = 1, lam: float = 0.0,
                 geometry: str = "tiny"):
    """Random Qwen3 target; with ``lam > 0`` steered towards token C (see module doc).

    Returns (model, C)."""
    from transformers import AutoTokenizer, Qwen3ForCausalLM

    tok = AutoTokenizer.from_pretrained(tokenizer_dir)
    g = torch.Generator().manual_seed(seed)
    model = Qwen3ForCausalLM(_target_config(**GEOMETRIES[geometry])).eval()
    _randomize_(model, _init_std(model.config.hidden_size), g)
    steer = _pick_steer_token(tok)
    if lam > 0:
        u = _mean_hidden_direction(model, tok)
        with torch.no_grad():
            emb = model.model.embed_tokens.weight
            emb[MASK_ID] = u * emb.norm(dim=-1).mean()
            head = model.lm_head.weight
            head[steer] = lam * u * head.norm(dim=-1).mean()
    os.makedirs(out_dir, exist_ok=True)
    model.save_pretrained(out_dir, safe_serialization=True)
    tok.save_pretrained(out_dir)
    with open(os.path.join(out_dir, "generation_config.json"), "w") as f:
        json.dump({"eos_token_id": EOS_ID, "do_sample": False}, f)
    return model, steer


def _pick_steer_token(tok) -> int:
    ids = tok.encode(" the", add_special_tokens=False)
    return int(ids[0]) if len(ids) == 1 else 300


def _mean_hidden_direction(model, tok) -> torch.Tensor:
    states = []
    with torch.no_grad():
        for line in corpus()[:200]:
            ids = torch.tensor([tok.encode(line, add_special_tokens=False)])
            out = model(ids, output_hidden_states=True)
            states.append(out.hidden_states[-1][0])
    u = torch.cat(states).mean(0)
    return u / u.norm()


def drafter_config(target_config, *, block_size: int, num_layers: int = 2,
                   target_layer_ids=(1, 2)) -> dict:
    """z-lab ``config.json`` of a DFlash drafter for ``target_config``."""
    return {
        "architectures": ["DFlashDraftModel"],
        "model_type": "qwen3",
        "hidden_size": target_config.hidden_size,
        "num_hidden_layers": num_layers,
        "num_attention_heads": target_config.num_attention_heads,
        "num_key_value_heads": target_config.num_key_value_heads,
        "head_dim": target_config.head_dim,
        "intermediate_size": target_config.intermediate_size,
        "vocab_size": target_config.vocab_size,
        "rms_norm_eps": 1e-6,
        "rope_theta": 10000.0,
        "max_position_embeddings": target_config.max_position_embeddings,
        "attention_bias": False,
        "hidden_act": "silu",
        "tie_word_embeddings": False,
        "torch_dtype": "float32",
        "num_target_layers": target_config.num_hidden_layers,
        "block_size": block_size,
        "dflash_config": {
            "mask_token_id": MASK_ID,
            "target_layer_ids": list(target_layer_ids),
        },
    }


def build_drafter(out_dir: str, target_config, *, block_size: int, seed: int = 2,
                  draft_mix: float = 0.1, num_layers: int = 2, config_overrides=None) -> str:
    """Random drafter whose output projections are scaled by ``draft_mix``;
    ``config_overrides`` (e.g. layer_types / sliding_window) update its config.json."""
    from safetensors.torch import save_file

    cfg = drafter_config(target_config, block_size=block_size, num_layers=num_layers)
    cfg.update(config_overrides or {})
    g = torch.Generator().manual_seed(seed)
    H, nh, nkv = cfg["hidden_size"], cfg["num_attention_heads"], cfg["num_key_value_heads"]
    hd, inter = cfg["head_dim"], cfg["intermediate_size"]
    K = len(cfg["dflash_config"]["target_layer_ids"])
    std = _init_std(H)

    def rnd(*shape, scale=1.0):
        return torch.randn(shape, generator=g) * std * scale

    weights = {
        "fc.weight": rnd(H, K * H),
        "hidden_norm.weight": torch.ones(H),
        "norm.weight": torch.ones(H),
    }
    for i in range(num_layers):
        p = f"layers.{i}."
        weights.update({
            p + "self_attn.q_proj.weight": rnd(nh * hd, H),
            p + "self_attn.k_proj.weight": rnd(nkv * hd, H),
            p + "self_attn.v_proj.weight": rnd(nkv * hd, H),
            p + "self_attn.o_proj.weight": rnd(H, nh * hd, scale=draft_mix),
            p + "self_attn.q_norm.weight": torch.ones(hd),
            p + "self_attn.k_norm.weight": torch.ones(hd),
            p + "input_layernorm.weight": torch.ones(H),
            p + "post_attention_layernorm.weight": torch.ones(H),
            p + "mlp.gate_proj.weight": rnd(inter, H),
            p + "mlp.up_proj.weight": rnd(inter, H),
            p + "mlp.down_proj.weight": rnd(H, inter, scale=draft_mix),
        })
    os.makedirs(out_dir, exist_ok=True)
    save_file({k: v.contiguous() for k, v in weights.items()},
              os.path.join(out_dir, "model.safetensors"), metadata={"format": "pt"})
    with open(os.path.join(out_dir, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
    return out_dir


def build_pair(root: str, *, name: str = "steered", lam: float = 1.6, seed: int = 1,
               block_sizes=(4, 8, 16), draft_mix: float = 0.1, geometry: str = "tiny") -> Pair:
    """Tokenizer + target + one drafter per block size under ``root`` (idempotent)."""
    tok_dir = os.path.join(root, "tokenizer")
    if not os.path.exists(os.path.join(tok_dir, "tokenizer.json")):
        build_tokenizer(tok_dir)
    target_dir = os.path.join(root, f"{name}-target")
    meta_path = os.path.join(target_dir, "steer.json")
    if not os.path.exists(meta_path):
        model, steer = build_target(target_dir, tok_dir, seed=seed, lam=lam, geometry=geometry)
        with open(meta_path, "w") as f:
            json.dump({"steer_token": steer, "lam": lam, "seed": seed}, f)
    with open(meta_path) as f:
        steer = json.load(f)["steer_token"]
    from transformers import AutoConfig

    tcfg = AutoConfig.from_pretrained(target_dir)
    drafters = {}
    for b in block_sizes:
        d = os.path.join(root, f"{name}-drafter-b{b}")
        if not os.path.exists(os.path.join(d, "config.json")):
            build_drafter(d, tcfg, block_size=b, draft_mix=draft_mix)
        drafters[b] = d
    return Pair(target=target_dir, drafters=drafters, steer_token=steer)


if __name__ == "__main__":
    import sys

    pair = build_pair(sys.argv[1] if len(sys.argv) > 1 else "/tmp/dflash-models")
    print(pair)
