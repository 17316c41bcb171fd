"""Where a result was measured: hardware and software versions, for the JSON reports."""

from __future__ import annotations

import datetime as _dt
import importlib.metadata
import platform
import shutil
import subprocess
from pathlib import Path

PACKAGES = ("sglang", "sglang-dflash", "torch", "transformers", "flashinfer-python", "triton")


def gpus() -> list[dict]:
    """One entry per GPU from ``nvidia-smi`` (empty when there is none or no driver)."""
    if shutil.which("nvidia-smi") is None:
        return []
    query = "name,memory.total,driver_version"
    try:
        out = subprocess.run(
            ["nvidia-smi", f"--query-gpu={query}", "--format=csv,noheader"],
            capture_output=True, text=True, timeout=20, check=True,
        ).stdout
    except (subprocess.SubprocessError, OSError):
        return []
    rows = []
    for line in out.strip().splitlines():
        name, mem, driver = (part.strip() for part in (line.split(",") + ["", ""])[:3])
        rows.append({"name": name, "memory": mem, "driver": driver})
    return rows


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = None
    if out["sglang-dflash"] is None:        # running from a checkout, not installed
        try:
            import sglang_dflash

            out["sglang-dflash"] = getattr(sglang_dflash, "__version__", None)
        except ImportError:
            pass
    return out


def git_commit() -> str | None:
    """Commit of the sglang-dflash checkout this code runs from, when it is one."""
    try:
        return subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=Path(__file__).parent,
            capture_output=True, text=True, timeout=10, check=True,
        ).stdout.strip() or None
    except (subprocess.SubprocessError, OSError):
        return None


def environment() -> dict:
    import os

    return {
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "host": platform.node(),
        "gpus": gpus(),
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "versions": versions(),
        "sglang_dflash_commit": git_commit(),
    }
