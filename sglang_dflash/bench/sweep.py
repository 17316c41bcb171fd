"""A sweep: every server x every concurrency level, one report dict at the end."""

from __future__ import annotations

from dataclasses import dataclass

from .runner import Workload, probe, requests_for_level, run_level
from .server import EXPECTED_WORKER, LaunchedServer, LaunchSpec, ServerLaunchError
from .serverinfo import server_info
from .stats import LevelStats, unreachable


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
        if reason:
            print(f"[bench] {target.name}: not measured: {reason.splitlines()[0]}")
            info["error"] = reason
        else:
            info["server_info"] = server_info(info["url"])
        try:
            for c in concurrencies:
                n = requests_for_level(c, num_requests, len(work.specs))
                if reason:
                    levels.append(unreachable(target.name, c, n, reason))
                    continue
                stats, results = run_level(target.name, info["url"], work, c, n)
                levels.append(stats)
                if on_requests is not None:
                    on_requests(target.name, c, results)
                print(_one_line(stats))
            if not reason:
                # the server's own running average (warm-up requests included): a cross-check
                after = server_info(info["url"]).get("avg_spec_accept_length")
                if after is not None:
                    info["server_avg_spec_accept_length"] = after
            if launched is not None and not reason:
                _check_worker(info, launched)
        finally:
            if launched is not None:
                launched.stop()
        servers.append(info)
    return servers, levels


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
