"""The container entrypoint: DFLASH_* variables -> the `sglang.launch_server` command line."""

from __future__ import annotations

import ast
import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from sglang_dflash.docker_entrypoint import (
    ENV_VARS,
    FLAG_ALIASES,
    EntrypointError,
    build_server_argv,
    main,
    redacted,
)

TARGET = "google/gemma-4-31B-it"
DRAFT = "z-lab/gemma-4-31B-it-DFlash"
BASE = {"DFLASH_TARGET_MODEL": TARGET, "DFLASH_DRAFT_MODEL": DRAFT}


def _flags(argv: list[str]) -> dict[str, str | None]:
    """`[..., '--a', 'x', '--b', '--c', 'y']` -> {'--a': 'x', '--b': None, '--c': 'y'}."""
    out: dict[str, str | None] = {}
    i = 3  # skip `python -m sglang.launch_server`
    while i < len(argv):
        flag = argv[i]
        assert flag.startswith("--"), argv
        if i + 1 < len(argv) and not argv[i + 1].startswith("--"):
            out[flag] = argv[i + 1]
            i += 2
        else:
            out[flag] = None
            i += 1
    return out


class TestArgv:
    def test_minimal_env_gives_dflash_launch_with_defaults(self):
        argv = build_server_argv(BASE)
        assert argv == [
            "python3",
            "-m",
            "sglang.launch_server",
            "--model-path",
            TARGET,
            "--speculative-algorithm",
            "DFLASH",
            "--speculative-draft-model-path",
            DRAFT,
            "--host",
            "0.0.0.0",
            "--port",
            "30000",
        ]

    def test_gemma_model_card_line(self):
        """The z-lab gemma-4-31B-it-DFlash card's SGLang launch, built from variables."""
        env = dict(
            BASE,
            DFLASH_BLOCK_SIZE="16",
            DFLASH_TP_SIZE="1",
            DFLASH_ATTENTION_BACKEND="triton",
            DFLASH_DRAFT_ATTENTION_BACKEND="fa4",
            DFLASH_TRUST_REMOTE_CODE="1",
        )
        flags = _flags(build_server_argv(env))
        assert flags == {
            "--model-path": TARGET,
            "--speculative-algorithm": "DFLASH",
            "--speculative-draft-model-path": DRAFT,
            "--speculative-num-draft-tokens": "16",
            "--tp-size": "1",
            "--attention-backend": "triton",
            "--speculative-draft-attention-backend": "fa4",
            "--trust-remote-code": None,
            "--host": "0.0.0.0",
            "--port": "30000",
        }

    def test_every_variable_reaches_its_flag(self):
        env = dict(
            BASE,
            DFLASH_BLOCK_SIZE="8",
            DFLASH_TP_SIZE="2",
            DFLASH_ATTENTION_BACKEND="fa3",
            DFLASH_PREFILL_ATTENTION_BACKEND="flashinfer",
            DFLASH_DECODE_ATTENTION_BACKEND="triton",
            DFLASH_DRAFT_ATTENTION_BACKEND="flashinfer",
            DFLASH_TRUST_REMOTE_CODE="yes",
            DFLASH_HOST="127.0.0.1",
            DFLASH_PORT="8000",
        )
        flags = _flags(build_server_argv(env))
        for var in ENV_VARS:
            if var.flag is not None:
                assert var.flag in flags, var.name
        assert flags["--prefill-attention-backend"] == "flashinfer"
        assert flags["--decode-attention-backend"] == "triton"
        assert flags["--host"] == "127.0.0.1" and flags["--port"] == "8000"

    def test_values_are_stripped_and_ints_normalised(self):
        env = dict(
            BASE,
            DFLASH_TARGET_MODEL=f"  {TARGET}\n",
            DFLASH_BLOCK_SIZE=" 016 ",
            DFLASH_PORT="30001 ",
        )
        flags = _flags(build_server_argv(env))
        assert flags["--model-path"] == TARGET
        assert flags["--speculative-num-draft-tokens"] == "16"
        assert flags["--port"] == "30001"

    def test_empty_optional_variables_are_ignored(self):
        env = dict(
            BASE,
            DFLASH_BLOCK_SIZE="",
            DFLASH_ATTENTION_BACKEND="  ",
            DFLASH_EXTRA_ARGS="",
            DFLASH_PORT="",
            DFLASH_TRUST_REMOTE_CODE="",
        )
        assert build_server_argv(env) == build_server_argv(BASE)

    @pytest.mark.parametrize("raw", ["0", "false", "No", "OFF"])
    def test_trust_remote_code_off(self, raw):
        assert "--trust-remote-code" not in build_server_argv(
            dict(BASE, DFLASH_TRUST_REMOTE_CODE=raw)
        )

    @pytest.mark.parametrize("raw", ["1", "true", "Yes", "ON"])
    def test_trust_remote_code_on(self, raw):
        assert "--trust-remote-code" in build_server_argv(dict(BASE, DFLASH_TRUST_REMOTE_CODE=raw))

    def test_extra_args_are_split_like_a_shell(self):
        env = dict(
            BASE,
            DFLASH_EXTRA_ARGS="--mem-fraction-static 0.85 "
            "--chat-template '/models/my template.jinja'",
        )
        argv = build_server_argv(env)
        assert argv[-4:] == [
            "--mem-fraction-static",
            "0.85",
            "--chat-template",
            "/models/my template.jinja",
        ]

    def test_container_arguments_come_last(self):
        env = dict(BASE, DFLASH_EXTRA_ARGS="--mem-fraction-static 0.85")
        argv = build_server_argv(env, ["--max-running-requests", "8"])
        assert argv[-4:] == ["--mem-fraction-static", "0.85", "--max-running-requests", "8"]

    def test_python_executable_is_configurable(self):
        assert build_server_argv(BASE, python="/usr/bin/python3")[0] == "/usr/bin/python3"


class TestErrors:
    @pytest.mark.parametrize("missing", ["DFLASH_TARGET_MODEL", "DFLASH_DRAFT_MODEL"])
    def test_missing_model_names_the_variable(self, missing):
        env = dict(BASE)
        del env[missing]
        with pytest.raises(
            EntrypointError, match=f"missing required environment variable {missing}"
        ):
            build_server_argv(env)

    def test_blank_model_counts_as_missing(self):
        with pytest.raises(EntrypointError, match="DFLASH_DRAFT_MODEL"):
            build_server_argv(dict(BASE, DFLASH_DRAFT_MODEL="   "))

    def test_both_missing_are_both_named(self):
        with pytest.raises(EntrypointError) as info:
            build_server_argv({})
        assert "variables DFLASH_TARGET_MODEL, DFLASH_DRAFT_MODEL" in str(info.value)

    @pytest.mark.parametrize(
        "name, raw, expected",
        [
            ("DFLASH_BLOCK_SIZE", "sixteen", "an integer >= 2"),
            ("DFLASH_BLOCK_SIZE", "1", "an integer >= 2"),
            ("DFLASH_BLOCK_SIZE", "16.0", "an integer >= 2"),
            ("DFLASH_TP_SIZE", "0", "an integer >= 1"),
            ("DFLASH_TP_SIZE", "-2", "an integer >= 1"),
            ("DFLASH_PORT", "http", "an integer port from 1 to 65535"),
            ("DFLASH_PORT", "70000", "an integer port from 1 to 65535"),
            ("DFLASH_PORT", "0", "an integer port from 1 to 65535"),
        ],
    )
    def test_bad_int_names_variable_expected_and_actual(self, name, raw, expected):
        with pytest.raises(EntrypointError) as info:
            build_server_argv(dict(BASE, **{name: raw}))
        assert str(info.value) == f"{name}: expected {expected}, got {raw!r}"

    def test_bad_bool_names_variable(self):
        with pytest.raises(
            EntrypointError, match=r"DFLASH_TRUST_REMOTE_CODE: expected .*got 'maybe'"
        ):
            build_server_argv(dict(BASE, DFLASH_TRUST_REMOTE_CODE="maybe"))

    def test_unbalanced_quote_in_extra_args(self):
        with pytest.raises(EntrypointError, match="DFLASH_EXTRA_ARGS: cannot split"):
            build_server_argv(dict(BASE, DFLASH_EXTRA_ARGS="--chat-template 'oops"))

    @pytest.mark.parametrize(
        "arg, owner",
        [
            ("--model-path", "DFLASH_TARGET_MODEL"),
            ("--model", "DFLASH_TARGET_MODEL"),
            ("--speculative-draft-model", "DFLASH_DRAFT_MODEL"),
            ("--speculative-algorithm", "the entrypoint"),
            ("--port=8000", "DFLASH_PORT"),
            ("--host", "DFLASH_HOST"),
        ],
    )
    def test_flag_set_twice_is_refused(self, arg, owner):
        for env, extra in ((dict(BASE, DFLASH_EXTRA_ARGS=f"{arg} x"), []), (BASE, [arg, "x"])):
            with pytest.raises(EntrypointError, match=f"is already set by {owner}"):
                build_server_argv(env, extra)

    def test_alias_of_an_unset_variable_is_allowed(self):
        argv = build_server_argv(BASE, ["--tensor-parallel-size", "2"])
        assert argv[-2:] == ["--tensor-parallel-size", "2"]

    def test_alias_of_a_set_variable_is_refused(self):
        with pytest.raises(
            EntrypointError, match="--tensor-parallel-size is already set by DFLASH_TP_SIZE"
        ):
            build_server_argv(dict(BASE, DFLASH_TP_SIZE="2"), ["--tensor-parallel-size", "2"])
        with pytest.raises(EntrypointError, match="already set by DFLASH_BLOCK_SIZE"):
            build_server_argv(
                dict(BASE, DFLASH_BLOCK_SIZE="16"), ["--speculative-dflash-block-size", "16"]
            )

    def test_aliases_point_at_managed_flags(self):
        managed = {var.flag for var in ENV_VARS if var.flag}
        assert set(FLAG_ALIASES.values()) <= managed


class Recorder:
    def __init__(self):
        self.calls: list[tuple[str, list[str]]] = []

    def __call__(self, path, argv):
        self.calls.append((path, list(argv)))


class TestMain:
    def test_execs_the_server(self, capsys):
        execv, execvp = Recorder(), Recorder()
        rc = main([], dict(BASE), execv=execv, execvp=execvp)
        assert rc == 0 and not execvp.calls
        ((path, argv),) = execv.calls
        assert path == sys.executable and argv[0] == sys.executable
        assert argv[1:3] == ["-m", "sglang.launch_server"]
        assert "--speculative-algorithm DFLASH" in capsys.readouterr().err

    def test_flag_arguments_go_to_the_server(self):
        execv = Recorder()
        main(["--max-running-requests", "8"], dict(BASE), execv=execv, execvp=Recorder())
        assert execv.calls[0][1][-2:] == ["--max-running-requests", "8"]

    def test_a_command_runs_instead_of_the_server(self):
        execv, execvp = Recorder(), Recorder()
        main(["bash", "-lc", "nvidia-smi"], {}, execv=execv, execvp=execvp)
        assert execvp.calls == [("bash", ["bash", "-lc", "nvidia-smi"])] and not execv.calls

    def test_configuration_error_exits_2_without_exec(self, capsys):
        execv = Recorder()
        rc = main([], {"DFLASH_TARGET_MODEL": TARGET}, execv=execv, execvp=Recorder())
        assert rc == 2 and not execv.calls
        err = capsys.readouterr().err
        assert "error: missing required environment variable DFLASH_DRAFT_MODEL" in err

    def test_help_env_lists_every_variable(self, capsys):
        execv = Recorder()
        assert main(["--help-env"], {}, execv=execv, execvp=Recorder()) == 0
        out = capsys.readouterr().out
        assert all(var.name in out for var in ENV_VARS) and not execv.calls

    def test_help_shows_variables_then_sglang_help(self, capsys):
        execv = Recorder()
        main(["--help"], {}, execv=execv, execvp=Recorder())
        assert "DFLASH_TARGET_MODEL" in capsys.readouterr().out
        assert execv.calls[0][1][1:] == ["-m", "sglang.launch_server", "--help"]


def test_module_runs_as_a_script_and_reports_errors():
    """`python -m sglang_dflash.docker_entrypoint` with no models: exit 2, message on stderr."""
    env = {"PATH": "/usr/bin:/bin"}
    proc = subprocess.run(
        [sys.executable, "-m", "sglang_dflash.docker_entrypoint"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=Path(__file__).resolve().parents[1],
    )
    assert proc.returncode == 2, proc.stderr
    assert "DFLASH_TARGET_MODEL" in proc.stderr


def test_entrypoint_uses_only_the_standard_library():
    """The module must import before (and without) torch or SGLang."""
    import sglang_dflash.docker_entrypoint as mod

    tree = ast.parse(Path(mod.__file__).read_text())
    roots = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            roots |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            roots.add(node.module.split(".")[0])
    assert roots <= set(sys.stdlib_module_names) | {"__future__"}, roots


def test_module_execs_launch_server_with_the_built_argv(tmp_path):
    """End to end with a stand-in `sglang.launch_server` that prints the arguments it got."""
    fake = tmp_path / "sglang"
    fake.mkdir()
    (fake / "__init__.py").write_text("")
    (fake / "launch_server.py").write_text(
        "import json, os, sys\nprint(json.dumps({'argv': sys.argv[1:], 'pid': os.getpid()}))\n"
    )
    root = Path(__file__).resolve().parents[1]
    env = dict(
        BASE,
        PATH="/usr/bin:/bin",
        PYTHONPATH=f"{tmp_path}{os.pathsep}{root}",
        DFLASH_BLOCK_SIZE="16",
        DFLASH_EXTRA_ARGS="--mem-fraction-static 0.8",
        SGLANG_DFLASH_IMPL="builtin",
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "sglang_dflash.docker_entrypoint", "--max-running-requests", "4"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    got = json.loads(out)
    expected = build_server_argv(env, ["--max-running-requests", "4"])
    assert got["argv"] == expected[3:]
    assert got["pid"] == proc.pid  # exec replaced the entrypoint; no wrapper process in between
    assert shlex.join(expected[3:]) in err  # the command line is logged before the exec


def test_secrets_are_not_logged(capsys):
    env = dict(BASE, DFLASH_EXTRA_ARGS="--api-key s3cret --admin-api-key=adm1n")
    execv = Recorder()
    main(
        ["--ssl-keyfile-password", "pw0rd", "--api-key-file-is-not-a-flag"],
        env,
        execv=execv,
        execvp=Recorder(),
    )
    err = capsys.readouterr().err
    assert "s3cret" not in err and "adm1n" not in err and "pw0rd" not in err
    assert "--api-key '***'" in err and "'--admin-api-key=***'" in err
    # The server itself still gets the real values.
    assert {"s3cret", "--admin-api-key=adm1n", "pw0rd"} <= set(execv.calls[0][1])


def test_redacted_leaves_other_arguments_alone():
    argv = ["--port", "30000", "--api-key", "k", "--host", "0.0.0.0"]
    assert redacted(argv) == ["--port", "30000", "--api-key", "***", "--host", "0.0.0.0"]
