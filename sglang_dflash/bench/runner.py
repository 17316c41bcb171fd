"""Run one concurrency level against one server: ``concurrency`` requests in flight at all times."""

from __future__ import annotations

import json
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, replace

from tqdm import tqdm

from .client import RequestResult, RequestSpec, send
from .stats import LevelStats, aggregate


@dataclass(frozen=True)
class Workload:
    """The request mix of a sweep; the same for every server and level."""

    specs: tuple[RequestSpec, ...]     # cycled when a level needs more requests than prompts
    api: str = "generate"
    timeout: float = 600.0             # s per request (also the socket read timeout)
    warmup: int = 2                    # uncounted rounds of `concurrency` short requests per level
    min_waves: int = 4                 # requests per level: at least this many x concurrency
    progress: bool = True


def requests_for_level(concurrency: int, num_requests: int | None, num_prompts: int,
                       min_waves: int = 4) -> int:
    """Default: every prompt once, and at least ``min_waves`` waves of ``concurrency`` requests."""
    if num_requests:
        return num_requests
    return max(num_prompts, min_waves * concurrency)


def run_level(
    server: str, base_url: str, work: Workload, concurrency: int, num_requests: int,
    first: int = 0,
) -> tuple[LevelStats, list[RequestResult]]:
    """``num_requests`` requests, prompts ``first, first + 1, ...`` of the (cycled) workload."""
    specs = [work.specs[(first + i) % len(work.specs)] for i in range(num_requests)]
    warm_up(base_url, work, specs, concurrency)

    results: list[RequestResult] = []
    bar = tqdm(
        total=num_requests,
        desc=f"{server} c={concurrency}",
        disable=not work.progress,
        unit="req",
        leave=False,
    )
    def timed_send(spec: RequestSpec) -> RequestResult:
        sent_at = time.time()  # wall clock: comparable with server log lines and across servers
        res = send(base_url, work.api, spec, work.timeout)
        res.sent_at = sent_at
        return res

    t0 = time.perf_counter()
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        futures = [pool.submit(timed_send, s) for s in specs]
        for fut in as_completed(futures):
            res = fut.result()
            results.append(res)
            bar.update(1)
            if not res.ok:
                bar.set_postfix(failed=sum(not r.ok for r in results))
    duration = time.perf_counter() - t0
    bar.close()
    return aggregate(server, concurrency, results, duration), results


def warm_up(base_url: str, work: Workload, specs, concurrency: int) -> None:
    """``work.warmup`` uncounted rounds of ``concurrency`` short requests (16 tokens at most) in
    flight together, so the level's batch size has run once before the clock starts: kernels
    that compile on first use (Triton, per shape class) then do so outside the measurement."""
    short = [replace(s, max_tokens=min(s.max_tokens, 16)) for s in specs[:concurrency]]
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        for _ in range(work.warmup):
            list(pool.map(lambda s: send(base_url, work.api, s, work.timeout), short))


def probe(base_url: str, timeout: float = 5.0) -> str | None:
    """None when the server answers ``/health`` or ``/v1/models``, else why it did not."""
    reason = "no answer"
    for path in ("/health", "/v1/models"):
        try:
            with urllib.request.urlopen(base_url.rstrip("/") + path, timeout=timeout) as r:
                if r.status == 200:
                    return None
                reason = f"{path}: HTTP {r.status}"
        except Exception as e:  # noqa: BLE001 - any failure means "not reachable"
            reason = f"{path}: {type(e).__name__}: {e}"
    return reason


def served_model_name(base_url: str, timeout: float = 5.0) -> str | None:
    """First model id listed by ``/v1/models``, or None."""
    try:
        with urllib.request.urlopen(base_url.rstrip("/") + "/v1/models", timeout=timeout) as r:
            data = json.loads(r.read())
        return data["data"][0]["id"]
    except Exception:  # noqa: BLE001 - optional information
        return None
