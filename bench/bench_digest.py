"""Hashing a file tree: our C ``sha256_files`` and the hashlib twin against coreutils ``sha256sum``.

Builds a throwaway tree of many small files and a few large ones (default: 2,000 small files
of 0-64 KiB plus 8 files of 25 MB, about 265 MB in all), warms the page cache, then times each
contender over the same files several times (round-robin) and keeps the best run. Prints MB/s
(10^6 bytes) and the speed ratio to ``sha256sum`` (above 1 means faster), by wall clock and by
CPU time, for the whole tree and for the small files alone (where per-file overhead
dominates). Every contender's digests are checked
against the others before any figure is printed.

Sizes: ``--small-files``, ``--small-max-kib``, ``--large-files``, ``--large-mb``, ``--repeat``,
or the env vars ``MAELSTROM_BENCH_DIGEST_SMALL_FILES``, ``..._SMALL_MAX_KIB``,
``..._LARGE_FILES``, ``..._LARGE_MB``, ``..._REPEAT``. With ``MAELSTROM_BENCH_OUT`` set, a JSON
summary is written there.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

try:
    from maelstrom_core import _digest_c, _digest_py
except ImportError as error:
    sys.exit(f"bench_digest: maelstrom_core._digest_c is not built: {error}")

ENV_PREFIX = "MAELSTROM_BENCH_DIGEST_"


def env_int(name: str, default: int) -> int:
    raw = os.environ.get(ENV_PREFIX + name)
    if raw is None:
        return default
    try:
        return int(raw)
    except ValueError:
        sys.exit(f"bench_digest: {ENV_PREFIX}{name}={raw!r} is not an integer")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small-files", type=int, default=env_int("SMALL_FILES", 2000))
    parser.add_argument("--small-max-kib", type=int, default=env_int("SMALL_MAX_KIB", 64))
    parser.add_argument("--large-files", type=int, default=env_int("LARGE_FILES", 8))
    parser.add_argument("--large-mb", type=int, default=env_int("LARGE_MB", 25))
    parser.add_argument("--repeat", type=int, default=env_int("REPEAT", 5))
    args = parser.parse_args()
    for name in ("small_files", "small_max_kib", "large_files", "large_mb", "repeat"):
        if getattr(args, name) < (1 if name == "repeat" else 0):
            parser.error(f"--{name.replace('_', '-')} is too small: {getattr(args, name)}")
    return args


def build_tree(root: Path, args: argparse.Namespace) -> tuple[list[Path], list[Path]]:
    """Write the tree; return (small files, large files)."""
    rng = random.Random(20240601)
    # One random megabyte, sliced and rotated, is as good as fresh randomness for SHA-256 and
    # keeps generation quick.
    noise = os.urandom(1 << 20) * 2
    small = []
    for number in range(args.small_files):
        folder = root / "small" / f"d{number % 40:02}"
        folder.mkdir(parents=True, exist_ok=True)
        size = rng.randrange(args.small_max_kib * 1024 + 1)
        offset = rng.randrange(1 << 20)
        path = folder / f"f{number:05}.bin"
        path.write_bytes(noise[offset : offset + size])
        small.append(path)
    large = []
    (root / "large").mkdir()
    for number in range(args.large_files):
        path = root / "large" / f"big{number:02}.bin"
        remaining = args.large_mb * 1_000_000
        with path.open("wb") as file:
            while remaining:
                offset = rng.randrange(1 << 20)
                piece = noise[offset : offset + min(remaining, 1 << 20)]
                file.write(piece)
                remaining -= len(piece)
        large.append(path)
    return small, large


def warm(paths: Sequence[Path]) -> None:
    for path in paths:
        with path.open("rb", buffering=0) as file:
            while file.read(1 << 20):
                pass


def run_sha256sum(paths: Sequence[Path]) -> list[bytes]:
    # xargs splits the list only if it outgrows the argument limit; one process usually does all.
    listing = b"\0".join(os.fsencode(path) for path in paths) + b"\0"
    done = subprocess.run(
        ["xargs", "-0", "sha256sum", "--"], input=listing, capture_output=True, check=True
    )
    return [bytes.fromhex(line.split(maxsplit=1)[0].decode()) for line in done.stdout.splitlines()]


def measure(
    contenders: dict[str, Callable[[Sequence[Path]], list[bytes]]],
    paths: Sequence[Path],
    repeat: int,
) -> dict[str, tuple[float, float]]:
    """Best wall and best CPU seconds of each contender over ``paths``.

    Rounds go through every contender in turn, so a burst of load from elsewhere on the
    machine hits them alike rather than ruining one contender's every run. CPU time (ours, or
    the children's for sha256sum) is the steadier figure on a busy machine.
    """
    best = {name: (float("inf"), float("inf")) for name in contenders}
    for _ in range(repeat):
        for name, contender in contenders.items():
            children = resource.getrusage(resource.RUSAGE_CHILDREN)
            cpu = time.process_time()
            start = time.perf_counter()
            contender(paths)
            wall = time.perf_counter() - start
            cpu = time.process_time() - cpu
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            cpu += (after.ru_utime - children.ru_utime) + (after.ru_stime - children.ru_stime)
            best[name] = (min(best[name][0], wall), min(best[name][1], cpu))
    return best


def main() -> None:
    args = parse_args()
    if shutil.which("sha256sum") is None or shutil.which("xargs") is None:
        sys.exit("bench_digest: needs coreutils sha256sum and xargs on PATH")
    backends = _digest_c._available_backends()

    with tempfile.TemporaryDirectory(prefix="bench_digest-") as folder:
        small, large = build_tree(Path(folder), args)
        everything = [*small, *large]
        sizes = {path: path.stat().st_size for path in everything}
        warm(everything)

        contenders: dict[str, Callable[[Sequence[Path]], list[bytes]]] = {}
        for backend in backends:

            def ours(paths: Sequence[Path], backend: str = backend) -> list[bytes]:
                _digest_c._set_backend(backend)
                result: list[bytes] = _digest_c.sha256_files(paths)
                return result

            contenders[f"c sha256_files ({backend})"] = ours

        def one_call_per_file(paths: Sequence[Path]) -> list[bytes]:
            # The same block function as the first row, so the gap is the per-call cost alone.
            _digest_c._set_backend(backends[0])
            return [_digest_c.sha256_file(path) for path in paths]

        contenders[f"c sha256_file per file ({backends[0]})"] = one_call_per_file
        contenders["py twin (hashlib)"] = _digest_py.sha256_files
        contenders["sha256sum"] = run_sha256sum

        reference = run_sha256sum(everything)
        for name, contender in contenders.items():
            if contender(everything) != reference:
                sys.exit(f"bench_digest: {name} disagrees with sha256sum")

        summary: dict[str, object] = {
            "files": len(everything),
            "bytes": sum(sizes.values()),
            "small_files": len(small),
            "small_bytes": sum(sizes[path] for path in small),
            "repeat": args.repeat,
            "cpu_backends": list(backends),
        }
        print(
            f"tree: {len(everything)} files, {sum(sizes.values()) / 1e6:.1f} MB "
            f"({len(small)} small, {len(large)} large); best of {args.repeat}"
        )
        for label, paths in (("whole tree", everything), ("small files only", small)):
            total = sum(sizes[path] for path in paths)
            seconds = measure(contenders, paths, args.repeat)
            wall_base, cpu_base = seconds["sha256sum"]
            print(f"\n{label}: {len(paths)} files, {total / 1e6:.1f} MB")
            print(
                f"  {'':36} {'MB/s':>7} {'files/s':>8} {'vs sha256sum':>13}"
                f" {'CPU MB/s':>9} {'vs sha256sum':>13}"
            )
            rows = {}
            for name, (wall, cpu) in seconds.items():
                rows[name] = {
                    "seconds": wall,
                    "mb_per_s": total / wall / 1e6,
                    "files_per_s": len(paths) / wall,
                    "speed_ratio_to_sha256sum": wall_base / wall,
                    "cpu_seconds": cpu,
                    "cpu_mb_per_s": total / cpu / 1e6,
                    "cpu_ratio_to_sha256sum": cpu_base / cpu,
                }
                print(
                    f"  {name:36} {total / wall / 1e6:7.0f} {len(paths) / wall:8.0f}"
                    f" {wall_base / wall:12.2f}x {total / cpu / 1e6:9.0f} {cpu_base / cpu:12.2f}x"
                )
            summary["whole_tree" if paths is everything else "small_files_only"] = rows
        _digest_c._set_backend(backends[0])

    out = os.environ.get("MAELSTROM_BENCH_OUT")
    if out:
        Path(out).write_text(json.dumps(summary, indent=2) + "\n")
        print(f"\nsummary written to {out}")


if __name__ == "__main__":
    main()
