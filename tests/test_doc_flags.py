"""Every server flag in our docs, examples, compose file and entrypoint exists in SGLang 0.5.17.

Flags are checked against ``tests/data/sglang_0_5_17_flags.txt`` always (generated from the 0.5.17
wheel by ``tests/tools/dump_sglang_flags.py``), and against the installed SGLang's own parser
when SGLang 0.5.17 is importable (the e2e job's venv).

What counts as a server flag in a text file:
  * everything after ``sglang.launch_server`` on one command (backslash continuations joined);
  * in a ``docker run`` command, the flags after our image name (``sglang-dflash:<tag>``);
  * the value of ``DFLASH_EXTRA_ARGS`` wherever it is assigned (shell, docker ``-e``, compose).
Docker, curl and pip flags are not server flags and are not checked.
"""

from __future__ import annotations

import importlib.util
import re
import shlex
from pathlib import Path

import pytest

from sglang_dflash.docker_entrypoint import ENV_VARS, FLAG_ALIASES, SECRET_FLAGS, build_server_argv

ROOT = Path(__file__).resolve().parents[1]
FLAGS_FILE = ROOT / "tests" / "data" / "sglang_0_5_17_flags.txt"
DOC_FILES = [
    ROOT / "README.md",
    ROOT / "docker" / "README.md",
    ROOT / "docker" / "compose.yaml",
    ROOT / "docs" / "deploy-readme-section.md",
    *sorted((ROOT / "examples").glob("*")),
]
# Flags sglang_dflash adds to SGLang's parser. None yet: DFLASH uses SGLang's --speculative-*.
PLUGIN_FLAGS: frozenset[str] = frozenset()
# Flags the container entrypoint itself understands (they never reach SGLang).
ENTRYPOINT_FLAGS = frozenset({"--help-env"})
IMAGE = re.compile(r"^sglang-dflash(:[\w.-]+)?$")


def sglang_flags_from_file() -> set[str]:
    lines = FLAGS_FILE.read_text().splitlines()
    return {line for line in lines if line and not line.startswith("#")}


def _logical_lines(text: str) -> list[str]:
    """Join backslash-continued lines; drop Markdown/Python/YAML comment markers in front."""
    out, current = [], ""
    for raw in text.splitlines():
        line = raw.strip()
        line = re.sub(r"^(#+\s*|//\s*)", "", line) if not line.startswith("#!") else ""
        if line.endswith("\\"):
            current += line[:-1] + " "
            continue
        out.append(current + line)
        current = ""
    if current:
        out.append(current)
    return out


def _split(line: str) -> list[str]:
    try:
        return shlex.split(line, comments=False)
    except ValueError:  # a quote opened in prose; fall back to whitespace
        return line.split()


def _flags(tokens: list[str]) -> list[str]:
    return [t.split("=", 1)[0] for t in tokens if t.startswith("-") and not _is_number(t)]


def _is_number(token: str) -> bool:
    return re.fullmatch(r"-\d+(\.\d+)?", token) is not None


def server_flags_in_text(text: str) -> list[str]:
    found: list[str] = []
    for line in _logical_lines(text):
        tokens = _split(line)
        for i, tok in enumerate(tokens):
            if tok == "sglang.launch_server":
                found += _flags(tokens[i + 1 :])
            elif tok.startswith("DFLASH_EXTRA_ARGS="):
                found += _flags(_split(tok.split("=", 1)[1]))
            elif tok == "DFLASH_EXTRA_ARGS:":  # YAML: value is the rest of the line
                found += _flags(tokens[i + 1 :])
        if "docker" in tokens and "run" in tokens:
            after = [j for j, tok in enumerate(tokens) if IMAGE.match(tok)]
            if after:
                rest = tokens[after[0] + 1 :]
                if rest and rest[0].startswith("-"):  # flags for the server, not a command
                    found += _flags(rest)
    return found


def doc_flags() -> dict[str, list[str]]:
    """{file relative to the repo: server flags used in it} for every existing doc file."""
    return {
        str(p.relative_to(ROOT)): server_flags_in_text(p.read_text())
        for p in DOC_FILES
        if p.is_file()
    }


def entrypoint_flags() -> set[str]:
    env = {
        var.name: "2" if var.kind in ("int", "port") else "1" if var.kind == "bool" else "x"
        for var in ENV_VARS
        if var.kind != "args"
    }
    argv = build_server_argv(env)
    built = {a for a in argv[3:] if a.startswith("--")}
    return built | set(FLAG_ALIASES) | set(FLAG_ALIASES.values()) | SECRET_FLAGS


def _unknown(used: set[str], known: set[str]) -> set[str]:
    return used - known - PLUGIN_FLAGS - ENTRYPOINT_FLAGS


# ---------------------------------------------------------------------------------------------
# The extractor itself


def test_extractor_reads_launch_lines_docker_run_and_extra_args():
    text = """
```bash
python -m sglang.launch_server --model-path a \\
    --tp-size 1 --dtype=bfloat16   # comment
docker build -f docker/Dockerfile -t sglang-dflash:0.1.0 --build-arg X=1 .
docker run --gpus all -e DFLASH_EXTRA_ARGS="--context-length 4096" sglang-dflash:0.1.0 --port 1
docker run --rm -it sglang-dflash:0.1.0 bash -lc "ls --color"
curl -sS -H "x: y" http://localhost:30000/health
```
    DFLASH_EXTRA_ARGS: --mem-fraction-static 0.75
"""
    assert server_flags_in_text(text) == [
        "--model-path",
        "--tp-size",
        "--dtype",
        "--context-length",
        "--port",
        "--mem-fraction-static",
    ]


def test_flags_file_is_the_0_5_17_parser():
    flags = sglang_flags_from_file()
    assert "SGLang 0.5.17" in FLAGS_FILE.read_text().splitlines()[0]
    assert len(flags) > 300
    assert {
        "--speculative-algorithm",
        "--speculative-draft-model-path",
        "--speculative-num-draft-tokens",
        "--speculative-draft-attention-backend",
    } <= flags


def test_docs_use_flags_at_all():
    """Guard against the extractor silently finding nothing (e.g. a renamed file)."""
    found = doc_flags()
    assert "docker/README.md" in found and "docker/compose.yaml" in found
    every = {f for flags in found.values() for f in flags}
    assert {
        "--speculative-algorithm",
        "--speculative-draft-model-path",
        "--mem-fraction-static",
        "--speculative-draft-attention-backend",
    } <= every
    assert found["docker/compose.yaml"], "compose DFLASH_EXTRA_ARGS not seen"


# ---------------------------------------------------------------------------------------------
# Against the committed 0.5.17 flag list (always runs)


@pytest.mark.parametrize("name", [str(p.relative_to(ROOT)) for p in DOC_FILES])
def test_doc_flags_exist_in_sglang_0_5_17(name):
    path = ROOT / name
    if not path.is_file():
        pytest.skip(f"{name} not in this checkout")
    unknown = _unknown(set(server_flags_in_text(path.read_text())), sglang_flags_from_file())
    assert not unknown, f"{name} uses flags SGLang 0.5.17 does not have: {sorted(unknown)}"


def test_entrypoint_flags_exist_in_sglang_0_5_17():
    unknown = _unknown(entrypoint_flags(), sglang_flags_from_file())
    assert not unknown, sorted(unknown)


# ---------------------------------------------------------------------------------------------
# Against the installed SGLang (e2e venv); skipped where SGLang 0.5.17 cannot be imported


def _installed_parser():
    if importlib.util.find_spec("sglang") is None:
        pytest.skip("SGLang is not installed")
    tool = importlib.util.spec_from_file_location(
        "dump_sglang_flags", ROOT / "tests" / "tools" / "dump_sglang_flags.py"
    )
    module = importlib.util.module_from_spec(tool)
    tool.loader.exec_module(module)
    try:
        import sglang

        if getattr(sglang, "__version__", None) != "0.5.17":
            pytest.skip(f"installed SGLang is {getattr(sglang, '__version__', '?')}, not 0.5.17")
        return module.parser_flags(), module.alias_groups()
    except Exception as exc:  # noqa: BLE001 - e.g. torchvision missing on a CPU machine
        pytest.skip(f"SGLang's server_args does not import here: {type(exc).__name__}: {exc}")


@pytest.mark.sglang
def test_installed_sglang_matches_the_committed_flag_list():
    flags, _ = _installed_parser()
    assert set(flags) == sglang_flags_from_file(), (
        "regenerate tests/data/sglang_0_5_17_flags.txt with tests/tools/dump_sglang_flags.py"
    )


@pytest.mark.sglang
def test_doc_and_entrypoint_flags_exist_in_installed_sglang():
    flags, _ = _installed_parser()
    used = {f for fl in doc_flags().values() for f in fl} | entrypoint_flags()
    assert not _unknown(used, set(flags)), sorted(_unknown(used, set(flags)))


@pytest.mark.sglang
def test_entrypoint_aliases_are_sglang_aliases():
    _, groups = _installed_parser()
    same_argument = {frozenset(g) for g in groups}
    for alias, flag in FLAG_ALIASES.items():
        if alias == "--speculative-dflash-block-size":
            continue  # its own field in SGLang, required to equal --speculative-num-draft-tokens
        assert any({alias, flag} <= g for g in same_argument), (alias, flag)
