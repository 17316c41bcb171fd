"""Split the machine's CPUs between side-by-side servers and the bench client, whole cores first.

    python3 bench/h200/cpu_slots.py --per-server K --servers N [--report FILE]

Prints N + 1 lines: the CPU list (``taskset -c`` form, e.g. ``0,8``) of each server, then the
client's (the CPUs no server has; empty when none is left).

Logical CPUs are handed out in physical-core order (both hyperthreads of a core next to each
other), so with K a multiple of the threads per core no server shares a core with another
server or with the client. Numbered CPU ranges do not give that: on a host whose siblings are
``k`` and ``k + 8``, servers on 0-2 and 3-5 would share cores with a client on 8-15, and the
client's work would slow the server's host-bound prefill launches (time to first token).
``--report`` writes the topology that was read, for the results.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

SYSFS = "/sys/devices/system/cpu"


def parse_list(text: str) -> list[int]:
    """'0-2,8' -> [0, 1, 2, 8]"""
    out: list[int] = []
    for part in text.strip().split(","):
        if not part:
            continue
        lo, _, hi = part.partition("-")
        out.extend(range(int(lo), int(hi or lo) + 1))
    return out


def online_cpus(root: Path) -> list[int]:
    online = root / "online"
    if online.exists():
        return parse_list(online.read_text())
    return sorted(int(p.name[3:]) for p in root.glob("cpu[0-9]*"))


def physical_cores(root: Path, cpus: list[int]) -> list[list[int]]:
    """Online CPUs grouped by physical core (siblings together), cores in order of their
    lowest CPU. A CPU whose topology is not readable is a core of its own."""
    cores: set[tuple[int, ...]] = set()
    allowed = set(cpus)
    for cpu in cpus:
        sib = root / f"cpu{cpu}" / "topology" / "thread_siblings_list"
        group = [c for c in parse_list(sib.read_text()) if c in allowed] if sib.exists() else []
        cores.add(tuple(sorted(group or [cpu])))
    return sorted((list(c) for c in cores), key=lambda g: g[0])


def assign(cores: list[list[int]], per_server: int, servers: int) -> tuple[list[list[int]], list[int]]:
    """Each server gets ``per_server`` CPUs taken in core order; the client the rest."""
    if per_server < 1:
        raise ValueError(f"--per-server: expected >= 1, got {per_server}")
    if servers < 0:
        raise ValueError(f"--servers: expected >= 0, got {servers}")
    order = [cpu for core in cores for cpu in core]
    need = per_server * servers
    if need > len(order):
        raise ValueError(f"--per-server {per_server} x --servers {servers} needs {need} CPUs, "
                         f"the machine has {len(order)}")
    slots = [order[i * per_server:(i + 1) * per_server] for i in range(servers)]
    return slots, order[need:]


def cpu_list(cpus: list[int]) -> str:
    return ",".join(str(c) for c in cpus)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--per-server", type=int, required=True)
    ap.add_argument("--servers", type=int, required=True)
    ap.add_argument("--sysfs", default=SYSFS, help="CPU sysfs root (tests point it elsewhere)")
    ap.add_argument("--report", default=None)
    a = ap.parse_args(argv)
    root = Path(a.sysfs)
    cores = physical_cores(root, online_cpus(root))
    try:
        slots, client = assign(cores, a.per_server, a.servers)
    except ValueError as e:
        print(f"cpu_slots: {e}", file=sys.stderr)
        return 2
    threads = max(len(c) for c in cores)
    lines = [f"{len(cores)} physical cores, up to {threads} threads each: "
             + " ".join("(" + cpu_list(c) + ")" for c in cores)]
    if a.per_server % threads:
        lines.append(f"note: {a.per_server} CPUs per server is not a multiple of {threads} "
                     f"threads per core: some servers share a core")
    lines += [f"server {i}: {cpu_list(s)}" for i, s in enumerate(slots)]
    lines.append(f"client: {cpu_list(client) or '(none left: unpinned)'}")
    if a.report:
        Path(a.report).write_text("\n".join(lines) + "\n")
    for line in lines:
        print(line, file=sys.stderr)
    for s in slots:
        print(cpu_list(s))
    print(cpu_list(client))
    return 0


if __name__ == "__main__":
    sys.exit(main())
