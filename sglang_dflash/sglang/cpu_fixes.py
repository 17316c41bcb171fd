"""Fixes that let DFLASH run on SGLang 0.5.17's CPU engine (tests and CI only).

Active only with ``SGLANG_USE_CPU_ENGINE=1``. SGLang supports DFLASH on CUDA/NPU only;
on CPU (with ``--attention-backend torch_native``) five things stand in the way, each
fixed here by the smallest change we found:

1. ``_handle_dflash`` rejects any device but CUDA/NPU. The check is a device-string
   test at its top and nothing else in that function reads the device, so the
   device is shown as "cuda" while it runs (``dflash_device_gate_passed``).
2. The draft attention backend resolver knows only GPU backends and falls back to
   flashinfer. On CPU we keep ``torch_native`` (``resolve_draft_backend_around``);
   SGLang's built-in worker additionally checks a module allow-list.
3. ``torch.Tensor.record_stream`` raises for CPU tensors; SGLang's overlap scheduler
   calls it on the forward inputs. It is a no-op for CPU tensors here.
4. ``ModelRunner._extend_forward_kwargs`` casts ``input_embeds`` to bfloat16, which
   breaks SGLang's built-in drafter in fp32 (ours embeds block ids itself). Cast to
   the runner's dtype instead.
5. ``TorchNativeAttnBackend.forward_extend`` has no TARGET_VERIFY support (it reads
   extend lengths that TARGET_VERIFY batches leave unset). Each request extends its
   committed prefix (``seq_lens``) by ``q_tokens / bs`` tokens; the KV span is prefix
   plus block. DFLASH verifies a chain, so the backend's causal mask (none for the
   drafter's bidirectional layers) is exactly right; custom masks are not supported.

One more is not about DFLASH: structured output (``regex``, ``json_schema``, EBNF) fails on
the CPU engine with or without speculation, which left our worker's grammar path
untestable there.

6. SGLang's xgrammar backend allocates its token bitmask in pinned memory, which needs
   CUDA, and applies it with GPU kernels only. On CPU the bitmask is allocated plainly
   and applied with xgrammar's own CPU routine (``allocate_token_bitmask_around``,
   ``apply_vocab_mask_around``; registered by the plugin for every CPU-engine server, so
   the plain server a test compares against has it too).
"""

from __future__ import annotations

import contextlib
import types

from . import env

_scheduler_fixes_applied = False


@contextlib.contextmanager
def dflash_device_gate_passed(server_args):
    """Fix 1: show device 'cuda' to ``_handle_dflash`` for the duration of the call."""
    server_args.device = "cuda"
    try:
        yield
    finally:
        server_args.device = "cpu"


def resolve_draft_backend_around(original_fn, server_args):
    """Fix 2 (AROUND ``_resolve_dflash_draft_attention_backend``)."""
    if env.cpu_engine():
        wanted = server_args.speculative_draft_attention_backend
        if wanted in (None, "torch_native") and server_args.attention_backend == "torch_native":
            server_args.speculative_draft_attention_backend = "torch_native"
            return None
    return original_fn(server_args)


XGRAMMAR_ALLOCATE = "sglang.srt.constrained.xgrammar_backend._allocate_token_bitmask"
XGRAMMAR_APPLY = "sglang.srt.constrained.xgrammar_backend.XGrammarGrammar.apply_vocab_mask"


def allocate_token_bitmask_around(original_fn, vocab_size: int, batch_size: int):
    """Fix 6 (AROUND ``_allocate_token_bitmask``): the same bitmask, not pinned, on CPU."""
    import torch

    if torch.cuda.is_available():
        return original_fn(vocab_size, batch_size)
    from xgrammar import allocate_token_bitmask

    return allocate_token_bitmask(batch_size, vocab_size)


def apply_vocab_mask_around(original_fn, self, logits, vocab_mask):
    """Fix 6 (AROUND ``XGrammarGrammar.apply_vocab_mask``): CPU logits get xgrammar's CPU
    routine (disallowed tokens to -inf), rows of ``logits`` and ``vocab_mask`` alike."""
    if logits.device.type != "cpu":
        return original_fn(self, logits=logits, vocab_mask=vocab_mask)
    from xgrammar import apply_token_bitmask_inplace

    apply_token_bitmask_inplace(logits, vocab_mask)  # both on the CPU here


def apply_scheduler_fixes() -> None:
    """Fixes 2 (built-in allow-list), 3, 4 and 5; run in the scheduler process when the
    DFLASH worker is created. Idempotent."""
    global _scheduler_fixes_applied
    if _scheduler_fixes_applied or not env.cpu_engine():
        return
    _scheduler_fixes_applied = True
    _allow_torch_native_draft_backend()
    _record_stream_noop_on_cpu()
    _input_embeds_in_runner_dtype()
    _torch_native_target_verify()


def _allow_torch_native_draft_backend() -> None:
    from sglang.srt.speculative import draft_worker_common

    allowed = tuple(draft_worker_common._SUPPORTED_DRAFT_BACKENDS)
    if "torch_native" not in allowed:
        draft_worker_common._SUPPORTED_DRAFT_BACKENDS = allowed + ("torch_native",)


def _record_stream_noop_on_cpu() -> None:
    import torch

    original = torch.Tensor.record_stream

    def record_stream(self, stream):
        if self.device.type == "cpu":
            return None
        return original(self, stream)

    torch.Tensor.record_stream = record_stream


def _input_embeds_in_runner_dtype() -> None:
    from sglang.srt.model_executor.model_runner import ModelRunner

    original = ModelRunner._extend_forward_kwargs

    def _extend_forward_kwargs(self, forward_batch, pp_proxy_tensors):
        kwargs = original(self, forward_batch, pp_proxy_tensors)
        if forward_batch.input_embeds is not None and "input_embeds" in kwargs:
            kwargs["input_embeds"] = forward_batch.input_embeds.to(self.dtype)
        return kwargs

    ModelRunner._extend_forward_kwargs = _extend_forward_kwargs


def _torch_native_target_verify() -> None:
    import torch
    from sglang.srt.layers.attention.torch_native_backend import TorchNativeAttnBackend

    original = TorchNativeAttnBackend.forward_extend

    def forward_extend(self, q, k, v, layer, forward_batch, save_kv_cache=True):
        if not (forward_batch.forward_mode.is_target_verify()
                and forward_batch.extend_prefix_lens is None):
            return original(self, q, k, v, layer, forward_batch, save_kv_cache)
        bs = int(forward_batch.req_pool_indices.shape[0])
        per_request = q.shape[0] // bs
        prefix = forward_batch.seq_lens.to(torch.int64)
        as_extend = types.SimpleNamespace(
            forward_mode=forward_batch.forward_mode,
            out_cache_loc=forward_batch.out_cache_loc,
            encoder_out_cache_loc=getattr(forward_batch, "encoder_out_cache_loc", None),
            encoder_lens=getattr(forward_batch, "encoder_lens", None),
            req_pool_indices=forward_batch.req_pool_indices,
            seq_lens=prefix + per_request,
            extend_prefix_lens=prefix,
            extend_seq_lens=torch.full_like(prefix, per_request),
        )
        return original(self, q, k, v, layer, as_extend, save_kv_cache)

    TorchNativeAttnBackend.forward_extend = forward_extend
