"""The wheel carries every package, the Triton kernels (as sglang_dflash._kernels, never as a
top-level `kernels`), and the SGLang plugin entry point."""
import configparser
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    out = tmp_path_factory.mktemp("wheel")
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                            "-w", str(out), str(ROOT)], capture_output=True, text=True)
    if build.returncode != 0 and "No module named" in build.stderr and "setuptools" in build.stderr:
        pytest.skip("setuptools is not installed in this environment")
    assert build.returncode == 0, build.stderr[-2000:]
    return zipfile.ZipFile(next(out.glob("sglang_dflash-*.whl")))


def test_every_package_is_in_the_wheel(wheel):
    names = set(wheel.namelist())
    for init in (ROOT / "sglang_dflash").rglob("__init__.py"):
        rel = init.relative_to(ROOT).as_posix()
        assert rel in names, f"{rel} missing from the wheel: add its package to pyproject's packages list"


def test_kernels_ship_under_our_namespace(wheel):
    names = wheel.namelist()
    for kernel in sorted((ROOT / "kernels").glob("*.py")):
        assert f"sglang_dflash/_kernels/{kernel.name}" in names, kernel.name
    assert not any(n.startswith("kernels/") for n in names)
    assert not (ROOT / "kernels" / "__init__.py").exists()


def test_plugin_entry_point(wheel):
    meta = next(n for n in wheel.namelist() if n.endswith("entry_points.txt"))
    parser = configparser.ConfigParser()
    parser.read_string(wheel.read(meta).decode())
    assert parser["sglang.srt.plugins"]["dflash"] == "sglang_dflash.plugin:register"


def test_license_is_declared_and_shipped(wheel):
    """The SPDX expression (metadata 2.4) and the license text travel with the wheel."""
    names = wheel.namelist()
    meta = wheel.read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
    assert "License-Expression: Apache-2.0" in meta.splitlines()
    shipped = next((n for n in names if n.endswith(".dist-info/licenses/LICENSE")), None)
    assert shipped, "LICENSE missing from the wheel's dist-info"
    assert wheel.read(shipped) == (ROOT / "LICENSE").read_bytes()
