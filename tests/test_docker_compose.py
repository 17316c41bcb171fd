"""docker/compose.yaml and the docker/README.md examples: what they launch matches the z-lab cards.

No Docker engine is needed: the compose file is read as YAML, its environment is fed to the
container entrypoint's argv builder, and the result is compared with the model cards' launch lines.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from sglang_dflash.docker_entrypoint import build_server_argv

yaml = pytest.importorskip("yaml")

ROOT = Path(__file__).resolve().parents[1]
COMPOSE = ROOT / "docker" / "compose.yaml"
DOCKERFILE = ROOT / "docker" / "Dockerfile"
DOCKER_README = ROOT / "docker" / "README.md"

# The SGLang launch lines of the z-lab model cards, as flag -> value (None: a switch).
CARDS = {
    "qwen3-8b": {
        "--model-path": "Qwen/Qwen3-8B",
        "--speculative-algorithm": "DFLASH",
        "--speculative-draft-model-path": "z-lab/Qwen3-8B-DFlash-b16",
        "--tp-size": "1",
        "--dtype": "bfloat16",
        "--attention-backend": "fa3",
        "--mem-fraction-static": "0.75",
        "--trust-remote-code": None,
    },
    "gemma-4-31b": {
        "--model-path": "google/gemma-4-31B-it",
        "--speculative-algorithm": "DFLASH",
        "--speculative-draft-model-path": "z-lab/gemma-4-31B-it-DFlash",
        "--speculative-num-draft-tokens": "16",
        "--tp-size": "1",
        "--attention-backend": "triton",
        "--speculative-draft-attention-backend": "fa4",
        "--trust-remote-code": None,
    },
}
# What the container adds on top of a card's line.
CONTAINER_FLAGS = {"--host": "0.0.0.0", "--port": "30000"}


def as_flags(args: list[str]) -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    i = 0
    while i < len(args):
        assert args[i].startswith("--"), args
        if i + 1 < len(args) and not args[i + 1].startswith("--"):
            out[args[i]] = args[i + 1]
            i += 2
        else:
            out[args[i]] = None
            i += 1
    return out


def resolve(value) -> str:
    """Compose interpolation for `${VAR:-default}` with VAR unset -> default."""
    return re.sub(r"\$\{\w+:-([^}]*)\}", r"\1", str(value))


@pytest.fixture(scope="module")
def compose():
    return yaml.safe_load(COMPOSE.read_text())


@pytest.fixture(scope="module")
def image_env():
    text = DOCKERFILE.read_text()
    return dict(re.findall(r"^\s*(HOME|HF_HOME|DFLASH_PORT)=(\S+?)\s*\\?$", text, re.M))


def test_one_service_per_card(compose):
    assert set(compose["services"]) == set(CARDS)
    for name, service in compose["services"].items():
        assert service["profiles"] == [name]


@pytest.mark.parametrize("name", sorted(CARDS))
def test_service_launches_the_card_line(compose, name):
    env = {k: resolve(v) for k, v in compose["services"][name]["environment"].items()}
    argv = build_server_argv(env)
    assert argv[:3] == ["python3", "-m", "sglang.launch_server"]
    assert as_flags(argv[3:]) == {**CARDS[name], **CONTAINER_FLAGS}


@pytest.mark.parametrize("name", sorted(CARDS))
def test_service_runtime_settings(compose, image_env, name):
    service = compose["services"][name]
    assert service["build"] == {"context": "..", "dockerfile": "docker/Dockerfile"}
    assert re.fullmatch(r"sglang-dflash:[\w.]+", service["image"])
    devices = service["deploy"]["resources"]["reservations"]["devices"]
    assert any(d["driver"] == "nvidia" and "gpu" in d["capabilities"] for d in devices)
    assert re.fullmatch(r"\d+(gb|g)", str(service["shm_size"]).lower())
    assert service["init"] is True
    # The HF cache volume is mounted where the image keeps its HF_HOME.
    mounts = [v.split(":") for v in service["volumes"]]
    assert [image_env["HF_HOME"]] == [m[1] for m in mounts if m[0] in compose["volumes"]]
    # Host port -> the port the server listens on inside the container.
    (port,) = service["ports"]
    assert resolve(port).split(":")[-1] == image_env["DFLASH_PORT"]
    assert "HF_TOKEN" in service["environment"]


def _logical_lines(text: str) -> list[str]:
    return re.sub(r"\\\n\s*", " ", text).splitlines()


def test_readme_docker_run_examples_print_the_card_lines():
    """Each `docker run` example is followed by the command the container runs; they must agree."""
    lines = _logical_lines(DOCKER_README.read_text())
    pairs = []
    for i, line in enumerate(lines):
        tokens = shlex.split(line) if line.startswith("docker run") else []
        env = {}
        for j, tok in enumerate(tokens[:-1]):
            if tok == "-e" and "=" in tokens[j + 1]:
                key, value = tokens[j + 1].split("=", 1)
                env[key] = value
        if "DFLASH_TARGET_MODEL" not in env:
            continue
        shown = next(s for s in lines[i + 1 :] if "sglang.launch_server" in s)
        pairs.append((env, shlex.split(shown)))
    assert len(pairs) == 2, "expected the Qwen3-8B and gemma-4-31B-it examples"
    for env, shown in pairs:
        built = build_server_argv(env)
        assert built == shown, (
            f"README shows\n  {shlex.join(shown)}\nbut the container runs\n  {shlex.join(built)}"
        )
        card = next(c for c in CARDS.values() if c["--model-path"] == env["DFLASH_TARGET_MODEL"])
        assert as_flags(built[3:]) == {**card, **CONTAINER_FLAGS}
