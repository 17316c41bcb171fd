"""Pieces of the device end-to-end suite (tests/test_e2e_device.py, run by bench/h200/e2e.sh).

All servers of the suite are launched at once (``Fleet``), so their start-ups (CUDA graph
capture, Triton compilation) overlap, and each test waits only for the servers it uses.

Environment (besides server.py's SGLANG_DFLASH_E2E_DEVICE / _ATTENTION / _MEM_FRACTION):
  SGLANG_DFLASH_E2E_DTYPES       comma list; default "bfloat16,float32" on CUDA, "float32" on CPU
  SGLANG_DFLASH_E2E_FLASHINFER   1: also a server with the flashinfer draft backend (CUDA; its
                                 kernels compile for minutes on a fresh machine)
  SGLANG_DFLASH_E2E_SMOLLM2      1: also SmolLM2-135M + the shipped drafter (converted with
                                 sglang_dflash.smollm2, which honours SGLANG_DFLASH_SMOLLM2_GGUF
                                 and SGLANG_DFLASH_SMOLLM2_DIR)
  SGLANG_DFLASH_E2E_RECORDS      a JSONL file that receives one line per comparison
"""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from . import e2e, greedy_match, server
from .greedy_match import Reference, compare

BLOCK = 8
CHUNKED_PREFILL = 256
# 48 prompts prefill in three chunks, so all of them decode together: above GRAPH_MAX_BS
CONCURRENCY = {1: 4, 8: 16, 32: 32, 48: 48}  # requests in flight -> prompts sent
ARGS = ["--chunked-prefill-size", str(CHUNKED_PREFILL), "--random-seed", "7",
        "--max-running-requests", "48", "--decode-log-interval", "1"]
# seconds; a hung server fails its test instead of the GPU call (raise it for CPU dry runs)
REQUEST_TIMEOUT = float(os.environ.get("SGLANG_DFLASH_E2E_REQUEST_TIMEOUT", 120))
FA4_MISSING = "FlashAttention-4 CUTE is not available"


def cuda() -> bool:
    return server.device() == "cuda"


def dtypes() -> list[str]:
    default = "bfloat16,float32" if cuda() else "float32"
    return [d for d in os.environ.get("SGLANG_DFLASH_E2E_DTYPES", default).split(",") if d]


def gpu_count() -> int:
    """CUDA devices the servers can use (0 on CPU)."""
    if not cuda():
        return 0
    import torch

    return torch.cuda.device_count()


def enabled(name: str) -> bool:
    return os.environ.get(f"SGLANG_DFLASH_E2E_{name}", "0") == "1"


def dflash(drafter: str, block: int = BLOCK, *extra: str) -> list[str]:
    return ["--speculative-algorithm", "DFLASH", "--speculative-draft-model-path", drafter,
            "--speculative-num-draft-tokens", str(block), *ARGS, *extra]


# Errors of SGLang itself (not of our worker) that end a configuration for every server.
SGLANG_CANNOT = ("rmsnorm(at::Tensor&, at::Tensor&, at::Tensor&, double, bool)::<lambda()> "
                 "failed to dispatch data type Float",)


class Fleet:
    """Servers launched together; ``get(name)`` waits for one (a failed start raises, every
    time it is asked for)."""

    def __init__(self):
        self.servers: dict[str, server.Server] = {}
        self._state: dict[str, server.Server | Exception] = {}

    def launch(self, name: str, model: str, args: list[str], env: dict | None = None,
               timeout_s: float | None = None, **device) -> None:
        timeout_s = timeout_s or float(os.environ.get("SGLANG_DFLASH_E2E_START_TIMEOUT", 300))
        self.servers[name] = e2e.launch(f"device-{name}", model, args, env,
                                        timeout_s=timeout_s, **device)

    def get(self, name: str) -> server.Server:
        if name not in self._state:
            try:
                self._state[name] = self.servers[name].wait_ready()
            except (RuntimeError, TimeoutError) as err:
                self._state[name] = err
        got = self._state[name]
        if isinstance(got, Exception):
            self._skip_if_sglang_cannot(name)
            raise got
        return got

    def _skip_if_sglang_cannot(self, name: str) -> None:
        """Skip (not fail) when SGLang itself cannot run this configuration: the server died
        of an error that the plain server of the same dtype died of too. Seen on the H200:
        SGLang 0.5.17's CUDA RMSNorm (sgl_kernel) has no float32 kernel."""
        dtype = name.rsplit("-", 1)[-1]
        plain = self.servers.get(f"plain-{dtype}")
        for marker in SGLANG_CANNOT:
            if plain is not None and all(marker in s.log_text()
                                         for s in (self.servers[name], plain)):
                pytest.skip(f"{name}: SGLang cannot serve {dtype} here (the plain server "
                            f"fails too): {marker!r}")

    def stop(self) -> None:
        for s in self.servers.values():
            s.stop()


# ---- requests and comparisons ---------------------------------------------------------
def sampling(max_new: int, ignore_eos: bool = True) -> dict:
    return {"temperature": 0, "max_new_tokens": max_new, "ignore_eos": ignore_eos}


def plain_reference(srv: server.Server, prompts: list[list[int]], max_new: int,
                    ignore_eos: bool = True) -> list[Reference]:
    """The plain server's greedy outputs, with its top logprobs at every position."""
    payload = {"input_ids": prompts, "sampling_params": sampling(max_new, ignore_eos),
               "return_logprob": True, "top_logprobs_num": greedy_match.TOP_K}
    results = srv.post("/generate", payload, timeout=REQUEST_TIMEOUT)
    return [Reference(r["output_ids"],
                      [[(e[0], e[1]) for e in row] for row in
                       r["meta_info"]["output_top_logprobs"]]) for r in results]


def generate(srv: server.Server, prompts: list[list[int]], max_new: int, concurrency: int,
             ignore_eos: bool = True) -> list[dict]:
    """One /generate per prompt, ``concurrency`` in flight at a time."""
    import concurrent.futures as cf

    def one(ids):
        return srv.post("/generate", {"input_ids": ids,
                                      "sampling_params": sampling(max_new, ignore_eos)},
                        timeout=REQUEST_TIMEOUT)
    with cf.ThreadPoolExecutor(concurrency) as pool:
        return list(pool.map(one, prompts))


class LogitScale:
    """max |logit| of the target after a prefix, from Hugging Face transformers in the suite's
    dtype on the suite's device (loaded on first use; only bf16 divergences need it)."""

    def __init__(self, model_dir: str, dtype: str):
        self.model_dir, self.dtype, self._model = model_dir, dtype, None

    def __call__(self, ids: list[int]) -> float:
        import torch
        from transformers import AutoModelForCausalLM

        dev = "cuda" if cuda() else "cpu"
        if self._model is None:
            self._model = AutoModelForCausalLM.from_pretrained(
                self.model_dir, dtype=getattr(torch, self.dtype)).to(dev).eval()
        with torch.no_grad():
            logits = self._model(torch.tensor([ids], device=dev)).logits[0, -1]
        return float(logits.float().abs().max())


def check(name: str, refs: list[Reference], prompts: list[list[int]], outputs: list[list[int]],
          dtype: str, scale: LogitScale, min_full_match: float = 0.5) -> list[str]:
    """Compare (exact in fp32, the bf16 criterion otherwise), record, return the problems."""
    report = compare(refs, outputs, exact=dtype == "float32", min_full_match=min_full_match,
                     logit_scale=lambda i, k: scale(prompts[i] + refs[i].ids[:k]))
    record(name, dtype=dtype, prompts=report.n, identical=report.full_matches,
           divergences=[str(d) for d in report.divergences], problems=report.problems())
    return report.problems()


def record(name: str, **data) -> None:
    line = json.dumps({"check": name, **data})
    print(line)
    path = os.environ.get("SGLANG_DFLASH_E2E_RECORDS")
    if path:
        with open(path, "a") as f:
            f.write(line + "\n")


def max_running(srv: server.Server, graph: bool | None = None) -> int:
    """Largest ``#running-req`` of the decode-log lines (with ``cuda graph: True/False`` only,
    when ``graph`` is given)."""
    best = 0
    for line in srv.log_text().splitlines():
        if "Decode batch" not in line or "#running-req:" not in line:
            continue
        if graph is not None and f"cuda graph: {graph}" not in line:
            continue
        best = max(best, int(line.split("#running-req:")[1].split(",")[0]))
    return best


def fa4_available() -> tuple[bool, str]:
    """Whether SGLang's vendored FlashAttention-4 imports in the servers' interpreter (it
    needs the CuTe DSL packages, which the GPU bundle leaves out), and why not."""
    code = ("from sglang.kernels.ops.attention import flash_attention_v4 as m\n"
            "print(m.is_flash_attention_v4_available(), repr(m._flash_attn_import_error))")
    out = subprocess.run([e2e.sglang_python(), "-c", code], capture_output=True, text=True,
                         env=server.server_env(), timeout=300)
    if out.returncode:
        return False, out.stderr.strip().splitlines()[-1] if out.stderr.strip() else "?"
    ok, why = out.stdout.strip().split(" ", 1)
    return ok == "True", why
