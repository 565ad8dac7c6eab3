"""A Rust test suite: ``cargo maelstrom`` (standalone) against ``cargo test`` (and nextest).

Generates a throwaway cargo workspace of several small crates, each with unit tests in its
library and an integration test file (default: 6 crates x 100 tests = 600 tests), then times,
in the same run and on the same machine:

* ``cargo test``: total from a clean target dir (build + run), then test execution alone
  (a second run: cargo's up-to-date check plus running every test binary);
* ``cargo maelstrom``: total from a clean target dir (build, listing, one container per test
  case, cold layer cache), then again with everything built and cached (execution alone);
* ``cargo nextest run`` the same two ways, only if ``cargo nextest`` is already installed.

Each figure is the best of ``--repeat`` runs (the clean-build totals run once). Prints wall
seconds and the ratio to ``cargo test``'s figure of the same kind (below 1 means faster).
cargo maelstrom's isolation costs a container per test, where cargo test runs a binary's
tests as threads of one process, so a ratio above 1 is expected; the figure to watch is how
far above.

Sizes: ``--crates``, ``--tests-per-crate``, ``--repeat``, or the env vars
``MAELSTROM_BENCH_CARGO_CRATES``, ``..._TESTS_PER_CRATE``, ``..._REPEAT``. With
``MAELSTROM_BENCH_OUT`` set, a JSON summary is written there.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

ENV_PREFIX = "MAELSTROM_BENCH_CARGO_"


def env_int(name: str, default: int) -> int:
    raw = os.environ.get(ENV_PREFIX + name)
    if raw is None:
        return default
    try:
        return int(raw)
    except ValueError:
        sys.exit(f"bench_cargo: {ENV_PREFIX}{name}={raw!r} is not an integer")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--crates", type=int, default=env_int("CRATES", 6))
    parser.add_argument("--tests-per-crate", type=int, default=env_int("TESTS_PER_CRATE", 100))
    parser.add_argument("--repeat", type=int, default=env_int("REPEAT", 3))
    args = parser.parse_args()
    for name in ("crates", "tests_per_crate", "repeat"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    return args


# --------------------------------------------------------------------------------------------
# The workspace


def generate(root: Path, crates: int, tests_per_crate: int) -> int:
    """Write the workspace; returns the number of tests in it."""
    names = [f"crate{i:02d}" for i in range(crates)]
    members = ", ".join(f'"crates/{n}"' for n in names)
    (root / "Cargo.toml").write_text(
        f'[workspace]\nmembers = [{members}]\nresolver = "2"\n\n'
        '[workspace.package]\nversion = "0.1.0"\nedition = "2021"\npublish = false\n'
    )
    unit = tests_per_crate // 2
    integration = tests_per_crate - unit
    for index, name in enumerate(names):
        crate = root / "crates" / name
        (crate / "src").mkdir(parents=True)
        (crate / "tests").mkdir()
        (crate / "Cargo.toml").write_text(
            f'[package]\nname = "{name}"\nversion.workspace = true\n'
            "edition.workspace = true\npublish.workspace = true\n"
        )
        lib = [
            "pub fn checksum(data: &[u8]) -> u32 {",
            "    data.iter().fold(2166136261u32, |h, b| (h ^ *b as u32).wrapping_mul(16777619))",
            "}",
            "",
            "pub fn fib(n: u64) -> u64 {",
            "    let (mut a, mut b) = (0u64, 1u64);",
            "    for _ in 0..n {",
            "        (a, b) = (b, a.wrapping_add(b));",
            "    }",
            "    a",
            "}",
            "",
            "#[cfg(test)]",
            "mod tests {",
            "    use super::*;",
        ]
        for t in range(unit):
            lib += [
                "    #[test]",
                f"    fn unit_{t:03d}() {{",
                f"        let n = {t % 50 + index};",
                "        assert_eq!(fib(n + 2), fib(n + 1) + fib(n));",
                f'        assert_ne!(checksum(b"{name}-{t}"), 0);',
                "    }",
            ]
        lib.append("}")
        (crate / "src" / "lib.rs").write_text("\n".join(lib) + "\n")
        it = [f"use {name}::{{checksum, fib}};", ""]
        for t in range(integration):
            it += [
                "#[test]",
                f"fn integration_{t:03d}() {{",
                f'    let data = format!("{{}}-{{}}", "{name}", {t}).into_bytes();',
                "    assert_eq!(checksum(&data), checksum(&data.clone()));",
                f"    assert!(fib({t % 60 + 10}) > 0);",
                "}",
            ]
        (crate / "tests" / "integration.rs").write_text("\n".join(it) + "\n")
    return crates * tests_per_crate


# --------------------------------------------------------------------------------------------
# Timing


def timed(command: Sequence[str], cwd: Path, env: dict[str, str]) -> float:
    start = time.perf_counter()
    result = subprocess.run(
        list(command), cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    elapsed = time.perf_counter() - start
    if result.returncode != 0:
        tail = result.stderr.decode(errors="replace").strip().splitlines()[-5:]
        sys.exit(
            f"bench_cargo: {' '.join(command)} failed ({result.returncode}):\n" + "\n".join(tail)
        )
    return elapsed


def best(command: Sequence[str], cwd: Path, env: dict[str, str], repeat: int) -> float:
    return min(timed(command, cwd, env) for _ in range(repeat))


def clean(root: Path) -> None:
    shutil.rmtree(root / "target", ignore_errors=True)


def cargo_maelstrom_command() -> list[str]:
    beside = Path(sys.executable).parent / "cargo-maelstrom"
    found = str(beside) if beside.is_file() else shutil.which("cargo-maelstrom")
    if found is None:
        sys.exit("bench_cargo: cargo-maelstrom is not installed")
    return [found, "--ui", "simple"]


def nextest_installed(env: dict[str, str]) -> bool:
    probe = subprocess.run(
        ["cargo", "nextest", "--version"], env=env, capture_output=True, check=False
    )
    return probe.returncode == 0


def main() -> None:
    args = parse_args()
    if shutil.which("cargo") is None:
        sys.exit("bench_cargo: cargo is not on PATH")
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("MAELSTROM_", "CARGO_MAELSTROM_"))
    }
    env.pop("CARGO_TARGET_DIR", None)  # every contender builds into the workspace's own target
    env["RUST_BACKTRACE"] = "0"
    maelstrom = cargo_maelstrom_command()
    with tempfile.TemporaryDirectory(prefix="bench-cargo-") as tmp:
        root = Path(tmp) / "ws"
        root.mkdir()
        tests = generate(root, args.crates, args.tests_per_crate)
        print(
            f"workspace: {args.crates} crates, {tests} tests; {os.cpu_count()} CPUs; "
            f"best of {args.repeat}",
            flush=True,
        )
        # Fetch nothing and lock once, outside every timing.
        subprocess.run(["cargo", "generate-lockfile", "--offline"], cwd=root, env=env, check=True)

        results: dict[str, dict[str, float]] = {}
        cargo_test = ["cargo", "test", "--offline", "--quiet"]
        clean(root)
        results["cargo test"] = {"total": timed(cargo_test, root, env)}
        results["cargo test"]["execution"] = best(cargo_test, root, env, args.repeat)

        clean(root)
        results["cargo maelstrom"] = {"total": timed(maelstrom, root, env)}
        results["cargo maelstrom"]["execution"] = best(maelstrom, root, env, args.repeat)

        if nextest_installed(env):
            nextest = ["cargo", "nextest", "run", "--offline", "--no-fail-fast"]
            clean(root)
            results["cargo nextest"] = {"total": timed(nextest, root, env)}
            results["cargo nextest"]["execution"] = best(nextest, root, env, args.repeat)
        else:
            print("cargo nextest: not installed, skipped")

    baseline = results["cargo test"]
    print(f"\n{'runner':<17}{'total (s)':>11}{'ratio':>8}{'execution (s)':>16}{'ratio':>8}")
    summary: dict[str, object] = {
        "benchmark": "cargo",
        "crates": args.crates,
        "tests": tests,
        "repeat": args.repeat,
        "cpus": os.cpu_count(),
        "baseline": "cargo test",
        "results": {},
    }
    for name, figures in results.items():
        total_ratio = figures["total"] / baseline["total"]
        exec_ratio = figures["execution"] / baseline["execution"]
        print(
            f"{name:<17}{figures['total']:>11.2f}{total_ratio:>8.2f}"
            f"{figures['execution']:>16.2f}{exec_ratio:>8.2f}"
        )
        summary["results"][name] = {  # type: ignore[index]
            "total_seconds": round(figures["total"], 3),
            "execution_seconds": round(figures["execution"], 3),
            "total_ratio_to_cargo_test": round(total_ratio, 3),
            "execution_ratio_to_cargo_test": round(exec_ratio, 3),
            "execution_ms_per_test": round(1000 * figures["execution"] / tests, 3),
        }
    out = os.environ.get("MAELSTROM_BENCH_OUT")
    if out:
        Path(out).write_text(json.dumps(summary, indent=2) + "\n")
        print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
