"""A sweep: every server x every concurrency level, one report dict at the end."""

from __future__ import annotations

from dataclasses import dataclass, replace

from .runner import Workload, probe, requests_for_level, run_level
from .server import EXPECTED_WORKER, LaunchedServer, LaunchSpec, ServerLaunchError
from .serverinfo import server_info
from .stats import LevelStats, aggregate, unreachable


@dataclass
class Target:
    """A server to measure: already running at ``url``, or launched from ``launch``."""

    name: str
    url: str | None = None
    launch: LaunchSpec | None = None


def run_sweep(
    targets: list[Target],
    work: Workload,
    concurrencies: list[int],
    num_requests: int | None = None,
    launch_timeout: float = 900.0,
    log_dir: str | None = None,
    on_requests=None,
) -> tuple[list[dict], list[LevelStats]]:
    """Measure each target in turn; failures are recorded, never raised.

    Returns one description per target (name, url, launch command, error) and one
    ``LevelStats`` per (target, concurrency), in order. ``on_requests(server, concurrency,
    results)``, when given, receives every level's raw ``RequestResult`` list.
    """
    servers: list[dict] = []
    levels: list[LevelStats] = []
    for target in targets:
        info: dict = {"name": target.name, "url": target.url, "launched": target.launch is not None}
        launched = None
        reason = None
        try:
            if target.launch is not None:
                launched = LaunchedServer(target.launch, log_dir)
                info.update(url=launched.url, command=launched.argv, env=launched.env_changes,
                            log=str(launched.log_path))
                launched.start()
                launched.wait_healthy(launch_timeout)
            reason = probe(info["url"])
        except (ServerLaunchError, ValueError, OSError) as e:
            reason = str(e)
        _note_reachability(info, reason)
        try:
            for c in concurrencies:
                n = requests_for_level(c, num_requests, len(work.specs), work.min_waves)
                if reason:
                    levels.append(unreachable(target.name, c, n, reason))
                    continue
                stats, results = run_level(target.name, info["url"], work, c, n)
                levels.append(stats)
                if on_requests is not None:
                    on_requests(target.name, c, results)
                print(_one_line(stats))
            if not reason:
                _note_server_average(info)
            if launched is not None and not reason:
                _check_worker(info, launched)
        finally:
            if launched is not None:
                launched.stop()
        servers.append(info)
    return servers, levels


def run_interleaved(
    targets: list[Target],
    work: Workload,
    concurrencies: list[int],
    num_requests: int | None = None,
    rounds: int = 4,
    on_requests=None,
) -> tuple[list[dict], list[LevelStats]]:
    """Like ``run_sweep`` for servers that are already running, but each level is cut into
    ``rounds`` parts and the servers take turns part by part (A B C, then C B A, ...).

    Measured one after another, a server that happens to run while the host is busier (other
    idle servers polling, clock changes) loses a few percent to the next one; taking turns
    spreads such drifts over all servers. Each server still sees the level's prompts once,
    in order, and its numbers are over all its parts (duration: the sum of its parts'); the
    warm-up runs before its first part only.
    """
    servers: list[dict] = []
    live: list[Target] = []
    for t in targets:
        if t.url is None:
            raise ValueError(f"--rounds needs running servers (--url); {t.name!r} would be launched")
        info: dict = {"name": t.name, "url": t.url, "launched": False}
        _note_reachability(info, probe(t.url))
        if "error" not in info:
            live.append(t)
        servers.append(info)
    by_key: dict[tuple[str, int], LevelStats] = {}
    for c in concurrencies:
        n = requests_for_level(c, num_requests, len(work.specs), work.min_waves)
        if num_requests is None and n % (rounds * c):
            # every part whole waves: a part ending in a partial wave runs its tail at lower
            # concurrency, which charges the level's throughput with that server's tail timing
            whole = -(-n // (rounds * c)) * rounds * c
            print(f"[bench] c={c}: {n} requests rounded up to {whole}, whole waves in each "
                  f"of the {rounds} parts")
            n = whole
        parts = [n // rounds + (i < n % rounds) for i in range(rounds)]
        got = {t.name: ([], 0.0) for t in live}
        for r, size in enumerate(parts):
            if size == 0:
                continue
            for t in (live if r % 2 == 0 else live[::-1]):
                w = work if r == 0 else replace(work, warmup=0)
                stats, results = run_level(t.name, t.url, w, c, size, first=sum(parts[:r]))
                res, dur = got[t.name]
                got[t.name] = (res + results, dur + stats.duration_s)
        for t in targets:
            info = next(s for s in servers if s["name"] == t.name)
            if "error" in info:
                by_key[(t.name, c)] = unreachable(t.name, c, n, info["error"])
                continue
            results, dur = got[t.name]
            by_key[(t.name, c)] = stats = aggregate(t.name, c, results, dur)
            if on_requests is not None:
                on_requests(t.name, c, results)
            print(_one_line(stats))
    for info in servers:
        if "error" not in info:
            _note_server_average(info)
    return servers, [by_key[(t.name, c)] for t in targets for c in concurrencies]


def _note_reachability(info: dict, reason: str | None) -> None:
    """Record why a server cannot be measured, or what it says about itself."""
    if reason:
        print(f"[bench] {info['name']}: not measured: {reason.splitlines()[0]}")
        info["error"] = reason
    else:
        info["server_info"] = server_info(info["url"])


def _note_server_average(info: dict) -> None:
    """The server's own running acceptance average (warm-up requests included): a cross-check."""
    after = server_info(info["url"]).get("avg_spec_accept_length")
    if after is not None:
        info["server_avg_spec_accept_length"] = after


def _check_worker(info: dict, launched: LaunchedServer) -> None:
    """Record which DFLASH worker the log shows; warn when it is not the one asked for."""
    info["worker"] = found = launched.detected_worker()
    expected = EXPECTED_WORKER[launched.spec.config]
    if found != expected:
        info["warning"] = (f"configuration {launched.spec.config!r} should run worker "
                           f"{expected!r} but its log shows {found!r}; see {launched.log_path}")
        print(f"[bench] WARNING: {info['warning']}")


def _one_line(s: LevelStats) -> str:
    tput = "-" if s.output_throughput is None else f"{s.output_throughput:.1f}"
    acc = "-" if s.accept_len_mean is None else f"{s.accept_len_mean:.2f}"
    return (f"[bench] {s.server} c={s.concurrency}: {s.completed}/{s.num_requests} ok, "
            f"{tput} tok/s, accept len {acc}" + (f", errors {s.errors}" if s.errors else ""))
