"""Tiny target/drafter builders for tests and examples: no downloads, seconds on a CPU.

* `tiny_target("qwen3" | "llama")`: a random transformers causal LM.
* `random_drafter(target)`: a random DFlash drafter shaped for it (drafts are almost never kept).
* `agreeable_pair(target)`: turns a random target into one whose greedy choice is often a fixed
  token C, and builds a drafter that always proposes C. Drafts are then accepted as long as the
  target keeps saying C, which depends on the whole context, so acceptance lengths vary between 1
  and B and any cache or commit mistake shows up as a different output.
"""
from __future__ import annotations

import torch

from .config import DFlashConfig
from .model import DFlashDrafter


def tiny_target(kind: str = "qwen3", *, vocab: int = 256, hidden: int = 64, layers: int = 4,
                seed: int = 0, dtype: torch.dtype = torch.float64):
    from transformers import LlamaConfig, LlamaForCausalLM, Qwen3Config, Qwen3ForCausalLM

    torch.manual_seed(seed)
    common = dict(vocab_size=vocab, hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=layers,
                  num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=1024,
                  tie_word_embeddings=False, bos_token_id=None, eos_token_id=None, pad_token_id=None)
    if kind == "qwen3":
        cfg, cls = Qwen3Config(head_dim=hidden // 4, **common), Qwen3ForCausalLM
    elif kind == "llama":
        cfg, cls = LlamaConfig(**common), LlamaForCausalLM
    else:
        raise ValueError(f"kind: expected 'qwen3' or 'llama', got {kind!r}")
    cfg._attn_implementation = "eager"
    model = cls(cfg).to(dtype).eval()
    with torch.no_grad():  # sharper than the default init, so sampling tests see peaked rows too
        model.lm_head.weight.mul_(4.0)
    return model


def drafter_config_for(target, *, layers: int = 2, block_size: int = 4, mask_token_id: int = 1,
                       **overrides) -> DFlashConfig:
    return DFlashConfig.for_target(target.config, num_layers=layers, block_size=block_size,
                                   mask_token_id=mask_token_id, **overrides)


def random_drafter(target, *, seed: int = 1, **kw) -> DFlashDrafter:
    torch.manual_seed(seed)
    dtype = next(target.parameters()).dtype
    return DFlashDrafter(drafter_config_for(target, **kw)).to(dtype).eval()


@torch.no_grad()
def agreeable_pair(target, *, favourite: int = 7, mask_token_id: int = 1, strength: float = 3.0,
                   stickiness: float = 1.0, seed: int = 2, **kw):
    """Edit `target` in place so its greedy choice is often `favourite`, and return a drafter
    that always proposes `favourite`. `strength` tunes how often the target agrees, `stickiness` how long
    its runs of `favourite` last."""
    g = torch.Generator().manual_seed(seed)
    vocab = target.config.vocab_size
    probe = torch.randint(0, vocab, (8, 32), generator=g)
    final = target(input_ids=probe, output_hidden_states=True).hidden_states[-1]  # after the final norm
    direction = final.reshape(-1, final.shape[-1]).mean(0)
    direction = direction / direction.norm()
    head = target.get_output_embeddings().weight
    head[favourite] = strength * head.norm(dim=-1).mean() * direction
    emb = target.get_input_embeddings().weight
    emb[mask_token_id] = direction * emb.norm(dim=-1).mean()
    emb[favourite] = emb[favourite] + stickiness * direction * emb.norm(dim=-1).mean()  # runs of C
    drafter = random_drafter(target, seed=seed, mask_token_id=mask_token_id, **kw)
    for layer in drafter.layers:  # residual stream = embedding of MASK -> always `favourite`
        layer.self_attn.o_proj.weight.zero_()
        layer.mlp.down_proj.weight.zero_()
    return drafter
