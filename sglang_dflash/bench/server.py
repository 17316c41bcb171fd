"""Launch an SGLang server from a named configuration and wait until it serves.

Configurations (the three columns of our benchmark tables):

* ``baseline``  the target alone, no speculation;
* ``builtin``   SGLang's own DFLASH worker (``SGLANG_DFLASH_IMPL=builtin``);
* ``ours``      the sglang-dflash worker (our plugin takes ``--speculative-algorithm DFLASH``
                whenever ``SGLANG_DFLASH_IMPL`` is not ``builtin``).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

CONFIGS = ("baseline", "builtin", "ours")

# Log lines that tell which DFLASH worker a server really runs. A plugin that fails to
# apply does not stop SGLang, which would then serve its own worker under our name.
WORKER_MARKERS = {"sglang_dflash": "sglang-dflash worker started",
                  "builtin": "Initialized DFLASH draft runner"}
EXPECTED_WORKER = {"baseline": None, "builtin": "builtin", "ours": "sglang_dflash"}


class ServerLaunchError(RuntimeError):
    """The server died or never became healthy; the message ends with its log tail."""


@dataclass
class LaunchSpec:
    config: str                          # one of CONFIGS
    model: str                           # target path or hub id (loaded by SGLang, not by us)
    drafter: str | None = None           # DFlash drafter dir, required for builtin / ours
    block_size: int | None = None        # --speculative-num-draft-tokens; None = drafter config
    host: str = "127.0.0.1"
    port: int | None = None              # None = a free port
    extra_args: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    python: str = sys.executable


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def launch_command(spec: LaunchSpec) -> tuple[list[str], dict[str, str | None]]:
    """argv and the environment changes for ``spec`` (None = unset); the port must be set."""
    if spec.config not in CONFIGS:
        raise ValueError(f"unknown configuration {spec.config!r}; expected one of {CONFIGS}")
    argv = [spec.python, "-m", "sglang.launch_server", "--model-path", spec.model,
            "--host", spec.host, "--port", str(spec.port)]
    env: dict[str, str | None] = {}
    if spec.config != "baseline":
        if not spec.drafter:
            raise ValueError(f"configuration {spec.config!r} needs a drafter (--drafter)")
        argv += ["--speculative-algorithm", "DFLASH",
                 "--speculative-draft-model-path", spec.drafter]
        if spec.block_size:
            argv += ["--speculative-num-draft-tokens", str(spec.block_size)]
        # Unset (not "ours") so the plugin's own default picks our worker.
        env["SGLANG_DFLASH_IMPL"] = "builtin" if spec.config == "builtin" else None
    env.update(spec.env)                 # explicit --env wins
    return argv + list(spec.extra_args), env


class LaunchedServer:
    """A server subprocess owned by the bench; use as a context manager."""

    def __init__(self, spec: LaunchSpec, log_dir: str | None = None):
        if spec.port is None:
            spec.port = free_port(spec.host)
        self.spec = spec
        self.url = f"http://{spec.host}:{spec.port}"
        self.argv, self.env_changes = launch_command(spec)
        log_dir = log_dir or tempfile.mkdtemp(prefix="sglang-dflash-bench-")
        self.log_path = Path(log_dir) / f"server-{spec.config}-{spec.port}.log"
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        env = dict(os.environ)
        for key, value in self.env_changes.items():
            if value is None:
                env.pop(key, None)
            else:
                env[key] = value
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            self.argv, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
        log.close()

    def wait_healthy(self, timeout: float, poll: float = 1.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            code = self.proc.poll()
            if code is not None:
                raise ServerLaunchError(
                    f"server {self.spec.config!r} exited with code {code} while starting\n"
                    + self._where()
                )
            try:
                with urllib.request.urlopen(self.url + "/health", timeout=poll + 1) as r:
                    if r.status == 200:
                        return
            except Exception:  # noqa: BLE001 - not up yet
                pass
            time.sleep(poll)
        self.stop()
        raise ServerLaunchError(
            f"server {self.spec.config!r} not healthy after {timeout:g} s\n"
            + self._where()
        )

    def _where(self) -> str:
        return (f"command: {' '.join(self.argv)}\n"
                f"log {self.log_path} ends with:\n{self.log_tail()}")

    def detected_worker(self) -> str | None:
        """'sglang_dflash', 'builtin' or None (no DFLASH worker line in the log)."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return None
        found = [name for name, line in WORKER_MARKERS.items() if line in text]
        return found[0] if len(found) == 1 else ("+".join(found) or None)

    def log_tail(self, lines: int = 40) -> str:
        try:
            with open(self.log_path, encoding="utf-8", errors="replace") as f:
                return "".join(deque(f, maxlen=lines))
        except OSError:
            return "(no log)"

    def stop(self, grace: float = 30.0) -> None:
        """SIGTERM the server's process group (it was started in its own session), then SIGKILL."""
        if self.proc is None or self.proc.poll() is not None:
            return
        pgid = os.getpgid(self.proc.pid)
        os.killpg(pgid, signal.SIGTERM)
        try:
            self.proc.wait(grace)
        except subprocess.TimeoutExpired:
            os.killpg(pgid, signal.SIGKILL)
            self.proc.wait()

    def __enter__(self) -> LaunchedServer:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
