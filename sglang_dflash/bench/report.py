"""Report writers for a sweep: JSON (everything), a markdown table, and a PNG plot."""

from __future__ import annotations

import json
from pathlib import Path


def _fmt(x: float | None, digits: int = 1) -> str:
    return "-" if x is None else f"{x:.{digits}f}"


def write_json(path: Path, report: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2, sort_keys=False) + "\n")
    return path


def markdown_table(report: dict) -> str:
    """One row per (server, concurrency); speedup is against the server named ``baseline``."""
    rows = report["results"]
    base = {r["concurrency"]: r["output_throughput"] for r in rows if r["server"] == "baseline"}
    head = (
        "| server | conc. | ok / failed | output tok/s | req/s | TTFT p50 / p99 (ms) "
        "| ITL p50 / p99 (ms) | TPOT p50 (ms) | accept len | speedup |\n"
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n"
    )
    lines = []
    for r in rows:
        ref = base.get(r["concurrency"])
        speed = (
            f"{r['output_throughput'] / ref:.2f}x" if ref and r["output_throughput"] else "-"
        )
        lines.append(
            f"| {r['server']} | {r['concurrency']} | {r['completed']} / {r['failed']} "
            f"| {_fmt(r['output_throughput'])} | {_fmt(r['request_throughput'], 2)} "
            f"| {_fmt(r['ttft_ms']['p50'])} / {_fmt(r['ttft_ms']['p99'])} "
            f"| {_fmt(r['itl_ms']['p50'], 2)} / {_fmt(r['itl_ms']['p99'], 2)} "
            f"| {_fmt(r['tpot_ms']['p50'], 2)} | {_fmt(r['accept_len_mean'], 2)} | {speed} |"
        )
    return head + "\n".join(lines) + "\n"


def caption(report: dict) -> str:
    env, work = report["environment"], report["workload"]
    gpu = ", ".join(g["name"] for g in env["gpus"]) or "no GPU"
    ver = env["versions"]
    served = {(s.get("server_info") or {}).get("version") for s in report["servers"]} - {None}
    sglang = ver.get("sglang") or ", ".join(sorted(served)) or "-"
    return (
        f"{gpu}; CPU {env['cpu']}; sglang {sglang}, "
        f"sglang-dflash {ver.get('sglang-dflash') or '-'} "
        f"({env.get('sglang_dflash_commit') or '-'}), "
        f"torch {ver.get('torch') or '-'}; {env['date']}.\n"
        f"Prompts: {work['prompts']} ({work['num_prompts']}), api {work['api']}, "
        f"max tokens {work['max_tokens']}, "
        f"{'ignore_eos' if work['ignore_eos'] else 'natural stop'}, "
        f"temperature {work['temperature']}.\n"
    )


def server_lines(report: dict) -> str:
    """One line per server: version, attention backends and speculation settings it reported."""
    out = []
    for s in report["servers"]:
        si = s.get("server_info") or {}
        parts = [f"sglang {si['version']}" if "version" in si else None,
                 f"attention {si['attention_backend']}" if "attention_backend" in si else None,
                 f"draft attention {si['speculative_draft_attention_backend']}"
                 if "speculative_draft_attention_backend" in si else None,
                 f"{si['speculative_algorithm']} B={si.get('speculative_num_draft_tokens')}"
                 if si.get("speculative_algorithm") else "no speculation" if si else None,
                 f"tp {si['tp_size']}" if "tp_size" in si else None,
                 f"load {si['load_format']}" if "load_format" in si else None]
        if s.get("launched") and "error" not in s:
            parts.append(f"worker {s.get('worker') or 'none'}")
        env = {k: v for k, v in (s.get("env") or {}).items() if v is not None}
        if env:
            parts.append(" ".join(f"{k}={v}" for k, v in env.items()))
        out.append(f"- {s['name']}: " + (", ".join(p for p in parts if p) or s.get("url") or "-"))
    return "\n".join(out) + "\n"


def write_markdown(path: Path, report: dict) -> Path:
    errors = [
        f"- {r['server']} c={r['concurrency']}: "
        + ", ".join(f"{k} x{v}" for k, v in r["errors"].items())
        for r in report["results"]
        if r["errors"]
    ]
    failures = [f"- {s['name']}: {(s.get('error') or s['warning']).splitlines()[0]}"
                for s in report["servers"] if s.get("error") or s.get("warning")]
    text = ("# sglang-dflash bench\n\n" + caption(report) + "\n" + server_lines(report) + "\n"
            + markdown_table(report))
    if errors or failures:
        text += "\nFailures:\n" + "\n".join(failures + errors) + "\n"
    path.write_text(text)
    return path


def write_plot(path: Path, report: dict) -> Path | None:
    """Throughput and TPOT against concurrency, one line per server; None without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("note: matplotlib is not installed, so no PNG plot was written "
              "(pip install 'sglang-dflash[bench]' or pip install matplotlib).")
        return None
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    servers = list(dict.fromkeys(r["server"] for r in report["results"]))
    levels = sorted({r["concurrency"] for r in report["results"]})
    for name in servers:
        rows = [r for r in report["results"] if r["server"] == name and r["completed"]]
        if not rows:
            continue
        conc = [r["concurrency"] for r in rows]
        ax1.plot(conc, [r["output_throughput"] for r in rows], marker="o", label=name)
        ax2.plot(conc, [r["tpot_ms"]["p50"] for r in rows], marker="o", label=name)
    for ax, title in ((ax1, "output tokens/s"), (ax2, "TPOT p50 (ms)")):
        ax.set_xscale("log", base=2)
        ax.set_xticks(levels, [str(c) for c in levels])
        ax.set_xlabel("concurrency")
        ax.set_title(title)
        ax.grid(alpha=0.3)
        if ax.get_lines():
            ax.legend()
    fig.suptitle(caption(report).splitlines()[0], fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
