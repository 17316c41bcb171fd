"""Self-distillation with a static KV cache: greedy replies for large padded batches, fast.

    python -m sglang_dflash.train.distill_static --target DIR --data prompts.jsonl --out distill.jsonl \\
        [--exclude heldout.jsonl] [--max-new-tokens 256] [--max-seconds S] [--batch-size 1024]

Hugging Face `generate` re-grows its cache and re-plans attention masks at every token, so for
a small target it is host-bound (~50 replies/s for SmolLM2-135M on an H200, batch 1024). Here
the prompt goes through the model's own forward once (its KV taken from the returned cache),
then every decode step reuses fixed buffers: K/V [B, kvh, T, hd] per layer, a key mask, the
next token and its position. That step is a fixed sequence of kernels, captured once per
(batch, length bucket) as a CUDA graph and replayed; on CPU it runs eagerly.

The decode step is written here from the checkpoint's modules (norms, projections, rotary
embedding, MLP) for the Llama / Qwen2 / Qwen3 / Mistral family without sliding windows;
other models raise `UnsupportedModel` (use `--self-distill` in the trainer, or distill_sglang).
Greedy only. The text is the target's greedy reply in the run dtype; with bf16 it can part
from the fp32 greedy text at near ties, so train with `--target-labels`.
Same conversations, multi-turn rounds and cache format as the other two distillers
(sglang_dflash.train.distill).

Shapes: ``B`` rows, ``P`` padded prompt length, ``T`` cache length (P + max new, bucketed),
``nh`` / ``kvh`` query / KV heads, ``g = nh / kvh``, ``hd`` head dim.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

from ..hf_cache import cache_of
from .distill import add_io_args, distill, select_records, write_answered

SUPPORTED = ("llama", "qwen2", "qwen3", "mistral")
BUCKET = 64  # cache lengths are rounded up to this, so a few graphs serve all batches


class UnsupportedModel(ValueError):
    pass


def check_supported(model) -> None:
    cfg = model.config
    kind = getattr(cfg, "model_type", None)
    if kind not in SUPPORTED:
        raise UnsupportedModel(f"distill_static: model_type {kind!r} is not supported "
                               f"(expected one of {', '.join(SUPPORTED)})")
    if getattr(cfg, "use_sliding_window", False) or (kind == "mistral" and getattr(cfg, "sliding_window", None)):
        raise UnsupportedModel("distill_static: sliding-window attention is not supported "
                               f"(config sliding_window={cfg.sliding_window})")
    layer0 = model.model.layers[0]
    for name in ("input_layernorm", "post_attention_layernorm", "mlp", "self_attn"):
        if not hasattr(layer0, name):
            raise UnsupportedModel(f"distill_static: decoder layers have no {name!r}")


def _rotate(x, cos, sin):
    """Rotary embedding in the rotate-half layout of these models; cos/sin [B, 1, S, hd]."""
    h = x.shape[-1] // 2
    return x * cos + torch.cat((-x[..., h:], x[..., :h]), dim=-1) * sin


class StaticGreedy:
    """Greedy decoding of left-padded prompt batches with preallocated K/V buffers."""

    def __init__(self, model, *, max_batch: int, max_prompt_len: int, max_new_tokens: int, eos_ids,
                 use_graphs: bool | None = None):
        check_supported(model)
        self.model = model
        cfg = model.config
        p = next(model.parameters())
        self.device, self.dtype = p.device, p.dtype
        self.layers = list(model.model.layers)
        attn = self.layers[0].self_attn
        self.hd = int(getattr(attn, "head_dim", cfg.hidden_size // cfg.num_attention_heads))
        self.nh = int(cfg.num_attention_heads)
        self.kvh = int(getattr(cfg, "num_key_value_heads", None) or self.nh)
        self.scaling = float(getattr(attn, "scaling", self.hd ** -0.5))
        self.B, self.max_new = int(max_batch), int(max_new_tokens)
        self.Tmax = -(-(int(max_prompt_len) + self.max_new) // BUCKET) * BUCKET
        self.use_graphs = self.device.type == "cuda" if use_graphs is None else use_graphs
        shape = (len(self.layers), self.B, self.kvh, self.Tmax, self.hd)
        # K, V [L, B, kvh, Tmax, hd]; valid [B, Tmax]: which cache columns a row attends to
        self.K = torch.zeros(shape, dtype=self.dtype, device=self.device)
        self.V = torch.zeros(shape, dtype=self.dtype, device=self.device)
        self.valid = torch.zeros(self.B, self.Tmax, dtype=torch.bool, device=self.device)
        self.eos = torch.tensor(sorted(eos_ids), dtype=torch.int64, device=self.device)
        # per-step state, updated in place by the step (and so by graph replays)
        self.tok = torch.zeros(self.B, dtype=torch.int64, device=self.device)   # [B] last token
        self.pos = torch.zeros(self.B, dtype=torch.int64, device=self.device)   # [B] its position
        self.col = torch.zeros(1, dtype=torch.int64, device=self.device)        # cache column it goes to
        self.step = torch.zeros(1, dtype=torch.int64, device=self.device)       # tokens generated so far
        self.fin = torch.zeros(self.B, dtype=torch.bool, device=self.device)    # [B] an eos was produced
        self.out = torch.zeros(self.B, self.max_new, dtype=torch.int64, device=self.device)  # replies
        self._eos_set = set(int(e) for e in eos_ids)
        self.graphs: dict = {}

    # ---- one decode step over a cache of T columns ---------------------------------------
    def _step(self, T: int) -> None:
        B, kvh, g, hd = self.B, self.kvh, self.nh // self.kvh, self.hd
        m = self.model.model
        x = m.embed_tokens(self.tok)[:, None]                              # [B, 1, H]
        cos, sin = m.rotary_emb(x, self.pos[:, None])                      # [B, 1, hd]
        cos, sin = cos[:, None].to(self.dtype), sin[:, None].to(self.dtype)
        self.valid.index_fill_(1, self.col, True)
        mask = self.valid[:, None, None, :T]                               # [B, 1, 1, T]
        for i, layer in enumerate(self.layers):
            a = layer.self_attn
            h = layer.input_layernorm(x)
            q = a.q_proj(h).view(B, 1, self.nh, hd)
            k = a.k_proj(h).view(B, 1, kvh, hd)
            v = a.v_proj(h).view(B, 1, kvh, hd)
            if hasattr(a, "q_norm"):  # Qwen3: RMSNorm per head before the rotation
                q, k = a.q_norm(q), a.k_norm(k)
            q = _rotate(q.transpose(1, 2), cos, sin)                       # [B, nh, 1, hd]
            k = _rotate(k.transpose(1, 2), cos, sin)                       # [B, kvh, 1, hd]
            Kc, Vc = self.K[i, :, :, :T], self.V[i, :, :, :T]              # [B, kvh, T, hd]
            Kc.index_copy_(2, self.col, k)
            Vc.index_copy_(2, self.col, v.transpose(1, 2))
            s = torch.matmul(q.reshape(B, kvh, g, hd), Kc.transpose(-1, -2))  # [B, kvh, g, T]
            s = (s.float() * self.scaling).masked_fill(~mask, float("-inf"))
            o = torch.matmul(s.softmax(-1).to(self.dtype), Vc)             # [B, kvh, g, hd]
            x = x + a.o_proj(o.reshape(B, 1, self.nh * hd))
            x = x + layer.mlp(layer.post_attention_layernorm(x))
        nxt = self.model.lm_head(m.norm(x)[:, 0]).argmax(-1)               # [B]
        self.out.index_copy_(1, self.step, nxt[:, None])
        self.fin |= (nxt[:, None] == self.eos).any(-1)
        self.tok.copy_(nxt)
        self.pos.add_(1)
        self.col.add_(1)
        self.step.add_(1)

    def _runner(self, T: int):
        """A callable running one step at cache length T: a replayed CUDA graph when possible."""
        if not self.use_graphs:
            return lambda: self._step(T)
        if T not in self.graphs:
            saved = [t.clone() for t in (self.tok, self.pos, self.col, self.step, self.fin, self.valid, self.out)]
            s = torch.cuda.Stream()
            s.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(s):  # warm-up outside the graph (lazy inits, kernel choice)
                for _ in range(2):
                    self._step(T)
            torch.cuda.current_stream().wait_stream(s)
            graph = torch.cuda.CUDAGraph()
            try:
                with torch.cuda.graph(graph):
                    self._step(T)
            except Exception as e:  # noqa: BLE001 - a slower eager step still gives the same replies
                print(f"[distill_static] CUDA graph capture failed ({type(e).__name__}: {e}); "
                      "decoding eagerly", file=sys.stderr, flush=True)
                self.use_graphs = False
                graph = None
            for t, v in zip((self.tok, self.pos, self.col, self.step, self.fin, self.valid, self.out), saved):
                t.copy_(v)  # the warm-up and capture steps must not count
            if graph is None:
                return lambda: self._step(T)
            self.graphs[T] = graph
        return self.graphs[T].replay

    # ---- one batch -------------------------------------------------------------------------
    @torch.no_grad()
    def generate(self, prompts: list[list[int]], pad_id: int,
                 prefill_chunk: int = 256) -> list[tuple[list[int], bool]]:
        """(reply without the stop token, truncated) per prompt: at most `max_batch` prompts,
        at most `max_new_tokens` reply tokens each."""
        n, max_new_tokens = len(prompts), self.max_new
        if not 0 < n <= self.B:
            raise ValueError(f"distill_static: batch of {n} prompts, expected 1..{self.B}")
        P = max(len(p) for p in prompts)
        T = -(-(P + max_new_tokens) // BUCKET) * BUCKET
        if T > self.Tmax:
            raise ValueError(f"distill_static: prompt {P} + {max_new_tokens} new tokens exceed the cache "
                             f"length {self.Tmax}")
        rows = list(prompts) + [prompts[0]] * (self.B - n)  # pad the batch with copies
        ids = torch.full((self.B, P), pad_id, dtype=torch.int64)
        att = torch.zeros((self.B, P), dtype=torch.int64)
        for i, p in enumerate(rows):
            ids[i, P - len(p):] = torch.tensor(p)
            att[i, P - len(p):] = 1
        ids, att = ids.to(self.device), att.to(self.device)
        pos = (att.cumsum(1) - 1).clamp_min(0)  # left padding: positions count real tokens only
        self.K.zero_(); self.V.zero_()  # noqa: E702
        first = torch.empty(self.B, dtype=torch.int64, device=self.device)
        for s in range(0, self.B, prefill_chunk):  # the model's own forward, in row chunks
            e = min(self.B, s + prefill_chunk)
            res = self.model(input_ids=ids[s:e], attention_mask=att[s:e], position_ids=pos[s:e],
                             use_cache=True, logits_to_keep=1)
            first[s:e] = res.logits[:, -1].argmax(-1)
            cache = cache_of(res)
            for i in range(len(self.layers)):
                k, v = _layer_kv(cache, i)                                     # [rows, kvh, P, hd]
                self.K[i, s:e, :, :P] = k
                self.V[i, s:e, :, :P] = v
            del res, cache
        self.valid.zero_()
        self.valid[:, :P] = att.bool()
        self.out.zero_()
        self.out[:, 0] = first
        self.tok.copy_(first)
        self.pos.copy_(att.sum(1))
        self.col.fill_(P)
        self.step.fill_(1)
        self.fin.copy_((first[:, None] == self.eos).any(-1))
        self.fin[n:] = True  # padding rows never hold the batch up
        run = self._runner(T) if max_new_tokens > 1 else None
        done = 1
        while done < max_new_tokens:
            for _ in range(min(16, max_new_tokens - done)):  # look at the stop flags every 16 steps
                run()
                done += 1
            if bool(self.fin.all()):
                break
        res = []
        for row in self.out[:n, :done].tolist():
            cut = next((j for j, t in enumerate(row) if t in self._eos_set), None)
            res.append((row if cut is None else row[:cut], cut is None))
        return res


def _layer_kv(cache, i: int):
    """Layer i's keys and values of a Hugging Face cache (transformers 4.x and 5.x layouts)."""
    if hasattr(cache, "layers"):
        return cache.layers[i].keys, cache.layers[i].values
    if hasattr(cache, "key_cache"):
        return cache.key_cache[i], cache.value_cache[i]
    return cache[i][0], cache[i][1]


def static_generate_fn(gen: StaticGreedy, *, pad_id: int, deadline: float | None = None,
                       log=None):
    """A `distill(generate_fn=...)` backend: prompts sorted by length into batches of the
    generator's size; at `deadline` the batches not yet run come back as None."""
    def fn(prompts, seed):
        order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
        res: list = [None] * len(prompts)
        for s in range(0, len(order), gen.B):
            if deadline is not None and time.time() >= deadline:
                break
            idx = order[s: s + gen.B]
            t = time.time()
            outs = gen.generate([prompts[i] for i in idx], pad_id)
            for i, o in zip(idx, outs):
                res[i] = o
            if log is not None:
                ntok = sum(len(o[0]) for o in outs)
                log(f"batch of {len(idx)}: {ntok} tokens in {time.time() - t:.1f}s "
                    f"({ntok / max(time.time() - t, 1e-9):.0f} tok/s)")
        return res
    return fn


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m sglang_dflash.train.distill_static",
                                 description=__doc__.split("\n\n")[0])
    add_io_args(ap)
    ap.add_argument("--max-prompt-len", type=int, default=768, help="longer prompts keep their last tokens")
    ap.add_argument("--batch-size", type=int, default=1024, help="rows decoded together")
    ap.add_argument("--seed", type=int, default=0, help="order in which a time-capped run answers prompts")
    ap.add_argument("--max-seconds", type=float, help="stop this long after the start (model load included); "
                    "conversations answered by then are kept")
    ap.add_argument("--dtype", default="bfloat16", choices=["bfloat16", "float16", "float32"])
    ap.add_argument("--device", default=None, help="default: cuda if available, else cpu")
    ap.add_argument("--no-graphs", action="store_true", help="run the decode step eagerly on CUDA too")
    a = ap.parse_args(argv)
    t0 = time.time()
    deadline = t0 + a.max_seconds if a.max_seconds else None
    if a.batch_size < 1 or a.max_new_tokens < 1:
        ap.error(f"--batch-size and --max-new-tokens must be >= 1, got {a.batch_size} and {a.max_new_tokens}")

    from transformers import AutoModelForCausalLM, AutoTokenizer

    if a.target == "smollm2":
        from ..smollm2 import ensure_smollm2

        a.target = str(ensure_smollm2())
    device = torch.device(a.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    tok = AutoTokenizer.from_pretrained(a.target)
    model = AutoModelForCausalLM.from_pretrained(a.target, dtype=getattr(torch, a.dtype)).to(device).eval()
    records, dropped = select_records(a.data, a.exclude, a.num)
    print(f"[distill_static] {len(records)} conversations ({dropped} dropped: excluded / text / "
          f"over --num)", flush=True)

    gen_cfg = getattr(model, "generation_config", None)
    eos_ids = set()
    for src in (getattr(gen_cfg, "eos_token_id", None), tok.eos_token_id):
        eos_ids |= set(src if isinstance(src, (list, tuple)) else [src] if src is not None else [])
    if not eos_ids:
        raise SystemExit("distill_static: the target defines no eos token; replies could not stop")
    pad_id = tok.pad_token_id if tok.pad_token_id is not None else min(eos_ids)
    gen = StaticGreedy(model, max_batch=a.batch_size, max_prompt_len=a.max_prompt_len,
                       max_new_tokens=a.max_new_tokens, eos_ids=eos_ids,
                       use_graphs=None if not a.no_graphs else False)
    print(f"[distill_static] model up in {time.time() - t0:.0f}s ({a.dtype}, {device}, graphs "
          f"{'on' if gen.use_graphs else 'off'}); eos {sorted(eos_ids)}", flush=True)
    td = time.time()
    fn = static_generate_fn(gen, pad_id=pad_id, deadline=deadline,
                            log=lambda msg: print(f"[distill_static] {msg}", flush=True))
    done = distill(None, tok, records, a.cache or a.out + ".cache", max_new_tokens=a.max_new_tokens,
                   batch_size=8 * a.batch_size, max_prompt_len=a.max_prompt_len, seed=a.seed, deadline=deadline,
                   progress=sys.stderr.isatty(), eos_ids=eos_ids, model_name=f"static:{Path(a.target).name}",
                   generate_fn=fn)
    dt = time.time() - td
    n_turns = write_answered(a.out, done)
    print(f"[distill_static] {len(done)} conversations ({n_turns} replies) in {dt:.0f}s "
          f"= {len(done) / max(dt, 1e-9):.0f} conv/s; total {time.time() - t0:.0f}s -> {a.out}", flush=True)
    return 0 if done else 1


if __name__ == "__main__":
    raise SystemExit(main())
