"""``DFlashWorker``: DFlash block speculative decoding as an SGLang spec-v2 worker.

The scheduler creates it (through our hook on ``SpeculativeAlgorithm.create_worker``)
for ``--speculative-algorithm DFLASH`` and sends every forward through
``forward_batch_generation``. The same code runs under the overlap scheduler (the
default) and with ``--disable-overlap-schedule``.

Prefill / extend (chunked prefill included):
    target extend with hidden-state capture -> ``on_publish`` -> write the drafter's
    context K/V of every extended token -> next anchors = the sampled tokens.
Decode, one step for the whole batch:
    build blocks -> one draft forward -> draft tokens through the target LM head ->
    TARGET_VERIFY of each block as one chain -> accept (core verifier) ->
    ``on_publish`` -> context K/V of the verified tokens -> next anchors = bonus.
    On GPU the draft forward, LM head and argmax replay from CUDA graphs
    (``init_cuda_graphs``), the glue runs as Triton kernels (``sglang_dflash.ops``), and
    ``SGLANG_DFLASH_STEP_TIMING`` times the five phases (``step_timing.py``).

KV slots are never allocated here: ``DFlashStepInput.prepare_for_decode`` (run by
the scheduler before each step) reserves ``2 * B`` slots past each request's
committed length, and the worker only reads them from ``req_to_token``. Target and
drafter share that slot index space (one draft slot per target slot).

Under ``--tp-size N`` every rank runs this same code on the same batch, with no
rank-dependent branch (only the start line is logged by rank 0): the drafter's
layers are sharded like the target's, its argmax over the target's sharded LM head
is vocab-parallel (``vocab_argmax.py``), the verify logits come all-gathered from
SGLang's logits processor, and the accept step's generator is seeded alike, so every
rank commits the same tokens. ``SYNC_TOKEN_IDS_ACROSS_TP=1`` (or a grammar) adds
SGLang's guard: every rank takes rank 0's accept decision (``broadcast_outcome``).

Context K/V is written for all B verified positions, not only the committed ones:
slots past the committed length are overwritten by the next step's block before
anything reads them, so the extra rows are harmless and the step stays free of
data-dependent shapes and host syncs.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from functools import partial

import torch

from sglang.srt.distributed import get_tp_group
from sglang.srt.layers.sampler import SYNC_TOKEN_IDS_ACROSS_TP
from sglang.srt.managers.schedule_batch import ScheduleBatch
from sglang.srt.managers.utils import GenerationBatchResult
from sglang.srt.model_executor.forward_batch_info import (
    CaptureHiddenMode,
    ForwardBatch,
    ForwardMode,
)
from sglang.srt.speculative.base_spec_worker import BaseSpecWorker
from sglang.srt.speculative.dflash_info import DFlashVerifyInput
from sglang.srt.speculative.dflash_info_v2 import DFlashDraftInputV2
from sglang.srt.speculative.dflash_utils import (
    apply_dflash_simulated_acceptance,
    apply_dflash_verify_logits_adjustments,
)
from sglang.srt.speculative.draft_worker_common import build_draft_tp_worker
from sglang.srt.speculative.spec_info import SpeculativeAlgorithm
from sglang.srt.speculative.spec_utils import (
    SIMULATE_ACC_LEN,
    SIMULATE_ACC_METHOD,
    SIMULATE_ACC_TOKEN_MODE,
    GrammarTree,
    build_grammar_vocab_mask,
)

from ..config import DFlashConfigError, validate_against_target
from ..ops import step as step_ops
from ..ops.loader import triton_available
from .accept import broadcast_outcome, verify_step
from .draft_head import DraftHead
from .drafter import SGLangDFlashDrafter, register_drafter_model
from .hooks import drafter_config_of
from .state import DFlashStepInput, DraftBlock, StepOutcome
from .step_timing import StepTimer
from .vocab_argmax import lm_head_shard

logger = logging.getLogger(__name__)

IMPL_NAME = "sglang_dflash.DFlashWorker"


class DFlashWorker(BaseSpecWorker):
    """Serves ``--speculative-algorithm DFLASH`` with our drafter and verifier."""

    impl_name = IMPL_NAME

    def __init__(self, server_args, gpu_id: int, ps, nccl_port: int, target_worker):
        super().__init__()
        self.server_args = server_args
        self.gpu_id = gpu_id
        self.ps = ps
        self.nccl_port = nccl_port
        self._target_worker = target_worker
        self.model_runner = target_worker.model_runner  # target runner, as SGLang expects
        self.device = torch.device(target_worker.device)
        self.page_size = server_args.page_size

        target_runner = target_worker.model_runner
        target_model = target_runner.model
        self.tp_size = int(ps.tp_size)
        self.block_size = self._resolve_block_size(server_args)
        self.speculative_num_draft_tokens = self.block_size
        if server_args.speculative_draft_window_size is not None:
            raise DFlashConfigError(
                "--speculative-draft-window-size", "unset (sglang-dflash keeps the full "
                "drafter context)", server_args.speculative_draft_window_size)

        # Drafter config, validated by the core loader before any weight is read.
        self.dflash = drafter_config_of(server_args)
        validate_against_target(self.dflash, target_runner.model_config.hf_config)
        self._check_captured_layers(target_runner)
        self.mask_token_id = int(self.dflash.mask_token_id)

        # Draft runner: a plain TpModelWorker over our SGLang drafter class.
        register_drafter_model()
        self.draft_attention_backend = (
            server_args.speculative_draft_attention_backend
            or server_args.attention_backend
        )
        bundle = build_draft_tp_worker(
            server_args=server_args,
            gpu_id=gpu_id,
            ps=replace(ps, pp_rank=0),
            nccl_port=nccl_port,
            target_model_config=target_runner.model_config,
            algo_label="DFLASH",
            attention_backend_override=self.draft_attention_backend,
        )
        self._draft_worker = bundle.draft_worker
        self.draft_model_runner = bundle.draft_model_runner
        self.drafter = bundle.draft_model
        if not isinstance(self.drafter, SGLangDFlashDrafter):
            raise RuntimeError(
                f"sglang-dflash: the draft checkpoint loaded as {type(self.drafter).__name__}, "
                f"expected SGLangDFlashDrafter (architectures must be ['DFlashDraftModel'])")

        # Positions can reach the served context length, which may exceed the drafter's
        # own max_position_embeddings (the fused context-K/V store checks its RoPE cache).
        self.drafter.max_positions = max(int(self.dflash.max_position_embeddings),
                                         int(target_runner.model_config.context_len))
        # Share the target's embedding and LM head.
        self.drafter.bind_target_embedding(target_model.get_input_embeddings())
        lm_head = getattr(target_model, "lm_head", None)
        if lm_head is None or getattr(lm_head, "weight", None) is None:
            raise RuntimeError("sglang-dflash: the target model exposes no `lm_head.weight` "
                               "for the drafter to borrow")
        # Only the real vocabulary rows of this rank's shard: SGLang pads the LM head (to a
        # multiple of 64 rows per rank), and a zero padding row could win the argmax when
        # every real logit is negative. Under TP the argmax is vocab-parallel.
        vocab = int(getattr(lm_head, "org_vocab_size", lm_head.weight.shape[0]))
        vocab = min(vocab, int(target_runner.model_config.vocab_size))
        self.lm_head_weight = lm_head.weight                 # [rows_padded, H], this rank's
        head_tp = int(getattr(lm_head, "tp_size", self.tp_size))  # 1: replicated head
        self.vocab_shard = lm_head_shard(lm_head, vocab, head_tp)
        self._vocab_all_gather = (partial(get_tp_group().all_gather, dim=0)
                                  if head_tp > 1 else None)

        self.head = self._draft_head(max_bs=0)  # eager only until the graphs are captured
        self.use_triton = triton_available(self.device)  # the step kernels, decided once
        self.timer = StepTimer.from_env(self.device)  # SGLANG_DFLASH_STEP_TIMING
        self._generator = torch.Generator(device=self.device)
        self._generator.manual_seed(int(server_args.random_seed or 0))
        self.dtype = self.draft_model_runner.dtype

        if ps.tp_rank == 0:
            logger.info(
                "sglang-dflash worker started: impl=%s block_size=%d "
                "draft_attention_backend=%s dtype=%s drafter_layers=%d target_layer_ids=%s "
                "mask_token_id=%d tp_size=%d",
                IMPL_NAME, self.block_size, self.draft_attention_backend,
                str(self.dtype).replace("torch.", ""), self.dflash.num_hidden_layers,
                list(self.dflash.target_layer_ids), self.mask_token_id, self.tp_size)

    # ---- set-up helpers ----------------------------------------------------------------
    @staticmethod
    def _resolve_block_size(server_args) -> int:
        block = server_args.speculative_num_draft_tokens
        if block is None or int(block) < 2:
            raise DFlashConfigError("--speculative-num-draft-tokens (block size)",
                                    ">= 2 (the anchor plus at least one draft)", block)
        return int(block)

    def _draft_head(self, max_bs: int) -> DraftHead:
        return DraftHead(self.lm_head_weight, self.block_size, max_bs, self.vocab_shard,
                         self._vocab_all_gather)

    def _check_captured_layers(self, target_runner) -> None:
        """The target must capture exactly the layers our drafter reads, in order."""
        aux = getattr(target_runner, "spec_aux_config", None)
        captured = getattr(aux, "dflash_target_layer_ids", None)
        if captured is not None and list(captured) != list(self.dflash.target_layer_ids):
            raise DFlashConfigError(
                "dflash_config.target_layer_ids",
                f"the layers SGLang captures from the target, {list(captured)}",
                list(self.dflash.target_layer_ids))

    # ---- the BaseSpecWorker surface the scheduler uses ---------------------------------
    @property
    def draft_worker(self):
        return self._draft_worker

    @property
    def spec_v2_attn_backends(self) -> tuple:
        return (self._target_worker.model_runner.attn_backend,
                self.draft_model_runner.attn_backend)

    def alloc_memory_pool(self, memory_pool_config=None, req_to_token_pool=None,
                          token_to_kv_pool_allocator=None):
        # The drafter shares the target's request->token table and slot allocator; it
        # only owns its K/V buffers.
        self._draft_worker.alloc_memory_pool(
            memory_pool_config=memory_pool_config,
            req_to_token_pool=req_to_token_pool,
            token_to_kv_pool_allocator=token_to_kv_pool_allocator,
        )
        self.req_to_token_pool = req_to_token_pool
        self.token_to_kv_pool_allocator = token_to_kv_pool_allocator

    def init_attention_backends(self):
        self._draft_worker.init_attention_backends()

    def init_cuda_graphs(self):
        """Capture the draft forward (TARGET_VERIFY over ``bs * B`` block tokens) at every
        batch size SGLang captures for decode, with the LM head and argmax folded into each
        graph (``DraftHead``). SGLang skips the capture when CUDA graphs are disabled or the
        device is not a GPU; larger batches, and such devices, run the same forward eagerly
        and ``_draft`` computes the proposals outside the graph."""
        if self.device.type == "cuda":
            from sglang.srt.model_executor.runner.base_cuda_graph_runner import (
                get_batch_sizes_to_capture,
            )

            capture_bs, _ = get_batch_sizes_to_capture(self.draft_model_runner, self.block_size)
            if self._vocab_all_gather is None:
                # Under vocab-parallel TP the argmax needs a collective; it stays outside
                # the graph (after the replay), the drafter forward is still captured.
                self.head = self._draft_head(max_bs=max(capture_bs))
                self.drafter.bind_draft_head(self.head)
        self._draft_worker.init_cuda_graphs(capture_decode_cuda_graph=True)
        runner = self.draft_model_runner.decode_cuda_graph_runner
        captured = sorted(getattr(runner, "capture_bs", []) or [])
        if self.ps.tp_rank == 0:
            logger.info("sglang-dflash draft CUDA graphs: %s",
                        f"batch sizes {captured[0]}..{captured[-1]} ({len(captured)} graphs)"
                        if captured else "none (eager draft forward)")

    def clear_cache_pool(self):
        pass  # the target worker owns the shared allocator and cache

    def __getattr__(self, name):
        # Everything else the scheduler asks of a model worker is the target's.
        if name == "_target_worker":
            raise AttributeError(name)
        return getattr(self._target_worker, name)

    # ---- forward -----------------------------------------------------------------------
    def forward_batch_generation(self, batch: ScheduleBatch, on_publish=None,
                                 grammar_barrier=None, **unused) -> GenerationBatchResult:
        if getattr(batch, "return_logprob", False):
            raise ValueError("sglang-dflash: return_logprob is not supported with DFLASH yet")
        if batch.forward_mode.is_extend() or batch.is_extend_in_batch:
            return self._extend(batch, on_publish)
        if batch.forward_mode.is_idle():
            return self._idle(on_publish)
        return self._decode(batch, on_publish, grammar_barrier)

    def _extend(self, batch: ScheduleBatch, on_publish) -> GenerationBatchResult:
        """Target prefill of the extended tokens, then their drafter context K/V."""
        self.timer.prefill_start()
        result = self.target_worker.forward_batch_generation(
            batch, capture_hidden_mode=CaptureHiddenMode.FULL)
        self.timer.prefill_mark()  # target
        result.new_seq_lens = batch.seq_lens
        if on_publish is not None:
            on_publish(batch.seq_lens)
        hidden = result.logits_output.hidden_states  # [sum(extend_lens), K*H]
        if hidden is None:
            raise RuntimeError("sglang-dflash: the target returned no captured hidden states "
                               "in prefill (layers-to-capture not configured)")
        positions = extend_positions(batch.prefix_lens, batch.extend_lens, self.device)
        # Written before returning: the scheduler may insert these slots into the radix
        # cache as soon as the result is processed.
        self.drafter.write_context_kv(hidden, positions, batch.out_cache_loc.to(torch.int64),
                                      self.draft_model_runner.token_to_kv_pool)
        self.timer.prefill_mark()  # context_kv
        self.timer.prefill_end(hidden.shape[0])
        result.logits_output.hidden_states = None  # no large D2H copy
        result.next_draft_input = DFlashStepInput.make(result.next_token_ids, batch.seq_lens)
        return result

    def _idle(self, on_publish) -> GenerationBatchResult:
        empty = torch.empty((0,), dtype=torch.int64, device=self.device)
        nxt = DFlashStepInput.make(empty, empty)
        if on_publish is not None:
            on_publish(nxt.new_seq_lens)
        return GenerationBatchResult(
            logits_output=None, next_token_ids=empty,
            accept_lens=torch.empty((0,), dtype=torch.int32, device=self.device),
            next_draft_input=nxt, can_run_cuda_graph=False,
            speculative_num_draft_tokens=self.block_size, new_seq_lens=nxt.new_seq_lens)

    def _decode(self, batch: ScheduleBatch, on_publish, grammar_barrier) -> GenerationBatchResult:
        draft_input = batch.spec_info
        # Usually our DFlashStepInput; SGLang itself builds the base class in a few paths
        # (e.g. PD-disaggregated decode), which carries the same fields.
        if not isinstance(draft_input, DFlashDraftInputV2):
            raise RuntimeError(
                "sglang-dflash: the running batch carries "
                f"{type(draft_input).__name__}, expected DFlashStepInput from our prefill")
        if self.device.type == "cuda":
            # seq_lens may come from the previous overlap iteration's stream
            batch.seq_lens.record_stream(torch.cuda.current_stream())

        timer = self.timer
        timer.start()
        block = self._build_block(batch, draft_input)
        timer.mark()  # block
        drafts, draft_graph = self._draft(batch, block)                  # [bs, B-1]
        chain = torch.cat([block.block_ids[:, :1], drafts], dim=1)       # [bs, B]
        timer.mark()  # draft
        grammar_tree = GrammarTree.from_linear_chain(chain) if batch.has_grammar else None

        logits_output, can_run_graph = self._verify(batch, block, chain)
        timer.mark()  # verify
        logits = logits_output.next_token_logits                          # [bs*B, V]
        if batch.has_grammar:
            mask = build_grammar_vocab_mask(reqs=batch.reqs, tree=grammar_tree,
                                            sampling_info=batch.sampling_info,
                                            device=logits.device, barrier=grammar_barrier)
        else:
            mask = None
        if batch.sampling_info is not None:
            # penalties, logit bias, custom logit processors: on every block row
            apply_dflash_verify_logits_adjustments(
                next_token_logits=logits, sampling_info=batch.sampling_info,
                draft_token_num=self.block_size)
        if mask is not None:
            mask.apply(logits)

        outcome, target_best = verify_step(drafts, logits, batch.sampling_info, self._generator,
                                           block.prefix_lens, use_triton=self.use_triton)
        if SIMULATE_ACC_LEN > 0:
            outcome = self._simulate_acceptance(chain, logits, target_best, outcome,
                                                block.prefix_lens)
        if self.tp_size > 1 and (SYNC_TOKEN_IDS_ACROSS_TP or batch.has_grammar):
            outcome = broadcast_outcome(outcome, block.prefix_lens,
                                        partial(get_tp_group().broadcast, src=0))

        timer.mark()  # accept
        if on_publish is not None:
            on_publish(outcome.new_seq_lens)

        hidden = logits_output.hidden_states  # [bs*B, K*H] target features of the chain
        if hidden is None:
            raise RuntimeError("sglang-dflash: the target returned no captured hidden states "
                               "in verify")
        self.drafter.write_context_kv(hidden, block.positions.reshape(-1),
                                      block.slots.reshape(-1),
                                      self.draft_model_runner.token_to_kv_pool)
        logits_output.hidden_states = None
        timer.mark()  # context_kv
        timer.end(chain.shape[0], eager=not (draft_graph and can_run_graph))

        return GenerationBatchResult(
            logits_output=logits_output,
            next_token_ids=outcome.out_tokens.reshape(-1),
            accept_lens=outcome.commit_lens,
            can_run_cuda_graph=can_run_graph,
            next_draft_input=DFlashStepInput.make(outcome.bonus, outcome.new_seq_lens),
            speculative_num_draft_tokens=self.block_size,
            new_seq_lens=outcome.new_seq_lens,
        )

    # ---- decode phases -------------------------------------------------------------------
    def _build_block(self, batch: ScheduleBatch, draft_input) -> DraftBlock:
        # Launched right after the scheduler's wait for the previous step, with the GPU about
        # to run dry: one kernel builds ids, positions and slots (the .to / .contiguous are
        # no-ops for SGLang's int64 tensors).
        prefix = batch.seq_lens.to(torch.int64).contiguous()                  # [bs]
        block_ids, positions, slots = step_ops.prepare_block(                 # [bs, B] each
            draft_input.bonus_tokens.to(torch.int64).contiguous(), prefix,
            batch.req_pool_indices.to(torch.int64).contiguous(),
            self.model_runner.req_to_token_pool.req_to_token, self.block_size,
            self.mask_token_id, use_triton=self.use_triton)
        host_bound = self._host_seq_lens_bound(batch, draft_input)  # for draft and verify
        return DraftBlock(block_ids=block_ids, positions=positions, slots=slots,
                          prefix_lens=prefix, host_seq_lens=host_bound,
                          host_seq_lens_sum=int(host_bound.sum()))

    def _host_seq_lens_bound(self, batch: ScheduleBatch, draft_input) -> torch.Tensor:
        """A host-side upper bound of each request's KV length during the step (prefix
        plus one block); attention backends size their metadata from it."""
        if batch.seq_lens_cpu is not None:
            return batch.seq_lens_cpu.to(torch.int64) + self.block_size
        if draft_input.reserved_seq_lens_cpu is not None:
            return draft_input.reserved_seq_lens_cpu.to(torch.int64)
        return batch.seq_lens.to("cpu", torch.int64) + self.block_size

    def _draft(self, batch: ScheduleBatch, block: DraftBlock) -> tuple[torch.Tensor, bool]:
        """One drafter forward over all blocks; returns drafts [bs, B-1] and whether the
        forward replayed its CUDA graph."""
        bs, B = block.block_ids.shape
        forward_batch = ForwardBatch(
            forward_mode=ForwardMode.TARGET_VERIFY,
            batch_size=bs,
            input_ids=block.block_ids.reshape(-1),
            req_pool_indices=batch.req_pool_indices,
            seq_lens=block.prefix_lens,
            out_cache_loc=block.slots.reshape(-1),
            seq_lens_sum=block.host_seq_lens_sum,
            seq_lens_cpu=block.host_seq_lens,
            positions=block.positions.reshape(-1),
            spec_algorithm=SpeculativeAlgorithm.DFLASH,
            spec_info=DFlashVerifyInput(
                draft_token=block.block_ids.reshape(-1), positions=block.positions.reshape(-1),
                draft_token_num=B, custom_mask=None, capture_hidden_mode=CaptureHiddenMode.NULL),
            capture_hidden_mode=CaptureHiddenMode.NULL,
        )
        with torch.inference_mode():
            out = self.draft_model_runner.forward(forward_batch)
        if out.can_run_graph and self.head.max_bs >= bs:
            return self.head.read(bs), True  # written by the replayed graph
        return self.head.propose(out.logits_output.hidden_states), bool(out.can_run_graph)

    def _verify(self, batch: ScheduleBatch, block: DraftBlock, chain: torch.Tensor):
        """TARGET_VERIFY of every block as one causal chain; returns (logits_output, graph?)."""
        verify_input = DFlashVerifyInput(
            draft_token=chain.reshape(-1), positions=block.positions.reshape(-1),
            draft_token_num=block.size, custom_mask=None,
            capture_hidden_mode=CaptureHiddenMode.FULL)
        batch.out_cache_loc = block.slots.reshape(-1)
        # Attention planning reads host lengths; widen them by one block for this forward
        # only (the scheduler restores every batch field after the step anyway).
        saved = batch.seq_lens_cpu, batch.seq_lens_sum
        batch.seq_lens_cpu, batch.seq_lens_sum = block.host_seq_lens, block.host_seq_lens_sum
        forward_batch, _ = verify_input.prepare_for_verify(batch, self.target_worker)
        batch.seq_lens_cpu, batch.seq_lens_sum = saved
        out = self.target_worker.forward_batch_generation(
            batch=None, forward_batch=forward_batch, is_verify=True,
            skip_attn_backend_init=True)
        return out.logits_output, out.can_run_cuda_graph

    def _simulate_acceptance(self, chain, logits, target_best, outcome: StepOutcome,
                             prefix_lens) -> StepOutcome:
        """SGLANG_SIMULATE_ACC_LEN: force the acceptance length with SGLang's own routine,
        so benchmarks with a forced acceptance match the built-in worker exactly."""
        bs, B = chain.shape
        target_top1 = target_best if target_best is not None else logits.view(bs, B, -1).argmax(-1)
        if SIMULATE_ACC_TOKEN_MODE not in ("fixed", "real-draft-token"):
            raise ValueError(f"SGLANG_SIMULATE_ACC_TOKEN_MODE: expected 'fixed' or "
                             f"'real-draft-token', got {SIMULATE_ACC_TOKEN_MODE!r}")
        apply_dflash_simulated_acceptance(
            candidates=chain, target_predict=target_top1, accept_len=outcome.accept_len,
            commit_lens=outcome.commit_lens, bonus=outcome.bonus, out_tokens=outcome.out_tokens,
            simulate_acc_len=SIMULATE_ACC_LEN, simulate_acc_method=SIMULATE_ACC_METHOD,
            simulate_acc_token_mode=SIMULATE_ACC_TOKEN_MODE)
        outcome.new_seq_lens = prefix_lens + outcome.commit_lens.to(prefix_lens.dtype)
        return outcome


def extend_positions(prefix_lens: list[int], extend_lens: list[int],
                     device: torch.device) -> torch.Tensor:
    """Positions of the extended tokens, ``prefix_len .. prefix_len + extend_len - 1`` per
    request, [sum(extend_lens)] int64. Built on the host from the batch's lists and copied
    without blocking: built on the device, its length would have to come back to the host,
    a sync that drains the overlap pipeline at every prefill."""
    lens = torch.tensor(extend_lens, dtype=torch.int64)
    # token k of the flattened batch sits at k + (its request's prefix - the request's offset)
    shift = torch.tensor(prefix_lens, dtype=torch.int64) - (torch.cumsum(lens, 0) - lens)
    pos = torch.arange(int(sum(extend_lens)), dtype=torch.int64) + torch.repeat_interleave(shift, lens)
    if device.type == "cuda":
        return pos.pin_memory().to(device, non_blocking=True)
    return pos.to(device)
