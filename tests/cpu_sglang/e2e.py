"""Shared pieces of the end-to-end tests (tests/test_e2e_*.py).

The tests start real SGLang 0.5.17 servers (one per configuration, shared by every
test of a module) on tiny models built by ``models.py``: on CPU in fp32 by default, on CUDA
with SGLANG_DFLASH_E2E_DEVICE=cuda (see server.py and docs/gpu-tests.md). They are skipped
when SGLang is not installed, so the core suite runs without it.

Environment:
  SGLANG_DFLASH_TEST_PYTHON  interpreter that has SGLang (default: the current one)
  SGLANG_DFLASH_TEST_MODELS  where the tiny models are built/cached
                             (default: <tmp>/sglang-dflash-test-models-v<builder version>)
  SGLANG_DFLASH_TEST_LOGS    where server logs go (default: <tmp>/sglang-dflash-test-logs)
"""

from __future__ import annotations

import concurrent.futures as cf
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

import pytest

from . import models
from .server import Server

# Every e2e server runs with a small chunked-prefill size so long prompts are split.
CHUNKED_PREFILL = 64
COMMON_ARGS = ["--chunked-prefill-size", str(CHUNKED_PREFILL), "--random-seed", "7",
               "--max-running-requests", "48", "--decode-log-interval", "5"]
PROMPTS = models.corpus(n_lines=400, seed=11)[:32]
MAX_NEW = 24
OUR_WORKER_LINE = "sglang-dflash worker started: impl=sglang_dflash.DFlashWorker"
BUILTIN_WORKER_LINE = "Initialized DFLASH draft runner."


def assert_our_worker(server: Server, block_size: int) -> None:
    """The server's log shows our worker (not SGLang's) started at this block size, with the
    draft attention backend and dtype the server was started with (CPU: torch_native, fp32)."""
    log = server.log_text()
    assert (f"{OUR_WORKER_LINE} block_size={block_size} "
            f"draft_attention_backend={server.draft_attention} dtype={server.dtype}") in log
    assert BUILTIN_WORKER_LINE not in log


def load_hf(model_dir: str):
    """The target as Hugging Face loads it (fp32, eval) and its tokenizer: the plain baseline."""
    import torch
    import transformers

    model = transformers.AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    return model.eval(), transformers.AutoTokenizer.from_pretrained(model_dir)


def sglang_python() -> str:
    return os.environ.get("SGLANG_DFLASH_TEST_PYTHON", sys.executable)


def require_sglang() -> None:
    """Skip the calling test module unless SGLang can be run."""
    python = sglang_python()
    if python == sys.executable:
        if importlib.util.find_spec("sglang") is None:
            pytest.skip("SGLang is not installed (see tests/cpu_sglang/setup_venv.sh)",
                        allow_module_level=True)
    elif subprocess.run([python, "-c", "import importlib.util as u, sys; "
                         "sys.exit(u.find_spec('sglang') is None)"]).returncode:
        pytest.skip(f"SGLang is not installed in {python}", allow_module_level=True)


def models_dir() -> str:
    # the builder version is part of the default path, so a changed builder never reuses
    # models cached by an older one
    return os.environ.get("SGLANG_DFLASH_TEST_MODELS", os.path.join(
        tempfile.gettempdir(), f"sglang-dflash-test-models-v{models.BUILDER_VERSION}"))


def log_path(name: str) -> str:
    d = os.environ.get("SGLANG_DFLASH_TEST_LOGS",
                       os.path.join(tempfile.gettempdir(), "sglang-dflash-test-logs"))
    os.makedirs(d, exist_ok=True)
    return os.path.join(d, f"{name}.log")


def steered_pair() -> models.Pair:
    return models.build_pair(models_dir())


def dflash_args(drafter: str, block_size: int, *extra: str) -> list[str]:
    return ["--speculative-algorithm", "DFLASH", "--speculative-draft-model-path", drafter,
            "--speculative-num-draft-tokens", str(block_size), *COMMON_ARGS, *extra]


def launch(name: str, model: str, args: list[str], env: dict | None = None,
           **device) -> Server:
    """Start a server without waiting for it (``.wait_ready()`` does); ``device``: the
    Server's ``dtype`` / ``attention`` / ``timeout_s``."""
    return Server(model, args, log_path(name), env=env, **device).launch()


def start(name: str, model: str, args: list[str], env: dict | None = None,
          **device) -> Server:
    return launch(name, model, args, env, **device).wait_ready()


# ---- requests ---------------------------------------------------------------------------
GREEDY = {"temperature": 0, "max_new_tokens": MAX_NEW}


def generate(server: Server, text, sampling=None, **extra) -> dict | list:
    payload = {"text": text, "sampling_params": sampling or GREEDY, **extra}
    return server.post("/generate", payload)


def generate_ids(server: Server, prompts: list[str], concurrency: int,
                 sampling=None) -> list[list[int]]:
    """Output ids per prompt, sent ``concurrency`` requests at a time (1 = one by one;
    ``len(prompts)`` = one batched request)."""
    if concurrency >= len(prompts):
        return [r["output_ids"] for r in generate(server, prompts, sampling)]
    with cf.ThreadPoolExecutor(concurrency) as pool:
        return list(pool.map(lambda p: generate(server, p, sampling)["output_ids"], prompts))


def completion_text(server: Server, prompt: str) -> str:
    r = server.post("/v1/completions", {"model": "m", "prompt": prompt, "max_tokens": MAX_NEW,
                                        "temperature": 0})
    return r["choices"][0]["text"]


def chat_text(server: Server, prompt: str, stream: bool = False) -> str:
    payload = {"model": "m", "messages": [{"role": "user", "content": prompt}],
               "max_tokens": MAX_NEW, "temperature": 0}
    if not stream:
        return server.post("/v1/chat/completions", payload)["choices"][0]["message"]["content"]
    pieces = []
    for event in server.stream("/v1/chat/completions", {**payload, "stream": True}):
        for choice in event.get("choices", []):
            pieces.append(choice.get("delta", {}).get("content") or "")
    return "".join(pieces)


def completion_text_stream(server: Server, prompt: str) -> str:
    payload = {"model": "m", "prompt": prompt, "max_tokens": MAX_NEW, "temperature": 0,
               "stream": True}
    return "".join(c.get("text") or "" for e in server.stream("/v1/completions", payload)
                   for c in e.get("choices", []))


def long_prompt() -> str:
    """Well over CHUNKED_PREFILL tokens, so its prefill is split into chunks."""
    return " ".join(models.corpus(n_lines=60, seed=5))


def shared_prefix_prompts() -> list[str]:
    prefix = " ".join(models.corpus(n_lines=12, seed=9))
    return [prefix + " " + tail for tail in ("What next?", "Tell me more.", "And then?")]


# ---- KV accounting and aborts -------------------------------------------------------------
def used_kv_tokens(server: Server) -> int:
    """KV slots in use, after dropping the radix cache's evictable entries."""
    try:
        server.post_text("/flush_cache", {})
    except urllib.error.HTTPError as e:  # 400 while a request still runs; callers poll
        if e.code != 400:
            raise
    rows = server.get("/get_load")
    return sum(int(r["num_tokens"]) - int(r["num_pending_tokens"]) for r in rows)


def abort_running_stream(server: Server, prompt: str, rid: str) -> None:
    """Start a long streaming request, read a few chunks, then abort it by ``rid``."""
    payload = {"text": prompt, "stream": True, "rid": rid,
               "sampling_params": {"temperature": 0, "max_new_tokens": 2000, "ignore_eos": True}}
    req = urllib.request.Request(server.url + "/generate", data=json.dumps(payload).encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=120) as stream:
        for _ in range(4):  # the request is running and has produced some chunks
            stream.readline()
        server.post_text("/abort_request", {"rid": rid})


def wait_kv_back_to(server: Server, idle: int, timeout_s: float = 60.0) -> int:
    """Poll until ``used_kv_tokens`` is back to ``idle`` or the timeout; returns the last count."""
    deadline = time.time() + timeout_s
    used = used_kv_tokens(server)
    while used != idle and time.time() < deadline:
        time.sleep(0.5)
        used = used_kv_tokens(server)
    return used


def assert_abort_frees_kv(server: Server, prompt: str, rid: str) -> None:
    """No KV in use by finished requests; then a stream aborted mid-way gives its slots back."""
    idle = used_kv_tokens(server)
    assert idle == 0, f"{idle} KV slots still in use by finished requests"
    abort_running_stream(server, prompt, rid=rid)
    used = wait_kv_back_to(server, idle)
    assert used == idle, f"KV in use after the abort: {used} tokens (idle: {idle})"
