"""The functions our plugin hooks into SGLang (installed by ``sglang_dflash.plugin``).

Kept free of heavy imports: SGLang imports this module in every process it loads
plugins into (launcher, scheduler, detokenizer); the worker and the drafter are
imported only when a DFLASH worker is actually created.
"""

from __future__ import annotations

import logging

from . import env

logger = logging.getLogger(__name__)

CREATE_WORKER = "sglang.srt.speculative.spec_info.SpeculativeAlgorithm.create_worker"
HANDLE_DFLASH = "sglang.srt.arg_groups.speculative_hook._handle_dflash"
RESOLVE_DRAFT_BACKEND = (
    "sglang.srt.arg_groups.speculative_hook._resolve_dflash_draft_attention_backend"
)


class _Probe:
    """Passed instead of server args to ask "is our hook installed here?"."""


PROBE = _Probe()
PROBE_ANSWER = "sglang_dflash hook installed"


def create_worker_around(original_fn, self, server_args):
    """AROUND ``SpeculativeAlgorithm.create_worker``: our worker for DFLASH."""
    if server_args is PROBE:
        return PROBE_ANSWER
    if not self.is_dflash():
        return original_fn(self, server_args)
    impl = env.impl()
    from . import sync_debug

    sync_debug.install_from_env()  # a debugging switch; off unless its variable is set
    if env.cpu_engine():
        from . import cpu_fixes

        cpu_fixes.apply_scheduler_fixes()
    if impl == env.IMPL_BUILTIN:
        logger.info("%s=builtin: serving DFLASH with SGLang's built-in worker", env.IMPL_VAR)
        return original_fn(self, server_args)
    from .worker import DFlashWorker

    return DFlashWorker


def create_worker_hook_installed() -> bool:
    from sglang.srt.speculative.spec_info import SpeculativeAlgorithm

    try:
        return SpeculativeAlgorithm.DFLASH.create_worker(PROBE) == PROBE_ANSWER
    except Exception:  # the unhooked original rejects the probe one way or another
        return False


def handle_dflash_around(original_fn, server_args):
    """AROUND ``_handle_dflash`` (server-argument resolution, in the launcher process).

    * fails startup when our ``create_worker`` hook did not apply (SGLang logs and
      swallows hook failures, which would silently serve the built-in worker);
    * on the CPU engine, lets DFLASH through SGLang's CUDA/NPU-only device gate;
    * validates the drafter config with our core loader, so a malformed or
      mismatched drafter fails here, before any process or weight is loaded.
    """
    if server_args is PROBE:
        return PROBE_ANSWER
    impl = env.impl()  # raises on an unknown value
    if impl == env.IMPL_OURS and not create_worker_hook_installed():
        raise RuntimeError(
            "sglang-dflash: the hook on SpeculativeAlgorithm.create_worker did not apply "
            "(see 'Failed to apply hooks' in the log above), so DFLASH would silently run "
            f"SGLang's built-in worker. Fix the installation, or set {env.IMPL_VAR}=builtin.")
    if impl == env.IMPL_OURS:
        validate_drafter_early(server_args)
    if env.cpu_engine() and server_args.device == "cpu":
        from .cpu_fixes import dflash_device_gate_passed

        with dflash_device_gate_passed(server_args):
            return original_fn(server_args)
    return original_fn(server_args)


def drafter_config_of(server_args):
    """Our parsed ``DFlashConfig`` of ``--speculative-draft-model-path``: a local folder
    is read directly; a hub id goes through SGLang's config loader (cached download)."""
    import os

    from ..config import drafter_config_from, load_drafter_config

    path = server_args.speculative_draft_model_path
    revision = server_args.speculative_draft_model_revision
    if path and os.path.isdir(path):
        return load_drafter_config(path)  # names a missing config.json in its error
    from sglang.srt.utils.hf_transformers_utils import get_config

    # get_config fetches config.json into the HF cache, where drafter_config_from reads it
    hf_config = get_config(path, trust_remote_code=server_args.trust_remote_code, revision=revision)
    return drafter_config_from(path, hf_config, revision)


def validate_drafter_early(server_args) -> None:
    """Parse the drafter config, and check it against the target's when it is local."""
    import json
    import os

    from ..config import validate_against_target

    if not server_args.speculative_draft_model_path:
        return  # SGLang's own check reports the missing flag
    cfg = drafter_config_of(server_args)
    target_cfg_file = os.path.join(str(server_args.model_path), "config.json")
    if os.path.exists(target_cfg_file):
        with open(target_cfg_file) as f:
            target = json.load(f)
        validate_against_target(cfg, target.get("text_config", target))
    logger.info("sglang-dflash: drafter config %s validated (trained block_size=%s, "
                "target_layer_ids=%s)", server_args.speculative_draft_model_path, cfg.block_size,
                list(cfg.target_layer_ids))
