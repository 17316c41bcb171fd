"""Triton kernels for the per-step glue of a DFlash decode step (one program per request).

This folder is deliberately NOT a Python package named `kernels` (SGLang depends on a PyPI
package of that name). The checked wrappers in `sglang_dflash/ops/step.py` load this file by
path and are the only callers; they validate shapes, dtypes and devices before launching and
fall back to the torch reference in `sglang_dflash/verify.py` where Triton cannot run.

Shapes: b requests, B block size, V vocabulary.

Inputs that come from SGLang's batch (anchors, committed lengths) may be views at any offset;
Triton would compile a second variant of a kernel for a pointer that is not 16-byte aligned,
on the hot path the first time that happens. Those pointers are therefore not specialised on
alignment: each kernel compiles once, at the server's warm-up request. The loads they feed are
one scalar per program, so nothing is lost. The accept kernels' per-request outputs are
rows of shared allocations at offsets that depend on the batch size, and are likewise one
scalar store per program, so they are not specialised either. Nor are the drafts: their rows
are B-1 tokens long, so past the first no row starts aligned whatever the base, and a
one-request view of a wider buffer would otherwise compile a variant of its own.
"""
import triton
import triton.language as tl

SCALAR_INPUTS = ["anchor_ptr", "committed_ptr", "pool_idx_ptr"]
SCALAR_OUTPUTS = ["accept_ptr", "commit_len_ptr", "bonus_ptr", "new_len_ptr"]


@triton.jit(do_not_specialize_on_alignment=SCALAR_INPUTS)
def prepare_block_kernel(
    anchor_ptr,      # [b] int64: last emitted token of each request (no KV yet)
    committed_ptr,   # [b] int64: tokens with KV = position of the anchor
    pool_idx_ptr,    # [b] int64: each request's row of req_to_token
    req_to_token_ptr,  # [rows, max_len] int32: request -> KV slot of each position
    req_stride,      # row stride of req_to_token, in elements
    block_ids_ptr,   # [b, B] int64 out: [anchor, MASK, ..., MASK]
    positions_ptr,   # [b, B] int64 out: committed + j
    slots_ptr,       # [b, B] int64 out: req_to_token[pool_idx, committed + j]
    mask_id,
    B: tl.constexpr,
    BLOCK_B: tl.constexpr,
):
    row = tl.program_id(0).to(tl.int64)
    j = tl.arange(0, BLOCK_B)
    live = j < B
    anchor = tl.load(anchor_ptr + row)
    start = tl.load(committed_ptr + row)
    ids = tl.where(j == 0, anchor, mask_id).to(tl.int64)
    tl.store(block_ids_ptr + row * B + j, ids, mask=live)
    tl.store(positions_ptr + row * B + j, start + j, mask=live)
    table_row = req_to_token_ptr + tl.load(pool_idx_ptr + row) * req_stride
    slots = tl.load(table_row + start + j, mask=live, other=0)
    tl.store(slots_ptr + row * B + j, slots.to(tl.int64), mask=live)


@triton.jit(do_not_specialize_on_alignment=["draft_ptr", "committed_ptr"] + SCALAR_OUTPUTS)
def greedy_accept_kernel(
    draft_ptr,       # [b, B-1] int64 drafted tokens
    best_ptr,        # [b, B] int64 target argmax per block position
    committed_ptr,   # [b] int64 tokens with KV before this step
    accept_ptr,      # [b] int32 out: A
    commit_len_ptr,  # [b] int32 out: A + 1, the tokens this step emits
    bonus_ptr,       # [b] int64 out: best[A]
    commit_ptr,      # [b, B] int64 out: draft[:A], bonus, 0 ...
    new_len_ptr,     # [b] int64 out: committed + A + 1
    B: tl.constexpr,
    BLOCK_B: tl.constexpr,
):
    row = tl.program_id(0).to(tl.int64)
    j = tl.arange(0, BLOCK_B)
    n = B - 1
    draft = tl.load(draft_ptr + row * n + j, mask=j < n, other=-1)
    best = tl.load(best_ptr + row * B + j, mask=j < B, other=-2)
    # A = index of the first mismatch among the n draft slots (n if none)
    miss = (draft != best) & (j < n)
    accept = tl.min(tl.where(miss, j, n), axis=0)
    bonus = tl.sum(tl.where(j == accept, best, 0), axis=0)
    out = tl.where(j < accept, draft, 0)
    out = tl.where(j == accept, bonus, out)
    tl.store(commit_ptr + row * B + j, out, mask=j < B)
    tl.store(accept_ptr + row, accept.to(tl.int32))
    tl.store(commit_len_ptr + row, (accept + 1).to(tl.int32))
    tl.store(bonus_ptr + row, bonus.to(tl.int64))
    tl.store(new_len_ptr + row, tl.load(committed_ptr + row) + accept + 1)


@triton.jit(do_not_specialize_on_alignment=["draft_ptr", "committed_ptr"] + SCALAR_OUTPUTS)
def sampling_accept_kernel(
    draft_ptr,       # [b, B-1] int64 drafted tokens
    probs_ptr,       # [b, B, V] float32 target probabilities (after temperature/top-k/top-p/min-p)
    accept_u_ptr,    # [b, B-1] float32 uniforms in [0, 1): keep draft j iff u_j < p_j(d_j)
    bonus_u_ptr,     # [b] float32 uniform in [0, 1) for the bonus draw
    committed_ptr,   # [b] int64
    accept_ptr,      # [b] int32 out: A
    commit_len_ptr,  # [b] int32 out: A + 1
    bonus_ptr,       # [b] int64 out
    commit_ptr,      # [b, B] int64 out: draft[:A], bonus, 0 ...
    new_len_ptr,     # [b] int64 out
    V,
    B: tl.constexpr,
    BLOCK_B: tl.constexpr,
    BLOCK_V: tl.constexpr,
):
    row = tl.program_id(0).to(tl.int64)
    j = tl.arange(0, BLOCK_B)
    n = B - 1
    draft = tl.load(draft_ptr + row * n + j, mask=j < n, other=0)
    p_draft = tl.load(probs_ptr + (row * B + j) * V + draft, mask=j < n, other=0.0)
    u = tl.load(accept_u_ptr + row * n + j, mask=j < n, other=1.0)
    refused = (u >= p_draft) & (j < n)
    accept = tl.min(tl.where(refused, j, n), axis=0)

    # bonus: inverse CDF over row `accept`, with the refused draft (if any) taken out
    rejected = accept < n
    refused_tok = tl.sum(tl.where(j == accept, draft, 0), axis=0)
    base = probs_ptr + (row * B + accept) * V
    total = 0.0
    for start in range(0, V, BLOCK_V):
        v = start + tl.arange(0, BLOCK_V)
        p = tl.load(base + v, mask=v < V, other=0.0)
        p = tl.where(rejected & (v == refused_tok), 0.0, p)
        total += tl.sum(p, axis=0)
    goal = tl.load(bonus_u_ptr + row) * total
    # first index whose running sum exceeds goal; last nonzero token as a rounding guard
    running = 0.0
    choice = -1
    last_nonzero = 0
    for start in range(0, V, BLOCK_V):
        v = start + tl.arange(0, BLOCK_V)
        p = tl.load(base + v, mask=v < V, other=0.0)
        p = tl.where(rejected & (v == refused_tok), 0.0, p)
        csum = running + tl.cumsum(p, axis=0)
        hit = (csum > goal) & (p > 0) & (v < V)
        first = tl.min(tl.where(hit, v, V), axis=0)
        choice = tl.where((choice < 0) & (first < V), first, choice)
        last_nonzero = tl.maximum(last_nonzero, tl.max(tl.where((p > 0) & (v < V), v, 0), axis=0))
        running += tl.sum(p, axis=0)
    bonus = tl.where(choice < 0, last_nonzero, choice)

    out = tl.where(j < accept, draft, 0)
    out = tl.where(j == accept, bonus, out)
    tl.store(commit_ptr + row * B + j, out.to(tl.int64), mask=j < B)
    tl.store(accept_ptr + row, accept.to(tl.int32))
    tl.store(commit_len_ptr + row, (accept + 1).to(tl.int32))
    tl.store(bonus_ptr + row, bonus.to(tl.int64))
    tl.store(new_len_ptr + row, tl.load(committed_ptr + row) + accept + 1)
