"""When is a speculative server's greedy output "the target's own" in bf16?

In fp32 the answer is: token for token (``exact=True``). In bf16 it cannot be: the verify
forward scores a whole block per request, so the target's logits come out of other kernel
shapes (GEMM tiles, attention splits) than in plain one-token decoding, and every bf16
rounding can land differently. Where the target's top two logits are (nearly) tied, the top-1
may then flip, and after one flip the two continuations are different texts.

The criterion, per prompt, against the plain server (no speculation) on the same prompt:

1. both outputs are identical up to their first divergence (if any);
2. at the first divergence, the speculative server's token is among the plain server's top
   choices there (``TOP_K`` logprobs), and the plain server's gap between its top-1 and that
   token (a logprob difference, which equals the logit difference) is at most ``ulps`` bf16
   ulps of the largest logit magnitude at that position. Usually the token is the runner-up;
   where three or more logits tie within rounding (seen with SmolLM2 in bf16), any of them
   may win;
3. at least ``min_full_match`` of the prompts match completely.

Why ulps of the largest logit: SGLang computes the logits with a bf16 matmul, so a logit of
magnitude |z| is known only to half an ulp, ulp(|z|) = 2^(floor(log2 |z|) - 7), i.e. 2^-8 to
2^-7 of |z|; the two logits of a near-tie each carry that rounding, and the hidden state
feeding them has itself been rounded to bf16 after every layer by kernels that differ between
the two paths. The default budget of 8 ulps (3-6% of the largest logit) covers that; a
wrong context or position in the worker diverges at ordinary gaps and in most prompts.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Sequence

BF16_MANTISSA_BITS = 7  # explicit mantissa bits; precision 8 bits
TOP_K = 4  # logprobs the plain server returns per position (its top_logprobs_num)


def bf16_ulp(x: float) -> float:
    """Spacing of bf16 numbers at magnitude |x| (normal range)."""
    x = abs(x)
    if x == 0.0:
        return 2.0 ** (-126 - BF16_MANTISSA_BITS)
    return 2.0 ** (math.floor(math.log2(x)) - BF16_MANTISSA_BITS)


@dataclass(frozen=True)
class Reference:
    """The plain server's greedy output for one prompt, with its top choices per position
    (``[(logprob, token_id), ...]``, at least two, as /generate's ``output_top_logprobs``)."""
    ids: list[int]
    top: list[list[tuple[float, int]]] | None = None


@dataclass(frozen=True)
class Divergence:
    prompt: int
    position: int
    plain: int | None  # the plain server's token (None: its output had ended)
    got: int | None  # the speculative server's token (None: its output had ended)
    runner_up: int | None = None
    gap: float | None = None  # plain top-1 logprob minus the plain logprob of ``got``
    limit: float | None = None
    reason: str = ""

    @property
    def ok(self) -> bool:
        return not self.reason

    def __str__(self) -> str:
        s = (f"prompt {self.prompt} @ {self.position}: plain {self.plain}, got {self.got}, "
             f"runner-up {self.runner_up}")
        if self.gap is not None:
            s += f", gap {self.gap:.4g} (limit {self.limit:.4g})" if self.limit else \
                f", gap {self.gap:.4g}"
        return s + (f" -- {self.reason}" if self.reason else "")


@dataclass(frozen=True)
class Report:
    n: int
    divergences: list[Divergence]
    min_full_match: float

    @property
    def full_matches(self) -> int:
        return self.n - len(self.divergences)

    def problems(self) -> list[str]:
        out = [str(d) for d in self.divergences if not d.ok]
        if self.full_matches < self.min_full_match * self.n:
            out.append(f"only {self.full_matches}/{self.n} prompts match fully "
                       f"(need {self.min_full_match:.0%})")
        return out

    def summary(self) -> str:
        s = f"{self.full_matches}/{self.n} identical"
        if self.divergences:
            s += "; first divergences: " + "; ".join(str(d) for d in self.divergences)
        return s


def first_divergence(a: Sequence[int], b: Sequence[int]) -> int | None:
    """Index of the first position where ``a`` and ``b`` differ (also in length), else None."""
    for i, (x, y) in enumerate(zip(a, b)):
        if x != y:
            return i
    return None if len(a) == len(b) else min(len(a), len(b))


def compare(refs: Sequence[Reference], got: Sequence[Sequence[int]], *, exact: bool,
            logit_scale: Callable[[int, int], float] | None = None, ulps: float = 8.0,
            min_full_match: float = 0.5) -> Report:
    """Check ``got[i]`` against ``refs[i]`` (module doc). ``logit_scale(i, pos)``: the
    largest |logit| of the target at prompt i's output position ``pos`` (only called at
    divergences, and only when not ``exact``)."""
    assert len(refs) == len(got), (len(refs), len(got))
    found = []
    for i, (ref, ids) in enumerate(zip(refs, got)):
        k = first_divergence(ref.ids, ids)
        if k is None:
            continue
        plain = ref.ids[k] if k < len(ref.ids) else None
        mine = ids[k] if k < len(ids) else None
        d = Divergence(i, k, plain, mine)
        if exact:
            d = _with(d, reason="outputs differ (exact match required)")
        elif plain is None or mine is None:
            d = _with(d, reason="one output ended earlier")
        elif ref.top is None or k >= len(ref.top) or len(ref.top[k]) < 2:
            d = _with(d, reason="no top logprobs from the plain server here")
        else:
            top = sorted(ref.top[k], key=lambda e: -e[0])
            logprob = {t: lp for lp, t in top}
            # on an exact tie the listed order need not be the one argmax picked
            runner_up = next(t for _, t in top if t != plain)
            limit = ulps * bf16_ulp(logit_scale(i, k)) if logit_scale else None
            if plain not in logprob or mine not in logprob:
                d = _with(d, runner_up=runner_up, limit=limit,
                          reason=f"not among the plain server's top {len(top)}")
            else:
                gap = top[0][0] - logprob[mine]
                d = _with(d, runner_up=runner_up, gap=gap, limit=limit)
                if limit is None or gap > limit:
                    d = _with(d, reason="gap too large for bf16 rounding")
        found.append(d)
    return Report(len(refs), found, min_full_match)


def _with(d: Divergence, **kw) -> Divergence:
    return Divergence(**{**d.__dict__, **kw})
