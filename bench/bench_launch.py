"""Launch overhead: trivial jobs through run_container versus `unshare ... /bin/true`.

Runs N jobs (default 500; MAELSTROM_BENCH_JOBS or --jobs) of /bin/true in a two-layer root, one
at a time, through ``maelstrom_core._container.run_container``, and N runs of
``unshare --user --map-root-user --mount --pid --net --fork /bin/true`` started with
``posix_spawn`` (the cheapest way to start it from Python), interleaved one for one in the same
run so that both see the same load. Prints p50/p99 per
job, the share of a job spent in ``launcher.spawn`` (Python + script build + clone until exec),
and the ratio of the p50s (goal: at most 1.2). Writes a JSON summary to $MAELSTROM_BENCH_OUT.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import trio

from maelstrom_core import launcher
from maelstrom_core._container import run_container
from maelstrom_core._job import ExitCode, JobCompleted, JobSpec

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from tests._helpers.rootfs import build_binaries_layer, build_stubs_layer  # noqa: E402

UNSHARE = ["--user", "--map-root-user", "--mount", "--pid", "--net", "--fork", "/bin/true"]


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


async def bench_jobs(
    layers: list[Path], count: int
) -> tuple[list[float], list[float], list[float]]:
    """Alternate one job and one unshare baseline run, so both see the same machine load."""
    spec = JobSpec(program="/bin/true", layers=())
    spawn_times: list[float] = []
    original = launcher.spawn

    def timed_spawn(launch: launcher.LaunchSpec) -> launcher.Container:
        started = time.perf_counter()
        try:
            return original(launch)
        finally:
            spawn_times.append(time.perf_counter() - started)

    import maelstrom_core._container as container_module

    setattr(container_module, "spawn", timed_spawn)  # noqa: B010 - measure the launcher's share without changing it
    totals: list[float] = []
    baseline: list[float] = []
    try:
        for _ in range(count):
            baseline.append(bench_unshare(1)[0])
            started = time.perf_counter()
            outcome = await run_container(spec, layers, inline_limit=1 << 20)
            totals.append(time.perf_counter() - started)
            if not (isinstance(outcome, JobCompleted) and outcome.status == ExitCode(0)):
                raise SystemExit(f"bench job failed: {outcome}")
    finally:
        setattr(container_module, "spawn", original)  # noqa: B010
    return totals, spawn_times, baseline


def bench_unshare(count: int) -> list[float]:
    unshare = shutil.which("unshare")
    if unshare is None:
        raise SystemExit("unshare(1) is needed for the baseline")
    times = []
    for _ in range(count):
        started = time.perf_counter()
        pid = os.posix_spawn(unshare, [unshare, *UNSHARE], {})
        _, status = os.waitpid(pid, 0)
        times.append(time.perf_counter() - started)
        if status != 0:
            raise SystemExit(f"unshare baseline failed with status {status}")
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--jobs", type=int, default=int(os.environ.get("MAELSTROM_BENCH_JOBS", 500))
    )
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="maelstrom-bench-launch-"))
    try:
        layers = [build_stubs_layer(base / "stubs"), build_binaries_layer(base / "bin", ["true"])]
        trio.run(bench_jobs, layers, 20)  # warm-up: page cache, lazy imports
        jobs, spawns, baseline = trio.run(bench_jobs, layers, args.jobs)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    ms = 1000.0
    summary = {
        "jobs": args.jobs,
        "run_container_p50_ms": percentile(jobs, 0.5) * ms,
        "run_container_p99_ms": percentile(jobs, 0.99) * ms,
        "run_container_mean_ms": statistics.fmean(jobs) * ms,
        "spawn_p50_ms": percentile(spawns, 0.5) * ms,
        "unshare_p50_ms": percentile(baseline, 0.5) * ms,
        "unshare_p99_ms": percentile(baseline, 0.99) * ms,
        "unshare_mean_ms": statistics.fmean(baseline) * ms,
    }
    summary["ratio_p50"] = summary["run_container_p50_ms"] / summary["unshare_p50_ms"]
    print(f"{args.jobs} jobs of /bin/true in a 2-layer root, one slot")
    print(
        f"  run_container   p50 {summary['run_container_p50_ms']:.3f} ms"
        f"  p99 {summary['run_container_p99_ms']:.3f} ms"
        f"  (launcher.spawn p50 {summary['spawn_p50_ms']:.3f} ms)"
    )
    print(
        f"  unshare -Urmpnf p50 {summary['unshare_p50_ms']:.3f} ms"
        f"  p99 {summary['unshare_p99_ms']:.3f} ms"
    )
    print(f"  ratio (p50 run_container / unshare) {summary['ratio_p50']:.2f}  (goal <= 1.2)")
    out = os.environ.get("MAELSTROM_BENCH_OUT")
    if out:
        Path(out).write_text(json.dumps(summary, indent=2) + "\n")


if __name__ == "__main__":
    main()
