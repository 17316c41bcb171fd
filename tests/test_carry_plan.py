"""bench/h200/carry_plan.py and extra_stage.sh: every planned call fits, and the files come back
whole on the other side (the device's side is played by extra_stage.sh in a temp folder)."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("carry_plan", ROOT / "bench/h200/carry_plan.py")
carry_plan = importlib.util.module_from_spec(spec)
sys.modules["carry_plan"] = carry_plan  # dataclasses look their module up
spec.loader.exec_module(carry_plan)
MiB = carry_plan.MiB


def _repo(tmp_path: Path, tracked_bytes: int) -> Path:
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "tracked.bin").write_bytes(os.urandom(tracked_bytes))
    subprocess.run(["git", "init", "-q"], cwd=repo, check=True)
    subprocess.run(["git", "add", "tracked.bin"], cwd=repo, check=True)
    return repo


def test_pack_fills_bundle_calls_first_then_opens_new_ones():
    calls = carry_plan.pack([(Path("p1"), 6), (Path("p2"), 9)],
                            [(Path(f"x.part-{i}"), 3) for i in range(4)], room=10)
    assert [(c.bundle and c.bundle.name, [p.name for p in c.chunks], c.size) for c in calls] == [
        ("p1", ["x.part-0"], 9), ("p2", [], 9), (None, ["x.part-1", "x.part-2", "x.part-3"], 9)]
    with pytest.raises(ValueError, match="smaller --chunk-mib"):
        carry_plan.pack([], [(Path("big"), 11)], room=10)


def test_plan_fits_every_call_and_the_stager_rebuilds_the_files(tmp_path, capsys):
    repo = _repo(tmp_path, MiB // 2)
    bundle = repo / "b1"
    bundle.mkdir()
    (bundle / "chunk").write_bytes(os.urandom(2 * MiB))
    files = {"a.bin": os.urandom(5 * MiB + 123), "b.tar": os.urandom(MiB // 3)}
    args = []
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
        args.append(f"{name}={tmp_path / name}")
    out = repo / "stage"
    rc = carry_plan.main(["--repo", str(repo), "--bundle", str(bundle), "--extra", *args,
                          "--out", str(out), "--chunk-mib", "1", "--limit-mib", "4", "--margin-mib", "0"])
    assert rc == 0
    printed = capsys.readouterr().out
    sizes = [float(x) for x in re.findall(r"call \d+ \(([\d.]+) MiB\)", printed)]
    assert len(sizes) >= 3 and all(s <= 4 for s in sizes)
    assert f"carry ['{bundle}', '{out / 'c1'}']" in printed
    folders = sorted(p for p in out.iterdir())
    assert [p.name for p in folders] == [f"c{i}" for i in range(1, len(sizes) + 1)]

    # the device side: call after call on one machine, in the printed order
    env = dict(os.environ, EXTRA_DIR=str(tmp_path / "device"))
    logs = [subprocess.run(["bash", str(ROOT / "bench/h200/extra_stage.sh"), str(f)], env=env,
                           capture_output=True, text=True, check=True).stdout for f in folders]
    assert "ready" in logs[-1]
    for name, data in files.items():
        assert (tmp_path / "device" / name).read_bytes() == data


def test_a_damaged_chunk_is_refused(tmp_path, capsys):
    repo = _repo(tmp_path, 1000)
    (tmp_path / "f.bin").write_bytes(os.urandom(3 * MiB))
    out = repo / "stage"
    assert carry_plan.main(["--repo", str(repo), "--extra", f"f.bin={tmp_path / 'f.bin'}",
                            "--out", str(out), "--chunk-mib", "1"]) == 0
    part = next(out.rglob("f.bin.part-01"))
    part.write_bytes(b"x" + part.read_bytes()[1:])
    env = dict(os.environ, EXTRA_DIR=str(tmp_path / "device"))
    run = subprocess.run(["bash", str(ROOT / "bench/h200/extra_stage.sh"), *map(str, sorted(out.iterdir()))],
                         env=env, capture_output=True, text=True)
    assert run.returncode != 0 and "sha256 mismatch" in run.stdout
    assert not (tmp_path / "device" / "f.bin").exists()


def test_bad_extra_argument_names_it(tmp_path):
    repo = _repo(tmp_path, 10)
    with pytest.raises(SystemExit):
        carry_plan.main(["--repo", str(repo), "--extra", "nofile", "--out", str(repo / "s")])
