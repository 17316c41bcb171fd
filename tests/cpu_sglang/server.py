"""Start and stop an SGLang 0.5.17 server for the end-to-end tests, on CPU (default) or CUDA.

The server runs in the interpreter given by ``SGLANG_DFLASH_TEST_PYTHON`` (default:
the current one); its log goes to a file so a failing test can show it.

* CPU (``SGLANG_DFLASH_E2E_DEVICE`` unset or ``cpu``): ``tests/cpu_sglang/stubs`` first on
  ``PYTHONPATH``, ``SGLANG_USE_CPU_ENGINE=1``, fp32, ``torch_native`` attention.
* CUDA (``SGLANG_DFLASH_E2E_DEVICE=cuda``): SGLang's own CUDA engine, no stubs; the dtype and
  attention backend come from ``SGLANG_DFLASH_E2E_DTYPE`` / ``SGLANG_DFLASH_E2E_ATTENTION``
  (default bfloat16 / triton) unless a test asks for others; each server takes a small slice
  of GPU memory so several run side by side.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
STUBS = os.path.join(HERE, "stubs")

# Flags every CPU test server needs: exact fp32, SGLang's pure-PyTorch attention, and
# a bounded KV pool (the default sizes the pool from RAM: ~15 GB).
CPU_FLAGS = [
    "--device", "cpu",
    "--attention-backend", "torch_native",
    "--dtype", "float32",
    "--max-total-tokens", "8192",
    "--host", "127.0.0.1",
]


# Flags of a CUDA test server. Its KV pool is capped by --max-total-tokens (tiny for the test
# models), so many servers fit on one GPU; --mem-fraction-static is only SGLang's accounting:
# a server fails to start if the memory it finds free drops by more than that fraction of it
# while it loads, which servers starting side by side cause. CUDA graphs cover batches up to
# GRAPH_MAX_BS requests; larger batches run eagerly.
GPU_MEM_FRACTION = os.environ.get("SGLANG_DFLASH_E2E_MEM_FRACTION", "0.25")
NO_MULTICAST = {"NCCL_NVLS_ENABLE": "0", "TORCH_SYMM_MEM_DISABLE_MULTICAST": "1",
                "NVSHMEM_DISABLE_NVLS": "1"}
GRAPH_MAX_BS = 32


def device() -> str:
    """``cpu`` (default) or ``cuda``: where the e2e servers run."""
    dev = os.environ.get("SGLANG_DFLASH_E2E_DEVICE", "cpu")
    if dev not in ("cpu", "cuda"):
        raise ValueError(f"SGLANG_DFLASH_E2E_DEVICE must be cpu or cuda, got {dev!r}")
    return dev


def default_dtype() -> str:
    return "float32" if device() == "cpu" else os.environ.get("SGLANG_DFLASH_E2E_DTYPE",
                                                              "bfloat16")


def default_attention() -> str:
    return "torch_native" if device() == "cpu" else os.environ.get(
        "SGLANG_DFLASH_E2E_ATTENTION", "triton")


def device_flags(dtype: str | None = None, attention: str | None = None) -> list[str]:
    """The device part of a test server's command line (CPU: exactly CPU_FLAGS)."""
    if device() == "cpu":
        if dtype not in (None, "float32") or attention not in (None, "torch_native"):
            raise ValueError(f"CPU test servers run float32 / torch_native, not {dtype} / "
                             f"{attention}")
        return list(CPU_FLAGS)
    return ["--device", "cuda", "--attention-backend", attention or default_attention(),
            "--dtype", dtype or default_dtype(), "--mem-fraction-static", GPU_MEM_FRACTION,
            "--cuda-graph-max-bs", str(GRAPH_MAX_BS), "--max-total-tokens", "65536",
            "--host", "127.0.0.1"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_env(extra: dict | None = None) -> dict:
    env = dict(os.environ)
    # tests/conftest.py runs Triton kernels interpreted on CPU; servers keep their torch paths
    # unless a test asks for the interpreter explicitly (extra={"TRITON_INTERPRET": "1"})
    env.pop("TRITON_INTERPRET", None)
    env.update(
        SGLANG_USE_CPU_ENGINE="1",
        HF_HUB_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
        OMP_NUM_THREADS=env.get("OMP_NUM_THREADS", "2"),
        PYTHONPATH=os.pathsep.join(p for p in [STUBS, env.get("PYTHONPATH", "")] if p),
    )
    return _with_extra(env, extra)


def cuda_env(extra: dict | None = None, dtype: str | None = None) -> dict:
    """Environment of a CUDA test server: the caller's, offline, without the CPU engine."""
    env = dict(os.environ)
    env.pop("SGLANG_USE_CPU_ENGINE", None)
    env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    # NVLink multicast stays off (the lent multi-GPU machines require it: a program using it
    # can take the host's shared GPUs out of service); --tp-size servers use NCCL.
    for k, v in NO_MULTICAST.items():
        env.setdefault(k, v)
    if (dtype or default_dtype()) == "float32":
        # Triton's tl.dot rounds fp32 inputs to TF32 by default, and SGLang's triton
        # attention kernels use tl.dot: exact fp32 needs IEEE products.
        env["TRITON_F32_DEFAULT"] = "ieee"
    return _with_extra(env, extra)


def _with_extra(env: dict, extra: dict | None) -> dict:
    """The caller's overrides last: a value sets the variable, None removes it."""
    for k, v in (extra or {}).items():
        if v is None:
            env.pop(k, None)
        else:
            env[k] = str(v)
    return env


def server_env(extra: dict | None = None, dtype: str | None = None) -> dict:
    return cpu_env(extra) if device() == "cpu" else cuda_env(extra, dtype)


class Server:
    """``with Server(model, args, log_path) as s: s.post("/generate", {...})``.

    ``dtype`` / ``attention`` pick the CUDA server's precision and attention backend (default:
    the environment's, see the module doc); the CPU server is always float32 / torch_native.
    ``start()`` = ``launch()`` + ``wait_ready()``; launching several before waiting starts them
    side by side."""

    def __init__(self, model: str, args: list[str], log_path: str, env: dict | None = None,
                 timeout_s: float | None = None, dtype: str | None = None,
                 attention: str | None = None):
        self.model = model
        self.args = list(args)
        self.log_path = log_path
        self.dtype = dtype or default_dtype()
        self.attention = attention or default_attention()
        self.flags = device_flags(self.dtype, self.attention)
        self.env = server_env(env, self.dtype)
        self.timeout_s = timeout_s or float(os.environ.get("SGLANG_DFLASH_E2E_START_TIMEOUT",
                                                           240))
        self.port = free_port()
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def draft_attention(self) -> str:
        """The draft attention backend this server asks for (SGLang's resolution: the explicit
        flag, else the target's backend)."""
        flag = "--speculative-draft-attention-backend"
        return self.args[self.args.index(flag) + 1] if flag in self.args else self.attention

    def start(self) -> "Server":
        return self.launch().wait_ready()

    def launch(self) -> "Server":
        """Start the process and return at once (``wait_ready`` waits for /health)."""
        python = os.environ.get("SGLANG_DFLASH_TEST_PYTHON", sys.executable)
        cmd = [python, "-m", "sglang.launch_server", "--model-path", self.model,
               *self.flags, "--port", str(self.port), *self.args]
        self._log = open(self.log_path, "w")
        self._log.write(" ".join(cmd) + "\n")
        self._log.flush()
        self.proc = subprocess.Popen(cmd, stdout=self._log, stderr=subprocess.STDOUT,
                                     env=self.env, start_new_session=True)
        self._launched_at = time.time()
        return self

    def wait_ready(self) -> "Server":
        """Block until /health answers 200; raise (with the log tail) if the server exits or
        the start timeout (counted from the launch) runs out."""
        deadline = self._launched_at + self.timeout_s
        while True:  # asked after the deadline (a suite's later test), it still looks once
            if self.proc.poll() is not None:
                code, tail = self.proc.returncode, self.log_tail()
                self.stop()  # its scheduler/detokenizer children may outlive it
                raise RuntimeError(f"SGLang server exited with {code}; log tail:\n" + tail)
            try:
                with urllib.request.urlopen(self.url + "/health", timeout=5) as r:
                    if r.status == 200:
                        return self
            except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
                pass
            if time.time() >= deadline:
                break
            time.sleep(1.0)
        self.stop()
        raise TimeoutError(f"SGLang server not healthy after {self.timeout_s}s; log tail:\n"
                           + self.log_tail())

    def stop(self) -> None:
        if self.proc is not None:
            # SIGTERM to the launcher lets it drain and stop its scheduler/detokenizer;
            # whatever is left of the session group this Popen created (and only that group)
            # is then killed, also when the launcher itself already died (a failed start).
            if self.proc.poll() is None:
                try:
                    self.proc.send_signal(signal.SIGTERM)
                    self.proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    pass
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            self.proc.wait(timeout=10)
        self.proc = None
        if getattr(self, "_log", None):
            self._log.close()

    def __enter__(self) -> "Server":
        # `with e2e.start(...) as s:` hands over a running server: launching again would
        # leave the first one running after the block
        return self if self.proc is not None else self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def log_text(self) -> str:
        with open(self.log_path, errors="replace") as f:
            return f.read()

    def log_tail(self, n: int = 60) -> str:
        return "\n".join(self.log_text().splitlines()[-n:])

    # ---- HTTP helpers -------------------------------------------------------------
    def post(self, path: str, payload: dict, timeout: float = 300.0) -> dict:
        req = urllib.request.Request(self.url + path, data=json.dumps(payload).encode(),
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return json.loads(r.read())

    def post_text(self, path: str, payload: dict, timeout: float = 60.0) -> str:
        req = urllib.request.Request(self.url + path, data=json.dumps(payload).encode(),
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.read().decode(errors="replace")

    def get(self, path: str, timeout: float = 30.0) -> dict:
        with urllib.request.urlopen(self.url + path, timeout=timeout) as r:
            return json.loads(r.read())

    def stream(self, path: str, payload: dict, timeout: float = 300.0):
        """Yield decoded JSON events of a server-sent-events response."""
        req = urllib.request.Request(self.url + path, data=json.dumps(payload).encode(),
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=timeout) as r:
            for raw in r:
                line = raw.decode().strip()
                if not line.startswith("data:"):
                    continue
                data = line[len("data:"):].strip()
                if data == "[DONE]":
                    return
                yield json.loads(data)
