"""The DFlash drafter in plain PyTorch: the reference every faster path is tested against.

One forward drafts a whole block. Inputs:
  * noise: the target's embedding of the block ids `[anchor, MASK, ...]`, at positions p..p+B-1;
  * context: hidden states of chosen target layers for committed tokens, concatenated and
    projected (`fc` -> `hidden_norm`) to one vector per token. Every draft layer turns that
    vector into its own keys/values (`k_proj` + `k_norm` + RoPE, `v_proj`); the context never
    goes through a layer norm or an MLP.
Each layer is a pre-norm Qwen3 layer whose queries are the block tokens and whose keys/values are
[context ; block]. The drafter has no embedding and no LM head: both are the target's.

Tensor names match z-lab checkpoints exactly (`fc.weight`, `layers.0.self_attn.q_proj.weight`...).
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .config import DFlashConfig, DFlashConfigError, load_drafter_config, validate_against_target

WEIGHTS_NAME = "model.safetensors"


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x32 = x.float()
        x32 = x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * x32.to(x.dtype)


class Rotary(nn.Module):
    """cos/sin tables for the drafter's own rope settings. The inverse frequencies come from
    transformers (so every rope type it knows works) and stay float32 whatever the model dtype."""

    def __init__(self, cfg: DFlashConfig):
        super().__init__()
        from transformers import Qwen3Config
        from transformers.models.qwen3.modeling_qwen3 import Qwen3RotaryEmbedding

        hf = Qwen3Config(hidden_size=cfg.hidden_size, num_attention_heads=cfg.num_attention_heads,
                         head_dim=cfg.head_dim, rope_theta=cfg.rope_theta, rope_scaling=cfg.rope_scaling,
                         max_position_embeddings=cfg.max_position_embeddings)
        table = Qwen3RotaryEmbedding(config=hf)
        self.inv_freq = table.inv_freq.detach().float().cpu()  # plain attribute: never cast by .to()
        self.scaling = float(table.attention_scaling)

    def forward(self, positions: torch.Tensor, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
        # positions [b, n] -> cos, sin [b, 1, n, head_dim]
        if self.inv_freq.device != positions.device:
            self.inv_freq = self.inv_freq.to(positions.device)
        freqs = positions.float().unsqueeze(-1) * self.inv_freq
        angles = torch.cat([freqs, freqs], dim=-1)
        cos, sin = angles.cos() * self.scaling, angles.sin() * self.scaling
        return cos.to(dtype).unsqueeze(1), sin.to(dtype).unsqueeze(1)


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    rotated = torch.cat((-x[..., half:], x[..., :half]), dim=-1)
    return x * cos + rotated * sin


class Attention(nn.Module):
    def __init__(self, cfg: DFlashConfig):
        super().__init__()
        self.n_heads, self.n_kv, self.head_dim = cfg.num_attention_heads, cfg.num_key_value_heads, cfg.head_dim
        bias = cfg.attention_bias
        self.q_proj = nn.Linear(cfg.hidden_size, self.n_heads * self.head_dim, bias=bias)
        self.k_proj = nn.Linear(cfg.hidden_size, self.n_kv * self.head_dim, bias=bias)
        self.v_proj = nn.Linear(cfg.hidden_size, self.n_kv * self.head_dim, bias=bias)
        self.o_proj = nn.Linear(self.n_heads * self.head_dim, cfg.hidden_size, bias=bias)
        self.q_norm = RMSNorm(self.head_dim, cfg.rms_norm_eps)
        self.k_norm = RMSNorm(self.head_dim, cfg.rms_norm_eps)

    def _heads(self, x: torch.Tensor, n: int) -> torch.Tensor:
        b, s, _ = x.shape
        return x.view(b, s, n, self.head_dim).transpose(1, 2)  # [b, n_heads, s, head_dim]

    def key_value(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # x [b, s, H] (normed block stream, or projected context) -> k, v [b, n_kv, s, head_dim]
        k = apply_rope(self.k_norm(self._heads(self.k_proj(x), self.n_kv)), cos, sin)
        v = self._heads(self.v_proj(x), self.n_kv)
        return k, v

    def forward(self, x, cos, sin, ctx_k, ctx_v, mask):
        # x [b, q, H]; ctx_k/ctx_v [b, n_kv, n, hd]; mask bool [b, 1, q, n+q]
        q = apply_rope(self.q_norm(self._heads(self.q_proj(x), self.n_heads)), cos, sin)
        k, v = self.key_value(x, cos, sin)
        k, v = torch.cat([ctx_k, k], dim=2), torch.cat([ctx_v, v], dim=2)
        group = self.n_heads // self.n_kv
        if group > 1:
            k, v = k.repeat_interleave(group, dim=1), v.repeat_interleave(group, dim=1)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        b, _, s, _ = out.shape
        return self.o_proj(out.transpose(1, 2).reshape(b, s, -1))


class MLP(nn.Module):
    def __init__(self, cfg: DFlashConfig):
        super().__init__()
        self.gate_proj = nn.Linear(cfg.hidden_size, cfg.intermediate_size, bias=False)
        self.up_proj = nn.Linear(cfg.hidden_size, cfg.intermediate_size, bias=False)
        self.down_proj = nn.Linear(cfg.intermediate_size, cfg.hidden_size, bias=False)

    def forward(self, x):
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class DecoderLayer(nn.Module):
    def __init__(self, cfg: DFlashConfig):
        super().__init__()
        self.input_layernorm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)
        self.self_attn = Attention(cfg)
        self.post_attention_layernorm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)
        self.mlp = MLP(cfg)

    def forward(self, x, cos, sin, ctx_k, ctx_v, mask):
        x = x + self.self_attn(self.input_layernorm(x), cos, sin, ctx_k, ctx_v, mask)
        return x + self.mlp(self.post_attention_layernorm(x))


@dataclass
class DraftContext:
    """Per-layer context keys/values of committed tokens (what the drafter's KV cache holds)."""
    keys: list[torch.Tensor]    # per layer [b, n_kv, n, head_dim]
    values: list[torch.Tensor]  # per layer [b, n_kv, n, head_dim]
    positions: torch.Tensor     # [b, n] absolute positions
    valid: torch.Tensor         # [b, n] bool: False for padding and rejected slots

    def append(self, other: "DraftContext") -> "DraftContext":
        return DraftContext(
            keys=[torch.cat([a, b], dim=2) for a, b in zip(self.keys, other.keys)],
            values=[torch.cat([a, b], dim=2) for a, b in zip(self.values, other.values)],
            positions=torch.cat([self.positions, other.positions], dim=1),
            valid=torch.cat([self.valid, other.valid], dim=1),
        )


def gather_target_hidden(hidden_states, layer_ids) -> torch.Tensor:
    """HF `output_hidden_states` tuple (index 0 = embeddings) -> [b, n, K*H] for the chosen
    target layers; layer id k means the output of decoder layer k."""
    return torch.cat([hidden_states[k + 1] for k in layer_ids], dim=-1)


class DFlashDrafter(nn.Module):
    def __init__(self, config: DFlashConfig):
        super().__init__()
        self.config = config
        H = config.hidden_size
        self.fc = nn.Linear(config.num_context_layers * H, H, bias=False)
        self.hidden_norm = RMSNorm(H, config.rms_norm_eps)
        self.layers = nn.ModuleList(DecoderLayer(config) for _ in range(config.num_hidden_layers))
        self.norm = RMSNorm(H, config.rms_norm_eps)
        self.rotary = Rotary(config)

    # --- context ------------------------------------------------------------------------------
    def project_context(self, target_hidden: torch.Tensor) -> torch.Tensor:
        """[..., K*H] concatenated target hidden states -> [..., H] context features."""
        return self.hidden_norm(self.fc(target_hidden))

    def context_kv(self, ctx: torch.Tensor, ctx_positions: torch.Tensor,
                   valid: torch.Tensor | None = None) -> DraftContext:
        """ctx [b, n, H] projected features at ctx_positions [b, n] -> per-layer keys/values.
        Invalid slots are zeroed so padding can never leak NaN/inf into attention."""
        if valid is None:
            valid = torch.ones(ctx.shape[:2], dtype=torch.bool, device=ctx.device)
        ctx = torch.where(valid.unsqueeze(-1), ctx, torch.zeros((), dtype=ctx.dtype, device=ctx.device))
        cos, sin = self.rotary(ctx_positions, ctx.dtype)
        keys, values = [], []
        for layer in self.layers:
            k, v = layer.self_attn.key_value(ctx, cos, sin)
            keys.append(k)
            values.append(v)
        return DraftContext(keys, values, ctx_positions, valid)

    def empty_context(self, batch: int, dtype: torch.dtype, device) -> DraftContext:
        c = self.config
        z = torch.zeros(batch, c.num_key_value_heads, 0, c.head_dim, dtype=dtype, device=device)
        return DraftContext([z] * c.num_hidden_layers, [z] * c.num_hidden_layers,
                            torch.zeros(batch, 0, dtype=torch.long, device=device),
                            torch.zeros(batch, 0, dtype=torch.bool, device=device))

    # --- masks --------------------------------------------------------------------------------
    def layer_mask(self, i: int, noise_positions: torch.Tensor, ctx: DraftContext) -> torch.Tensor:
        """bool [b, 1, q, n+q]: what block queries of layer i may attend to.
        Context: every valid slot (within the window for sliding layers).
        Block: all of it (bidirectional) or keys at or before the query (causal)."""
        qp = noise_positions.unsqueeze(-1)                          # [b, q, 1]
        ctx_ok = ctx.valid.unsqueeze(1).expand(-1, qp.shape[1], -1)  # [b, q, n]
        blk_k = noise_positions.unsqueeze(1)                        # [b, 1, q]
        blk_ok = torch.ones_like(qp == blk_k)
        if self.config.layer_is_causal(i):
            blk_ok = blk_k <= qp
        window = self.config.layer_window(i)
        if window is not None:
            ctx_ok = ctx_ok & (qp - ctx.positions.unsqueeze(1) < window)
            blk_ok = blk_ok & ((qp - blk_k).abs() < window)
        return torch.cat([ctx_ok, blk_ok], dim=-1).unsqueeze(1)

    # --- forward ------------------------------------------------------------------------------
    def forward(self, noise_embeds: torch.Tensor, noise_positions: torch.Tensor, ctx: DraftContext,
                attn_mask: torch.Tensor | None = None) -> torch.Tensor:
        """noise_embeds [b, q, H], noise_positions [b, q], ctx (n slots) -> hidden [b, q, H].
        attn_mask bool [b, q, n+q] (True = may attend) replaces the per-layer default mask."""
        x = noise_embeds
        cos, sin = self.rotary(noise_positions, x.dtype)
        shared = attn_mask.unsqueeze(1) if attn_mask is not None else None
        for i, layer in enumerate(self.layers):
            mask = shared if shared is not None else self.layer_mask(i, noise_positions, ctx)
            x = layer(x, cos, sin, ctx.keys[i], ctx.values[i], mask)
        return self.norm(x)

    # --- checkpoints --------------------------------------------------------------------------
    @classmethod
    def from_pretrained(cls, path: str, *, dtype: torch.dtype = torch.float32, device="cpu",
                        target_config=None) -> "DFlashDrafter":
        from safetensors.torch import load_file

        cfg = load_drafter_config(path)
        if target_config is not None:
            validate_against_target(cfg, target_config)
        model = cls(cfg)
        files = sorted(f for f in os.listdir(path) if f.endswith(".safetensors"))
        if not files:
            raise DFlashConfigError("weights", f"*.safetensors files in {path}", os.listdir(path))
        state = {}
        for f in files:
            state.update(load_file(os.path.join(path, f)))
        model.load_checkpoint_state(state)
        return model.to(device=device, dtype=dtype).eval()

    def load_checkpoint_state(self, state: dict[str, torch.Tensor]) -> None:
        """Load z-lab tensor names (optional `model.` prefix, rotary caches ignored); any missing,
        unexpected or misshapen tensor is an error naming it."""
        own = {k: v for k, v in self.state_dict().items() if not k.startswith("rotary.")}
        clean = {}
        for name, tensor in state.items():
            name = name[len("model."):] if name.startswith("model.") else name
            if "rotary_emb" in name or name.startswith("rotary."):
                continue
            if name not in own:
                raise DFlashConfigError("weights", "only DFlash drafter tensors", f"unexpected tensor {name}")
            if tuple(tensor.shape) != tuple(own[name].shape):
                raise DFlashConfigError(f"weights[{name}]", f"shape {tuple(own[name].shape)}", tuple(tensor.shape))
            clean[name] = tensor
        missing = sorted(set(own) - set(clean))
        if missing:
            raise DFlashConfigError("weights", "every drafter tensor", f"missing {missing[:5]}")
        self.load_state_dict(clean, strict=False)

    def save_pretrained(self, path: str, dtype: torch.dtype | None = None) -> None:
        from safetensors.torch import save_file

        os.makedirs(path, exist_ok=True)
        state = {k: (v.to(dtype) if dtype else v).detach().contiguous().cpu()
                 for k, v in self.state_dict().items() if not k.startswith("rotary.")}
        save_file(state, os.path.join(path, WEIGHTS_NAME), metadata={"format": "pt"})
        d = self.config.to_dict()
        d["torch_dtype"] = str(dtype or next(self.parameters()).dtype).replace("torch.", "")
        with open(os.path.join(path, "config.json"), "w") as f:
            json.dump(d, f, indent=2, sort_keys=True)
