"""The DFlash drafter as an SGLang model, built from SGLang's parallel layers.

Registered under the z-lab architecture name ``DFlashDraftModel`` (see
``register_drafter_model``) so z-lab checkpoints load into this class. It has no
embedding and no LM head of its own: the worker binds the target's embedding
(``bind_target_embedding``) and applies the target's LM head to the hidden states
this model returns.

Two entry points, both called by ``DFlashWorker``:

* ``forward`` -- one draft forward over the blocks ``[anchor, MASK, ...]`` of a
  batch (``ForwardMode.TARGET_VERIFY`` on the draft runner). The attention backend
  writes the block's own K/V into the draft pool at the block slots, then every
  block token attends to the request's context K/V plus its block.
* ``write_context_kv`` -- turn captured target hidden states of committed tokens
  into per-layer context K/V in the draft pool ("KV injection").

Layers use SGLang's ``QKVParallelLinear`` / ``RowParallelLinear`` /
``MergedColumnParallelLinear`` / ``RadixAttention`` so tensor parallelism and CUDA
graph capture work as for any SGLang model.
"""

from __future__ import annotations

import logging
from typing import Iterable

import torch
from torch import nn

from sglang.srt.layers.activation import SiluAndMul
from sglang.srt.layers.layernorm import RMSNorm
from sglang.srt.layers.linear import (
    MergedColumnParallelLinear,
    QKVParallelLinear,
    RowParallelLinear,
)
from sglang.srt.layers.logits_processor import LogitsProcessorOutput
from sglang.srt.layers.radix_attention import AttentionType, RadixAttention
from sglang.srt.layers.rotary_embedding import get_rope
from sglang.srt.model_executor.forward_batch_info import ForwardBatch
from sglang.srt.model_loader.weight_utils import default_weight_loader
from sglang.srt.models.utils import apply_qk_norm

from ..config import DFlashConfig, DFlashConfigError, drafter_config_from
from .context_kv import ContextKVWriter

logger = logging.getLogger(__name__)

ARCHITECTURE = "DFlashDraftModel"


def drafter_config_from_hf(hf_config) -> DFlashConfig:
    """Our parsed config of the drafter SGLang is building (``drafter_config_from``)."""
    return drafter_config_from(getattr(hf_config, "_name_or_path", None), hf_config)


class DraftAttention(nn.Module):
    """Attention of one draft layer: block queries over [context K/V ; block K/V]."""

    def __init__(self, cfg: DFlashConfig, layer_id: int, tp_size: int, quant_config=None,
                 prefix: str = ""):
        super().__init__()
        if cfg.num_attention_heads % tp_size:
            raise DFlashConfigError("num_attention_heads", f"a multiple of tp_size={tp_size}",
                                    cfg.num_attention_heads)
        kv_ok = (cfg.num_key_value_heads % tp_size == 0
                 if cfg.num_key_value_heads >= tp_size else tp_size % cfg.num_key_value_heads == 0)
        if not kv_ok:
            raise DFlashConfigError("num_key_value_heads",
                                    f"a multiple or a divisor of tp_size={tp_size}",
                                    cfg.num_key_value_heads)
        self.head_dim = cfg.head_dim
        self.num_heads = cfg.num_attention_heads // tp_size          # per rank
        self.num_kv_heads = max(1, cfg.num_key_value_heads // tp_size)  # per rank
        self.q_size = self.num_heads * self.head_dim
        self.kv_size = self.num_kv_heads * self.head_dim

        self.qkv_proj = QKVParallelLinear(
            hidden_size=cfg.hidden_size, head_size=cfg.head_dim,
            total_num_heads=cfg.num_attention_heads, total_num_kv_heads=cfg.num_key_value_heads,
            bias=cfg.attention_bias, quant_config=quant_config, prefix=f"{prefix}.qkv_proj")
        self.o_proj = RowParallelLinear(
            cfg.num_attention_heads * cfg.head_dim, cfg.hidden_size, bias=cfg.attention_bias,
            quant_config=quant_config, prefix=f"{prefix}.o_proj")
        self.q_norm = RMSNorm(cfg.head_dim, eps=cfg.rms_norm_eps)
        self.k_norm = RMSNorm(cfg.head_dim, eps=cfg.rms_norm_eps)
        self.rotary_emb = get_rope(
            cfg.head_dim, rotary_dim=cfg.head_dim, max_position=cfg.max_position_embeddings,
            base=cfg.rope_theta, rope_scaling=cfg.rope_scaling, is_neox_style=True)

        # Block-to-block visibility: bidirectional (ENCODER_ONLY) unless the layer is
        # causal; SGLang's window excludes the query itself, the config's includes it.
        if cfg.layer_is_causal(layer_id):
            window = cfg.layer_window(layer_id)
            attn_type, window_left = AttentionType.DECODER, (window - 1 if window else -1)
        else:
            attn_type, window_left = AttentionType.ENCODER_ONLY, -1
        self.attn = RadixAttention(
            num_heads=self.num_heads, head_dim=cfg.head_dim, scaling=cfg.head_dim ** -0.5,
            num_kv_heads=self.num_kv_heads, layer_id=layer_id, sliding_window_size=window_left,
            attn_type=attn_type, quant_config=quant_config, prefix=f"{prefix}.attn")

    def _norm_heads(self, x: torch.Tensor, norm: RMSNorm) -> torch.Tensor:
        # x [n, heads * head_dim] -> per-head RMSNorm -> same shape
        return norm(x.reshape(-1, self.head_dim)).view_as(x)

    def forward(self, positions: torch.Tensor, x: torch.Tensor,
                forward_batch: ForwardBatch) -> torch.Tensor:
        # positions [n], x [n, H] (n = bs * B block tokens)
        qkv, _ = self.qkv_proj(x)
        q, k, v = qkv.split([self.q_size, self.kv_size, self.kv_size], dim=-1)
        # SGLang's per-head q/k RMSNorm: on CUDA one fused kernel, in place on the qkv views
        # (per-norm reshapes of these strided views would each copy first)
        q, k = apply_qk_norm(q, k, self.q_norm, self.k_norm, self.head_dim)
        q, k = self.rotary_emb(positions, q, k)
        out, _ = self.o_proj(self.attn(q, k, v, forward_batch))
        return out

    def context_kv(self, ctx: torch.Tensor, positions: torch.Tensor):
        """ctx [n, H] projected target features -> k, v [n, kv_heads, head_dim] (RoPE'd k).

        The context stream is not passed through input_layernorm (it never had a
        residual stream of its own); it goes through k_norm like block keys."""
        qkv, _ = self.qkv_proj(ctx)
        q, k, v = qkv.split([self.q_size, self.kv_size, self.kv_size], dim=-1)
        # the RoPE op rotates q and k together; q is discarded
        _, k = self.rotary_emb(positions, q, self._norm_heads(k, self.k_norm))
        return (k.reshape(-1, self.num_kv_heads, self.head_dim),
                v.reshape(-1, self.num_kv_heads, self.head_dim))


class DraftMLP(nn.Module):
    def __init__(self, cfg: DFlashConfig, quant_config=None, prefix: str = ""):
        super().__init__()
        self.gate_up_proj = MergedColumnParallelLinear(
            cfg.hidden_size, [cfg.intermediate_size] * 2, bias=False,
            quant_config=quant_config, prefix=f"{prefix}.gate_up_proj")
        self.down_proj = RowParallelLinear(
            cfg.intermediate_size, cfg.hidden_size, bias=False,
            quant_config=quant_config, prefix=f"{prefix}.down_proj")
        self.act = SiluAndMul()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate_up, _ = self.gate_up_proj(x)
        out, _ = self.down_proj(self.act(gate_up))
        return out


class DraftLayer(nn.Module):
    """Pre-norm Qwen3 decoder layer applied to block tokens only.

    The residual stream is carried separately so each norm adds it in the same kernel
    (SGLang's fused add + RMSNorm): x_out + residual_out is the usual layer output."""

    def __init__(self, cfg: DFlashConfig, layer_id: int, tp_size: int, quant_config=None,
                 prefix: str = ""):
        super().__init__()
        self.input_layernorm = RMSNorm(cfg.hidden_size, eps=cfg.rms_norm_eps)
        self.self_attn = DraftAttention(cfg, layer_id, tp_size, quant_config,
                                        prefix=f"{prefix}.self_attn")
        self.post_attention_layernorm = RMSNorm(cfg.hidden_size, eps=cfg.rms_norm_eps)
        self.mlp = DraftMLP(cfg, quant_config, prefix=f"{prefix}.mlp")

    def forward(self, positions, x, residual, forward_batch):
        # x [n, H] this layer's input delta, residual [n, H] or None (first layer: x is all)
        if residual is None:
            residual, h = x, self.input_layernorm(x)
        else:
            h, residual = self.input_layernorm(x, residual)
        h = self.self_attn(positions, h, forward_batch)
        h, residual = self.post_attention_layernorm(h, residual)
        return self.mlp(h), residual


class SGLangDFlashDrafter(nn.Module):
    """z-lab ``DFlashDraftModel`` checkpoints, served inside SGLang."""

    # weight-name pieces of the checkpoint fused into one SGLang parameter
    _FUSED = (("q_proj", "qkv_proj", "q"), ("k_proj", "qkv_proj", "k"),
              ("v_proj", "qkv_proj", "v"), ("gate_proj", "gate_up_proj", 0),
              ("up_proj", "gate_up_proj", 1))

    def __init__(self, config, quant_config=None, prefix: str = "", **unused):
        super().__init__()
        from sglang.srt.runtime_context import get_parallel

        self.config = config
        self.dflash = drafter_config_from_hf(config)
        cfg = self.dflash
        tp_size = int(get_parallel().tp_size)
        self.layers = nn.ModuleList(
            DraftLayer(cfg, i, tp_size, quant_config, prefix=f"layers.{i}")
            for i in range(cfg.num_hidden_layers))
        self.norm = RMSNorm(cfg.hidden_size, eps=cfg.rms_norm_eps)
        # fc: concatenated K target features -> H; replicated on every rank
        self.fc = nn.Linear(cfg.num_context_layers * cfg.hidden_size, cfg.hidden_size, bias=False)
        self.hidden_norm = RMSNorm(cfg.hidden_size, eps=cfg.rms_norm_eps)
        self._embed = None  # the target's embedding module; bound by the worker
        self._head = None   # DraftHead; bound by the worker when draft graphs are captured
        self._kv_writer = None  # ContextKVWriter, built on first use after the weights load
        self.max_positions = cfg.max_position_embeddings  # raised by the worker to its context

    def get_attention_sliding_window_size(self) -> int | None:
        """SGLang's model runner asks this to size its attention backends' window buffers:
        the sliding layers' window in SGLang's convention (keys before the query), or None."""
        windows = {self.dflash.layer_window(i) for i in range(self.dflash.num_hidden_layers)} - {None}
        return max(windows) - 1 if windows else None

    # ---- sharing with the target ----------------------------------------------------
    def bind_target_embedding(self, embed: nn.Module) -> None:
        # Kept out of the module tree on purpose: it belongs to the target (its weights
        # are not in our checkpoint, and must not be counted or reloaded as ours).
        self.__dict__["_embed"] = embed

    def get_input_embeddings(self):
        return self._embed

    # ---- forward ---------------------------------------------------------------------
    def bind_draft_head(self, head) -> None:
        """The worker's ``DraftHead``: recorded into the draft CUDA graph (see ``forward``)."""
        self.__dict__["_head"] = head

    def forward(self, input_ids: torch.Tensor, positions: torch.Tensor,
                forward_batch: ForwardBatch, **unused) -> LogitsProcessorOutput:
        # input_ids [n] block ids (anchor, MASK, ...), positions [n]; returns the final
        # normed hidden states [n, H] (logits come from the target's LM head).
        # No `input_embeds` parameter on purpose: SGLang's draft graph runner would then feed
        # a separate embedding buffer; the lookup lives inside the captured graph instead.
        if self._embed is None:
            raise RuntimeError("DFlash drafter: target embedding not bound "
                               "(DFlashWorker.bind_target_embedding was not called)")
        x = self._embed(input_ids).to(self.fc.weight.dtype)
        residual = None
        for layer in self.layers:
            x, residual = layer(positions, x, residual, forward_batch)
        hidden = self.norm(x) if residual is None else self.norm(x, residual)[0]
        if self._head is not None and _capturing():
            # inside graph capture: the proposals join the graph (DraftHead.out)
            self._head.record(hidden)
        return LogitsProcessorOutput(next_token_logits=None, hidden_states=hidden)

    def project_context(self, target_hidden: torch.Tensor) -> torch.Tensor:
        # target_hidden [n, K*H] captured target layer outputs -> ctx [n, H]
        expected = self.fc.in_features
        if target_hidden.ndim != 2 or target_hidden.shape[1] != expected:
            raise RuntimeError(
                f"DFlash drafter: captured target hidden states have shape "
                f"{tuple(target_hidden.shape)}, expected [n, {expected}] "
                f"({self.dflash.num_context_layers} target layers x hidden {self.dflash.hidden_size})")
        return self.hidden_norm(self.fc(target_hidden.to(self.fc.weight.dtype)))

    @torch.no_grad()
    def write_context_kv(self, target_hidden: torch.Tensor, positions: torch.Tensor,
                         cache_loc: torch.Tensor, kv_pool) -> None:
        """Write context K/V of n tokens into the draft pool.

        target_hidden [n, K*H], positions [n] absolute positions, cache_loc [n] slot ids.
        Under TP the target's captured hidden states and ``fc`` are replicated, and each
        rank writes its own K/V heads (``qkv_proj`` is column-parallel; the draft pool
        of a rank holds that rank's heads)."""
        if target_hidden.shape[0] == 0:
            return
        ctx = self.project_context(target_hidden)
        if self._kv_writer is None:
            reason = ContextKVWriter.supported(self.layers)
            self._kv_writer = (ContextKVWriter(self.layers, self.max_positions)
                               if reason is None else False)
            if reason is not None:
                logger.info("DFlash drafter: per-layer context K/V (%s)", reason)
        if self._kv_writer:
            self._kv_writer.write(ctx, positions, cache_loc, kv_pool)
        else:
            self.write_context_kv_per_layer(ctx, positions, cache_loc, kv_pool)

    def write_context_kv_per_layer(self, ctx: torch.Tensor, positions: torch.Tensor,
                                   cache_loc: torch.Tensor, kv_pool) -> None:
        """The plain form of ``ContextKVWriter.write``: one layer at a time."""
        for layer in self.layers:
            attn = layer.self_attn
            k, v = attn.context_kv(ctx, positions)
            kv_pool.set_kv_buffer(attn.attn, cache_loc, k, v,
                                  attn.attn.k_scale, attn.attn.v_scale)

    # ---- weights ---------------------------------------------------------------------
    def load_weights(self, weights: Iterable[tuple[str, torch.Tensor]]) -> None:
        self._kv_writer = None  # its stacked weights are copies: rebuild after a (re)load
        params = dict(self.named_parameters())
        loaded = set()
        for name, tensor in weights:
            name = name[len("model."):] if name.startswith("model.") else name
            target, shard = name, None
            for piece, fused, shard_id in self._FUSED:
                if f".{piece}." in name:
                    target, shard = name.replace(f".{piece}.", f".{fused}."), shard_id
                    break
            if target not in params:
                continue  # e.g. rotary caches, or an embedding some exporters include
            param = params[target]
            if target == "fc.weight" and tuple(tensor.shape) != tuple(param.shape):
                raise DFlashConfigError(
                    "fc.weight", f"shape {tuple(param.shape)} (hidden x "
                    f"{self.dflash.num_context_layers} target layers * hidden)",
                    tuple(tensor.shape), "drafter checkpoint")
            loader = getattr(param, "weight_loader", default_weight_loader)
            if shard is None:
                loader(param, tensor)
            else:
                loader(param, tensor, shard)
            loaded.add(target)
        missing = sorted(set(params) - loaded)
        if missing:
            raise DFlashConfigError("checkpoint weights", "every drafter weight present",
                                    f"missing {missing[:6]}{' ...' if len(missing) > 6 else ''}",
                                    "drafter checkpoint")


def _capturing() -> bool:
    return torch.cuda.is_available() and torch.cuda.is_current_stream_capturing()


def register_drafter_model() -> None:
    """Make SGLang build our class for ``architectures: ["DFlashDraftModel"]``."""
    from sglang.srt.models.registry import ModelRegistry

    ModelRegistry.models[ARCHITECTURE] = SGLangDFlashDrafter


