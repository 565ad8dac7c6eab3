"""maelstrom-go-test against ``go test ./...`` on a generated module, in the same run.

The module has ``--packages`` packages of ``--tests`` small tests each (default 6 x 60 = 360),
one importing another in-module package. Both tools run warm (go's build cache filled, the
test binaries and layers built once), with ``-count=1`` so go does not replay cached results.

Figures (each the median of ``--runs``):

* ``go_test_s``: ``go test -count=1 ./...``;
* ``maelstrom_s``: ``maelstrom-go-test --ui quiet`` (standalone: every test in its own
  container, on the local worker);
* ``build_reuse_s`` / ``build_relink_s``: maelstrom-go-test's build step alone (go list, up-to-date
  check, ``go test -c`` for each package) with the up-to-date check on, and off (go's own cache
  decides, and relinks every binary).

Sizes: ``--packages N --tests M --runs R`` or ``MAELSTROM_BENCH_GO_PACKAGES`` /
``MAELSTROM_BENCH_GO_TESTS`` / ``MAELSTROM_BENCH_RUNS``. Writes a JSON summary to
``$MAELSTROM_BENCH_OUT`` when set.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import trio

from maelstrom_core.config import GoTestConfig
from maelstrom_go_test._frontend import GoFrontend

MAELSTROM_GO_TEST = str(Path(sys.executable).parent / "maelstrom-go-test")


def generate(root: Path, packages: int, tests: int) -> None:
    (root / "go.mod").write_text("module example.com/bench\n\ngo 1.22\n")
    for p in range(packages):
        pkg = root / f"pkg{p}"
        pkg.mkdir(parents=True)
        imports = '\nimport "example.com/bench/pkg0"\n' if p else ""
        use = "pkg0.Add(x, 0)" if p else "x"
        (pkg / "lib.go").write_text(
            f"package pkg{p}\n{imports}\n"
            f"// Add is what the tests check.\nfunc Add(x, y int) int {{ return {use} + y }}\n"
        )
        body = [f'package pkg{p}\n\nimport "testing"\n']
        for t in range(tests):
            body.append(
                f"func TestAdd{t:03}(t *testing.T) {{\n"
                f"\tif got := Add({t}, {p}); got != {t + p} {{\n"
                f'\t\tt.Fatalf("Add = %d", got)\n\t}}\n}}\n'
            )
        (pkg / "lib_test.go").write_text("\n".join(body))
    (root / "maelstrom-go-test.toml").write_text(
        "[[directives]]\n"
        'layers = [{ stubs = [ "/{proc,sys,tmp}/", "/dev/{full,null,random,urandom,zero}" ] }]\n'
        "mounts = [\n"
        '    { type = "tmp", mount_point = "/tmp" },\n'
        '    { type = "proc", mount_point = "/proc" },\n'
        '    { type = "sys", mount_point = "/sys" },\n'
        '    { type = "devices", devices = ["full", "null", "random", "urandom", "zero"] },\n'
        "]\n"
    )


def run(cmd: list[str], cwd: Path) -> str:
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout}{proc.stderr}")
    return proc.stdout


def median(runs: int, fn: Callable[[], object]) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


async def build_step(root: Path, *, reuse: bool) -> None:
    config = GoTestConfig.resolve(env={}, config_file="-")
    frontend = await GoFrontend.open(config, cwd=root, reuse_binaries=reuse)
    packages = await frontend.packages()
    async with frontend.build(packages, lambda line: None) as artifacts:
        async for _ in artifacts:
            pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    env = os.environ.get
    parser.add_argument("--packages", type=int, default=int(env("MAELSTROM_BENCH_GO_PACKAGES", 6)))
    parser.add_argument("--tests", type=int, default=int(env("MAELSTROM_BENCH_GO_TESTS", 60)))
    parser.add_argument("--runs", type=int, default=int(env("MAELSTROM_BENCH_RUNS", 3)))
    args = parser.parse_args()
    if shutil.which("go") is None:
        raise SystemExit("bench_go: no go command on PATH")

    with tempfile.TemporaryDirectory(prefix="bench-go-") as tmp:
        root = Path(tmp) / "module"
        root.mkdir()
        generate(root, args.packages, args.tests)
        total = args.packages * args.tests
        go_test = ["go", "test", "-count=1", "./..."]
        ours = [MAELSTROM_GO_TEST, "--ui", "quiet"]
        # Warm-up: go's build cache, our test binaries, layers and local-worker cache.
        run(go_test, root)
        summary_text = run(ours, root)
        passed = re.search(r"Successful Tests\s*:\s*(\d+)", summary_text)
        if passed is None or int(passed[1]) != total:
            raise SystemExit(f"maelstrom-go-test did not pass all {total} tests:\n{summary_text}")

        go_s = median(args.runs, lambda: run(go_test, root))
        ours_s = median(args.runs, lambda: run(ours, root))
        reuse_s = median(args.runs, lambda: trio.run(lambda: build_step(root, reuse=True)))
        relink_s = median(args.runs, lambda: trio.run(lambda: build_step(root, reuse=False)))

    summary = {
        "packages": args.packages,
        "tests": total,
        "runs": args.runs,
        "cpus": os.cpu_count(),
        "go_test_s": round(go_s, 3),
        "maelstrom_s": round(ours_s, 3),
        "ratio_maelstrom_to_go_test": round(ours_s / go_s, 2),
        "tests_per_s_maelstrom": round(total / ours_s, 1),
        "tests_per_s_go_test": round(total / go_s, 1),
        "build_reuse_s": round(reuse_s, 3),
        "build_relink_s": round(relink_s, 3),
        "ratio_build_reuse_to_relink": round(reuse_s / relink_s, 2),
    }
    print(f"generated module: {args.packages} packages, {total} tests; median of {args.runs}")
    print(f"go test -count=1 ./...     {go_s:8.3f}s  ({total / go_s:7.1f} tests/s)  baseline")
    print(
        f"maelstrom-go-test          {ours_s:8.3f}s  ({total / ours_s:7.1f} tests/s)  "
        f"{ours_s / go_s:.2f}x go test"
    )
    print(
        f"build step, up-to-date check on  {reuse_s:6.3f}s; off (relink) {relink_s:6.3f}s: "
        f"{reuse_s / relink_s:.2f}x"
    )
    out = os.environ.get("MAELSTROM_BENCH_OUT")
    if out:
        Path(out).write_text(json.dumps({"bench": "go", **summary}, indent=2) + "\n")


if __name__ == "__main__":
    main()
