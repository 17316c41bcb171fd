"""Seeded coins: the accept step's uniforms as a function of (seed, position, stream).

With SGLang's ``--enable-deterministic-inference`` every request carries a sampling seed
(``SamplingBatchInfo.sampling_seed``: the request's ``sampling_seed``, else 42), and SGLang's
sampler draws each token from a hash of (seed, position) instead of a shared generator, so a
request's sampled text does not depend on which requests share its batch. The accept step
must do the same, or the speculative server would lose that property. ``step_coins`` gives
one step of a request its coins from a hash:

    accept coin of draft j, at position p + j:   u(seed, p + j, ACCEPT)
    bonus coin of the step with anchor at p:      u(seed, p, BONUS)

Each (seed, position, stream) decides at most one thing over a request's life. A step with
committed length p tests positions p+1 .. p+A+1 at most and commits up to p' = p + A + 1,
and the next step tests from p'+1 on; the bonus key p grows with every step. So the coins
of all decisions of a request are distinct hash outputs, independent as far as the hash
mixes, and rejection sampling stays exact (tests/test_coins.py checks the distribution).

The hash is a chain of SplitMix64 finalizers over torch int64 (wrapping arithmetic), the
same on CPU and GPU; a coin is the top 24 bits over 2^24, so it lies in [0, 1) exactly in
float32.
"""

from __future__ import annotations

import torch

ACCEPT, BONUS = 1, 2  # streams

_GOLDEN = 0x9E3779B97F4A7C15 - (1 << 64)  # int64 views of the SplitMix64 constants
_M1 = 0xBF58476D1CE4E5B9 - (1 << 64)
_M2 = 0x94D049BB133111EB - (1 << 64)


def _shr(x: torch.Tensor, k: int) -> torch.Tensor:
    """Logical right shift of the 64 bits of an int64 tensor (torch's ``>>`` is arithmetic)."""
    return (x >> k) & ((1 << (64 - k)) - 1)


def _mix(x: torch.Tensor) -> torch.Tensor:
    x = x + _GOLDEN
    x = (x ^ _shr(x, 30)) * _M1
    x = (x ^ _shr(x, 27)) * _M2
    return x ^ _shr(x, 31)


def coin(seed: torch.Tensor, position: torch.Tensor, stream: int) -> torch.Tensor:
    """float32 uniforms in [0, 1), one per element of the broadcast int64 ``seed`` and
    ``position``."""
    h = _mix(_mix(_mix(seed.to(torch.int64)) ^ position.to(torch.int64)) ^ stream)
    return _shr(h, 40).to(torch.float32) * (2.0 ** -24)


def step_coins(seed: torch.Tensor, committed: torch.Tensor, block_size: int
               ) -> tuple[torch.Tensor, torch.Tensor]:
    """seed [b], committed [b] (the anchor's position p) -> accept coins [b, B-1] for the
    drafts at p+1 .. p+B-1, and bonus coins [b]."""
    j = torch.arange(1, block_size, device=committed.device, dtype=torch.int64)
    accept_u = coin(seed[:, None], committed.to(torch.int64)[:, None] + j, ACCEPT)
    return accept_u, coin(seed, committed, BONUS)
