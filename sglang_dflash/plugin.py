"""SGLang plugin entry point (``sglang.srt.plugins`` group, name ``dflash``).

SGLang calls ``register()`` in every process it starts (launcher, scheduler,
detokenizer), then applies the registered hooks. ``register`` only records hooks
and imports nothing heavy: our worker, drafter and core are imported only when a
DFLASH worker is created.

Hooks:
* AROUND ``SpeculativeAlgorithm.create_worker``: ``--speculative-algorithm DFLASH``
  gets ``sglang_dflash.sglang.worker.DFlashWorker`` (``SGLANG_DFLASH_IMPL=builtin``:
  SGLang's own worker);
* AROUND ``_handle_dflash`` (argument resolution): fail at startup if the first hook
  did not apply, validate the drafter config, and pass the CPU device gate on the
  CPU engine;
* CPU engine only (``SGLANG_USE_CPU_ENGINE=1``): keep the ``torch_native`` draft
  attention backend, and let structured output's xgrammar bitmask work on CPU
  (``cpu_fixes``, fix 6).
"""

from __future__ import annotations


def register() -> None:
    from sglang.srt.plugins.hook_registry import HookRegistry, HookType

    from .sglang import env, hooks

    # No validation here: SGLang logs and swallows exceptions raised by plugins, which
    # would leave DFLASH silently on the built-in worker. Bad settings (an unknown
    # SGLANG_DFLASH_IMPL) fail in the _handle_dflash hook, during argument resolution.
    HookRegistry.register(hooks.CREATE_WORKER, hooks.create_worker_around, HookType.AROUND)
    HookRegistry.register(hooks.HANDLE_DFLASH, hooks.handle_dflash_around, HookType.AROUND)
    if env.cpu_engine():
        from .sglang import cpu_fixes

        HookRegistry.register(hooks.RESOLVE_DRAFT_BACKEND,
                              cpu_fixes.resolve_draft_backend_around, HookType.AROUND)
        HookRegistry.register(cpu_fixes.XGRAMMAR_ALLOCATE,
                              cpu_fixes.allocate_token_bitmask_around, HookType.AROUND)
        HookRegistry.register(cpu_fixes.XGRAMMAR_APPLY,
                              cpu_fixes.apply_vocab_mask_around, HookType.AROUND)
