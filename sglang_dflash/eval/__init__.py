"""Acceptance-length evaluation per task, the way z-lab reports DFlash drafters.

Entry point: ``python -m sglang_dflash.eval`` (see ``cli.py``). Two backends produce the
same numbers: a running SGLang server (``meta_info.spec_verify_ct`` of chat responses) or the
reference decoder ``sglang_dflash.reference.generate`` over a Hugging Face target and a drafter.
Tasks are the prompt sets in ``sglang_dflash/assets/prompts`` (or files); see ``tasks.py``.
"""
