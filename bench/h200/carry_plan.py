"""Plan the device calls that bring the GPU bundle and large extra files to the GPU machine.

Each device call carries the working tree plus the folders named in `carry`, at most 64 MiB in
all. This cuts every extra file into chunks (``NAME.part-KK`` plus ``NAME.manifest``: chunk
count and sha256, what ``bench/h200/extra_stage.sh`` checks there), packs the chunks beside
the bundle parts into as few calls as fit, writes one folder per call and prints the calls:

    python bench/h200/carry_plan.py --bundle .gpu/p1 .gpu/p2 .gpu/p3 \\
        --extra smol.gguf=/path/smol.gguf fa4-wheels.tar=/path/fa4-wheels.tar --out .gpuwork/stage

Keep --out inside the repo and git-excluded. The tracked tree counts towards every call: see
docs/gpu-tests.md for moving the shipped drafter out while staging.
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

MiB = 1 << 20


@dataclass
class Call:
    bundle: Path | None                              # a bundle part folder carried whole
    chunks: list[Path] = field(default_factory=list)  # extra chunks (and manifests) for this call
    size: int = 0                                    # bytes carried beside the tree


def folder_size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def tree_size(repo: Path) -> int:
    """Bytes of the tracked files as they are in the working tree (deleted ones count 0)."""
    out = subprocess.run(["git", "ls-files", "-z"], cwd=repo, capture_output=True, check=True)
    return sum((repo / p).stat().st_size for p in out.stdout.decode().split("\0")
               if p and (repo / p).is_file())


def split(name: str, src: Path, chunk: int, dest: Path) -> list[Path]:
    """src -> dest/name.part-00.. of `chunk` bytes, plus dest/name.manifest ("count sha256")."""
    dest.mkdir(parents=True, exist_ok=True)
    sha, parts = hashlib.sha256(), []
    with open(src, "rb") as f:
        while block := f.read(chunk):
            sha.update(block)
            part = dest / f"{name}.part-{len(parts):02d}"
            part.write_bytes(block)
            parts.append(part)
    manifest = dest / f"{name}.manifest"
    manifest.write_text(f"{len(parts)} {sha.hexdigest()}\n")
    return [manifest, *parts]


def pack(bundles: list[tuple[Path, int]], chunks: list[tuple[Path, int]], room: int) -> list[Call]:
    """First fit: every bundle part opens a call; chunks fill the calls in order, then new ones."""
    calls = [Call(b, size=s) for b, s in bundles]
    for c, s in bundles:
        if s > room:
            raise ValueError(f"bundle part {c}: {s / MiB:.1f} MiB, more than the {room / MiB:.1f} MiB "
                             "a call has beside the tree")
    for path, s in chunks:
        if s > room:
            raise ValueError(f"chunk {path}: {s / MiB:.1f} MiB, more than the {room / MiB:.1f} MiB a call "
                             "has beside the tree; use a smaller --chunk-mib")
        home = next((c for c in calls if c.size + s <= room), None)
        if home is None:
            home = Call(None)
            calls.append(home)
        home.chunks.append(path)
        home.size += s
    return calls


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bundle", nargs="*", default=[], help="bundle part folders, staged in this order")
    ap.add_argument("--extra", nargs="*", default=[], metavar="NAME=PATH", help="large files to carry")
    ap.add_argument("--out", required=True, help="folder for the per-call carry folders (git-excluded)")
    ap.add_argument("--chunk-mib", type=float, default=12)
    ap.add_argument("--limit-mib", type=float, default=64, help="what one call may carry in all")
    ap.add_argument("--margin-mib", type=float, default=0.5)
    ap.add_argument("--repo", default=".")
    a = ap.parse_args(argv)

    repo, out = Path(a.repo).resolve(), Path(a.out)
    tree = tree_size(repo)
    room = int((a.limit_mib - a.margin_mib) * MiB) - tree
    print(f"tracked tree {tree / MiB:.1f} MiB; {room / MiB:.1f} MiB left per call")
    if out.exists():
        shutil.rmtree(out)
    chunks = []
    for item in a.extra:
        name, sep, path = item.partition("=")
        if not sep or not Path(path).is_file():
            ap.error(f"--extra {item!r}: expected NAME=PATH of an existing file")
        chunks += [(p, p.stat().st_size) for p in split(name, Path(path), int(a.chunk_mib * MiB), out / "chunks")]
    bundles = [(Path(b), folder_size(Path(b))) for b in a.bundle]
    try:
        calls = pack(bundles, chunks, room)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    for i, call in enumerate(calls, 1):
        folder = out / f"c{i}"
        folder.mkdir(parents=True)
        for path in call.chunks:
            path.rename(folder / path.name)
        carry = [str(p) for p in (call.bundle, folder) if p is not None]
        stage = f"bash {call.bundle}/stage.sh && " if call.bundle else ""
        print(f"call {i} ({(call.size + tree) / MiB:.1f} MiB): carry {carry}\n"
              f"    {stage}bash bench/h200/extra_stage.sh {folder}")
    (out / "chunks").rmdir()
    return 0


if __name__ == "__main__":
    sys.exit(main())
