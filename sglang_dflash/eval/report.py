"""Markdown table of an eval report: one row per task, then the mean over tasks."""

from __future__ import annotations

from .tasks import DESCRIPTIONS


def _f(x: float | None, digits: int = 2) -> str:
    return "-" if x is None else f"{x:.{digits}f}"


def markdown_table(report: dict) -> str:
    env = report["environment"]
    gpu = ", ".join(g["name"] for g in env["gpus"]) or "no GPU"
    si = report.get("server_info") or {}
    sglang = si.get("version") or env["versions"].get("sglang") or "-"
    labels = {"attention_backend": "attention", "speculative_draft_attention_backend":
              "draft attention", "speculative_num_draft_tokens": "B ="}
    backends = ", ".join(f"{label} {si[k]}" for k, label in labels.items() if k in si)
    lines = [
        f"{gpu}; sglang {sglang}{'; ' + backends if backends else ''}; "
        f"temperature {report['flags']['temperature']}; max tokens/turn "
        f"{report['flags']['max_tokens']}; {env['date']}",
        "",
        "| task | kind | prompts | turns ok / failed | output tokens | accept len | pooled |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for t in report["tasks"]:
        lines.append(
            f"| {t['task']} | {DESCRIPTIONS.get(t['task'], 'prompt file')} | {t['prompts']} "
            f"| {t['turns']} / {t['failed']} | {t['output_tokens']} "
            f"| {_f(t['accept_len_mean'])} | {_f(t['accept_len_pooled'])} |"
        )
    lines.append(f"| **mean over tasks** | | | | | "
                 f"**{_f(report['overall']['accept_len_task_mean'])}** | |")
    return "\n".join(lines) + "\n"
