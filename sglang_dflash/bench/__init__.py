"""Serving benchmark: output tokens/s, request rate, TTFT, inter-token latency and mean
acceptance length of one or more OpenAI-compatible / SGLang servers over a concurrency sweep.

Entry point: ``python -m sglang_dflash.bench`` (see ``cli.py``). Building blocks, usable alone:
``prompts`` (prompt sets), ``client`` (one timed request), ``runner`` (one concurrency level),
``stats`` (aggregation), ``server`` (launching SGLang), ``sweep``, ``report``, ``sysinfo``.
"""
