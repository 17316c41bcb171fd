"""Container entrypoint: turn ``DFLASH_*`` environment variables into an SGLang server launch.

The image runs ``python3 -m sglang_dflash.docker_entrypoint``. With no arguments it builds

    python3 -m sglang.launch_server --model-path $DFLASH_TARGET_MODEL
        --speculative-algorithm DFLASH --speculative-draft-model-path $DFLASH_DRAFT_MODEL
        [optional flags from the variables below] [$DFLASH_EXTRA_ARGS] [arguments after the image]

and replaces itself with that process (``os.execv``): no wrapper process stays between Docker
and the server, so ``docker stop``'s SIGTERM reaches the server itself.

Arguments given after the image name decide the mode:
  * none, or the first one starts with ``-``: launch the server; the arguments are appended to
    the server's command line (``docker run IMAGE --max-running-requests 8``);
  * ``--help-env``: list the variables; ``-h``/``--help``: that list, then SGLang's own help;
  * anything else: run it as a command of its own (``docker run IMAGE bash``).

Everything here is standard library only: the module is imported before anything heavy, and the
tests run it without SGLang or torch. ``SGLANG_DFLASH_IMPL`` is not read here; it passes through
the environment to the plugin unchanged.
"""

from __future__ import annotations

import os
import shlex
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

__all__ = ["ENV_VARS", "FLAG_ALIASES", "EntrypointError", "build_server_argv", "main", "redacted"]


class EntrypointError(ValueError):
    """A ``DFLASH_*`` variable is missing or malformed; the message names it."""


@dataclass(frozen=True)
class EnvVar:
    name: str
    flag: str | None  # server flag it sets; None for variables handled specially
    kind: str  # "str", "int", "port", "bool" or "args"
    default: str | None = None
    minimum: int | None = None
    help: str = ""


# One row per variable, in the order their flags appear on the command line.
ENV_VARS: tuple[EnvVar, ...] = (
    EnvVar("DFLASH_TARGET_MODEL", "--model-path", "str",
           help="target model: Hugging Face id or local path (required)"),
    EnvVar("DFLASH_DRAFT_MODEL", "--speculative-draft-model-path", "str",
           help="DFlash drafter: Hugging Face id or local path (required)"),
    EnvVar("DFLASH_BLOCK_SIZE", "--speculative-num-draft-tokens", "int", minimum=2,
           help="block size (anchor + draft tokens); unset: read from the drafter's config"),
    EnvVar("DFLASH_TP_SIZE", "--tp-size", "int", minimum=1,
           help="tensor-parallel size (GPUs per server)"),
    EnvVar("DFLASH_ATTENTION_BACKEND", "--attention-backend", "str",
           help="target attention backend, e.g. triton, flashinfer, fa3"),
    EnvVar("DFLASH_PREFILL_ATTENTION_BACKEND", "--prefill-attention-backend", "str",
           help="target prefill attention backend (overrides DFLASH_ATTENTION_BACKEND)"),
    EnvVar("DFLASH_DECODE_ATTENTION_BACKEND", "--decode-attention-backend", "str",
           help="target decode attention backend (overrides DFLASH_ATTENTION_BACKEND)"),
    EnvVar("DFLASH_DRAFT_ATTENTION_BACKEND", "--speculative-draft-attention-backend", "str",
           help="drafter attention backend, e.g. fa4, flashinfer, triton"),
    EnvVar("DFLASH_TRUST_REMOTE_CODE", "--trust-remote-code", "bool", default="0",
           help="1 to pass --trust-remote-code (runs code shipped with the model repo)"),
    EnvVar("DFLASH_HOST", "--host", "str", default="0.0.0.0",
           help="address the server binds inside the container"),
    EnvVar("DFLASH_PORT", "--port", "port", default="30000",
           help="port the server listens on inside the container"),
    EnvVar("DFLASH_EXTRA_ARGS", None, "args",
           help="more server flags, split like a shell would (quotes allowed)"),
)

REQUIRED = ("DFLASH_TARGET_MODEL", "DFLASH_DRAFT_MODEL")

# Other spellings SGLang 0.5.17 accepts for the flags above. --speculative-dflash-block-size is a
# field of its own in SGLang, but it must equal --speculative-num-draft-tokens, so it counts as one.
FLAG_ALIASES = {
    "--model": "--model-path",
    "--speculative-draft-model": "--speculative-draft-model-path",
    "--tensor-parallel-size": "--tp-size",
    "--speculative-dflash-block-size": "--speculative-num-draft-tokens",
}
_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off", ""})


def _int_value(var: EnvVar, raw: str) -> int:
    text = raw.strip()
    if var.kind == "port":
        expected = "an integer port from 1 to 65535"
        low, high = 1, 65535
    else:
        expected = f"an integer >= {var.minimum}"
        low, high = var.minimum, None
    try:
        value = int(text, 10)
    except ValueError:
        value = None
    if value is None or (low is not None and value < low) or (high is not None and value > high):
        raise EntrypointError(f"{var.name}: expected {expected}, got {raw!r}")
    return value


def _bool_value(var: EnvVar, raw: str) -> bool:
    text = raw.strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise EntrypointError(
        f"{var.name}: expected one of 1/0, true/false, yes/no, on/off; got {raw!r}"
    )


def _split_args(name: str, raw: str) -> list[str]:
    try:
        return shlex.split(raw)
    except ValueError as exc:  # unbalanced quotes
        raise EntrypointError(f"{name}: cannot split {raw!r} into arguments ({exc})") from None


# Server flags whose values must not reach the container log.
SECRET_FLAGS = frozenset({"--api-key", "--admin-api-key", "--ssl-keyfile-password"})


def redacted(argv: Sequence[str]) -> list[str]:
    """``argv`` with the values of ``SECRET_FLAGS`` replaced by ``***`` (for logging)."""
    out: list[str] = []
    hide_next = False
    for arg in argv:
        name, eq, _ = arg.partition("=")
        if hide_next:
            out.append("***")
            hide_next = False
        elif name in SECRET_FLAGS and eq:
            out.append(f"{name}=***")
        else:
            out.append(arg)
            hide_next = arg in SECRET_FLAGS
    return out


def _flag_name(arg: str) -> str:
    """``--tp-size=2`` and ``--tensor-parallel-size`` -> ``--tp-size``; other arguments as is."""
    name = arg.split("=", 1)[0]
    return FLAG_ALIASES.get(name, name)


def build_server_argv(env: Mapping[str, str], extra: Sequence[str] = (),
                      python: str = "python3") -> list[str]:
    """The full server command line for ``env`` plus ``extra`` (arguments after the image).

    Raises ``EntrypointError`` naming the variable for a missing required model, a malformed
    number or boolean, or a flag that both a variable and the extra arguments set.
    """
    missing = [name for name in REQUIRED if not env.get(name, "").strip()]
    if missing:
        raise EntrypointError(
            "missing required environment variable"
            + ("s " if len(missing) > 1 else " ")
            + ", ".join(missing)
            + ": set the target model (DFLASH_TARGET_MODEL) and the DFlash drafter"
            " (DFLASH_DRAFT_MODEL), e.g. -e DFLASH_TARGET_MODEL=Qwen/Qwen3-8B"
            " -e DFLASH_DRAFT_MODEL=z-lab/Qwen3-8B-DFlash-b16"
        )

    argv = [python, "-m", "sglang.launch_server"]
    managed: dict[str, str] = {"--speculative-algorithm": "the entrypoint (always DFLASH)"}
    extra_from_env: list[str] = []
    for var in ENV_VARS:
        raw = env.get(var.name)
        if raw is None or (raw.strip() == "" and var.kind != "bool"):
            raw = var.default
        if raw is None:
            continue
        if var.kind == "args":
            extra_from_env = _split_args(var.name, raw)
            continue
        if var.kind == "bool":
            if _bool_value(var, raw):
                argv.append(var.flag)
                managed[var.flag] = var.name
            continue
        value = str(_int_value(var, raw)) if var.kind in ("int", "port") else raw.strip()
        argv += [var.flag, value]
        managed[var.flag] = var.name
        if var.flag == "--model-path":
            argv += ["--speculative-algorithm", "DFLASH"]

    for source, args in (("DFLASH_EXTRA_ARGS", extra_from_env), ("the container arguments", extra)):
        for arg in args:
            owner = managed.get(_flag_name(arg))
            if owner is not None:
                raise EntrypointError(
                    f"{source}: {arg.split('=', 1)[0]} is already set by {owner}; set it there only"
                )
    return argv + extra_from_env + list(extra)


def _usage() -> str:
    lines = ["sglang-dflash container: environment variables"]
    for var in ENV_VARS:
        default = f" (default {var.default})" if var.default is not None else ""
        lines.append(f"  {var.name:34s} {var.help}{default}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None,
         execv: Callable[[str, list[str]], object] = os.execv,
         execvp: Callable[[str, list[str]], object] = os.execvp) -> int:
    """Exec the server (or the command given after the image); return 2 on a configuration error."""
    args = list(sys.argv[1:] if argv is None else argv)
    env = os.environ if env is None else env

    python = sys.executable or "python3"
    if args and args[0] == "--help-env":
        print(_usage())
        return 0
    if args and args[0] in ("-h", "--help"):
        print(_usage() + "\n\nSGLang server flags (append them after the image name):", flush=True)
        execv(python, [python, "-m", "sglang.launch_server", "--help"])
        return 0
    if args and not args[0].startswith("-"):
        execvp(args[0], args)  # `docker run IMAGE bash` and friends
        return 0

    try:
        server_argv = build_server_argv(env, args, python=python)
    except EntrypointError as exc:
        print(f"sglang-dflash entrypoint: error: {exc}", file=sys.stderr)
        print("run the image with --help-env to list the variables", file=sys.stderr)
        return 2
    print("sglang-dflash entrypoint: " + shlex.join(redacted(server_argv)), file=sys.stderr,
          flush=True)
    execv(server_argv[0], server_argv)
    return 0  # only reached when execv is replaced in tests


if __name__ == "__main__":
    sys.exit(main())
