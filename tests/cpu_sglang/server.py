"""Start and stop an SGLang 0.5.17 server on CPU for the end-to-end tests.

The server runs in the interpreter given by ``SGLANG_DFLASH_TEST_PYTHON`` (default:
the current one) with ``tests/cpu_sglang/stubs`` first on ``PYTHONPATH`` and
``SGLANG_USE_CPU_ENGINE=1``; its log goes to a file so a failing test can show it.
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


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_env(extra: dict | None = None) -> dict:
    env = dict(os.environ)
    env.update(
        SGLANG_USE_CPU_ENGINE="1",
        HF_HUB_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
        OMP_NUM_THREADS=env.get("OMP_NUM_THREADS", "2"),
        PYTHONPATH=os.pathsep.join(p for p in [STUBS, env.get("PYTHONPATH", "")] if p),
    )
    for k, v in (extra or {}).items():
        if v is None:
            env.pop(k, None)
        else:
            env[k] = str(v)
    return env


class Server:
    """``with Server(model, args, log_path) as s: s.post("/generate", {...})``."""

    def __init__(self, model: str, args: list[str], log_path: str, env: dict | None = None,
                 timeout_s: float = 240.0):
        self.model = model
        self.args = list(args)
        self.log_path = log_path
        self.env = cpu_env(env)
        self.timeout_s = timeout_s
        self.port = free_port()
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> "Server":
        python = os.environ.get("SGLANG_DFLASH_TEST_PYTHON", sys.executable)
        cmd = [python, "-m", "sglang.launch_server", "--model-path", self.model,
               *CPU_FLAGS, "--port", str(self.port), *self.args]
        self._log = open(self.log_path, "w")
        self._log.write(" ".join(cmd) + "\n")
        self._log.flush()
        self.proc = subprocess.Popen(cmd, stdout=self._log, stderr=subprocess.STDOUT,
                                     env=self.env, start_new_session=True)
        deadline = time.time() + self.timeout_s
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"SGLang server exited with {self.proc.returncode}; log tail:\n"
                    + self.log_tail())
            try:
                with urllib.request.urlopen(self.url + "/health", timeout=5) as r:
                    if r.status == 200:
                        return self
            except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
                pass
            time.sleep(1.0)
        self.stop()
        raise TimeoutError(f"SGLang server not healthy after {self.timeout_s}s; log tail:\n"
                           + self.log_tail())

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            # the server spawns scheduler/detokenizer children: stop the whole session
            # group this Popen created (and only that group)
            # SIGTERM to the launcher lets it drain and stop its scheduler/detokenizer;
            # whatever is left of the session group this Popen created is then killed.
            try:
                self.proc.send_signal(signal.SIGTERM)
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                pass
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait(timeout=10)
        self.proc = None
        if getattr(self, "_log", None):
            self._log.close()

    def __enter__(self) -> "Server":
        return self.start()

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
