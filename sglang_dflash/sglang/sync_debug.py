"""Find host-device synchronisations on the serving path (a debugging switch).

``SGLANG_DFLASH_SYNC_DEBUG=PATH``: the scheduler process watches for the file PATH; once it
exists, torch's CUDA sync debug mode is switched to "warn" and every distinct call stack that
synchronises (``.item()``, ``.tolist()``, a blocking copy to the host, ...) is logged once, at
WARNING, as ``sync-debug: ...`` with its innermost frames. A sync inside a forward launch
stalls the overlap scheduler: the host waits for the GPU before it can queue the next batch.

The trigger is a file, not a start-up flag, so the start-up (weight loading, CUDA-graph
capture, warm-up) does not flood the log: create the file once the server is warm. It works
for SGLang's built-in worker too (the hook that installs it runs for both), for A/B runs.
"""

from __future__ import annotations

import logging
import os
import threading
import traceback
import warnings

logger = logging.getLogger(__name__)

VAR = "SGLANG_DFLASH_SYNC_DEBUG"
FRAMES = 12  # innermost frames logged per stack


def install_from_env() -> None:
    """Start the watcher when SGLANG_DFLASH_SYNC_DEBUG names a trigger file (idempotent)."""
    path = os.environ.get(VAR, "").strip()
    if not path or getattr(install_from_env, "_started", False):
        return
    install_from_env._started = True
    threading.Thread(target=_watch, args=(path,), name="sglang-dflash-sync-debug", daemon=True).start()
    logger.info("%s: sync debug starts when %s exists", VAR, path)


def _watch(path: str) -> None:
    import time

    while not os.path.exists(path):
        time.sleep(0.5)
    enable()


def enable() -> None:
    import torch

    if not torch.cuda.is_available():
        logger.warning("sync-debug: no CUDA device in this process; nothing to watch")
        return
    seen: set = set()
    previous = warnings.showwarning

    def show(message, category, filename, lineno, file=None, line=None):
        if "called a synchronizing" not in str(message):
            return previous(message, category, filename, lineno, file, line)
        frames = traceback.extract_stack()[:-1][-FRAMES:]
        key = tuple((f.filename, f.lineno) for f in frames)
        if key in seen:
            return None
        seen.add(key)
        where = " <- ".join(f"{os.path.basename(f.filename)}:{f.lineno} {f.name}" for f in reversed(frames))
        logger.warning("sync-debug: %s | %s", str(message).split("(Triggered")[0].strip(), where)
        return None

    warnings.showwarning = show
    warnings.filterwarnings("always", message=".*called a synchronizing.*")
    torch.cuda.set_sync_debug_mode("warn")
    logger.warning("sync-debug: on (%s)", VAR)
