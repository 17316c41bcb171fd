"""Target-side sampling distribution, the one both plain decoding and the verifier use.

Semantics follow SGLang's sampler so our worker's outputs are distributed exactly like SGLang's
own non-speculative sampling:
  probs = softmax(logits / temperature)
  keep a token when all of:  its rank < top_k          (top_k <= 0: no limit)
                             mass of higher-ranked tokens <= top_p
                             prob >= min_p * max prob
  renormalise the kept mass.
temperature <= 0 means greedy: a point mass on the argmax.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class SamplingParams:
    """Per-row sampling parameters for a batch of b rows."""
    temperature: torch.Tensor  # [b] float, <= 0 means greedy
    top_k: torch.Tensor        # [b] int, <= 0 means no limit
    top_p: torch.Tensor        # [b] float in (0, 1]
    min_p: torch.Tensor        # [b] float in [0, 1)

    @classmethod
    def make(cls, batch: int, temperature: float = 0.0, top_k: int = 0, top_p: float = 1.0,
             min_p: float = 0.0, device="cpu") -> "SamplingParams":
        for name, value, ok in (("temperature", temperature, temperature >= 0),
                                ("top_p", top_p, 0 < top_p <= 1), ("min_p", min_p, 0 <= min_p < 1)):
            if not ok:
                raise ValueError(f"sampling parameter '{name}': got {value!r}, expected "
                                 + {"temperature": ">= 0", "top_p": "in (0, 1]", "min_p": "in [0, 1)"}[name])
        full = lambda v, dt: torch.full((batch,), v, dtype=dt, device=device)  # noqa: E731
        return cls(full(temperature, torch.float32), full(top_k, torch.long), full(top_p, torch.float32),
                   full(min_p, torch.float32))

    @property
    def all_greedy(self) -> bool:
        return bool((self.temperature <= 0).all())

    def select(self, rows: torch.Tensor) -> "SamplingParams":
        return SamplingParams(self.temperature[rows], self.top_k[rows], self.top_p[rows], self.min_p[rows])


def target_probs(logits: torch.Tensor, params: SamplingParams) -> torch.Tensor:
    """logits [b, V] or [b, B, V] -> float32 probabilities of the same shape."""
    squeeze = logits.dim() == 2
    x = logits.unsqueeze(1) if squeeze else logits                     # [b, B, V]
    view = lambda t: t.view(-1, 1, 1).to(x.device)                      # noqa: E731  [b] -> [b, 1, 1]
    greedy = view(params.temperature <= 0)
    temp = torch.where(greedy, torch.ones_like(view(params.temperature)), view(params.temperature))
    probs = torch.softmax(x.float() / temp, dim=-1)

    sorted_p, order = probs.sort(dim=-1, descending=True)
    rank = torch.arange(x.shape[-1], device=x.device).view(1, 1, -1)
    top_k = view(params.top_k)
    keep = ((top_k <= 0) | (rank < top_k)).expand_as(sorted_p).clone()
    top_p = view(params.top_p)
    keep &= (top_p >= 1) | (sorted_p.cumsum(-1) - sorted_p <= top_p)
    keep &= sorted_p >= view(params.min_p) * sorted_p[..., :1]
    kept = torch.zeros_like(probs).scatter_(-1, order, sorted_p * keep)
    kept = kept / kept.sum(-1, keepdim=True)

    one_hot = torch.zeros_like(probs).scatter_(-1, x.argmax(-1, keepdim=True), 1.0)
    out = torch.where(greedy, one_hot, kept)
    return out.squeeze(1) if squeeze else out


def sample(probs: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """probs [b, V] -> token ids [b]."""
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1)
