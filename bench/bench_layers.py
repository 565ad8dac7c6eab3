"""Glob-layer build time on a generated tree, beside ``sha256sum`` over the same files.

Figures: cold build (empty cache dir) and warm build (a fresh builder on the same cache, nothing
changed), each the best of a few runs with the files in the page cache; the baseline is
``sha256sum`` over every file, run in the same process. Goals: cold <= 1.1x sha256sum, warm
<= 5% of cold.

Sizes: ``--files N --megabytes M`` or ``MAELSTROM_BENCH_FILES`` / ``MAELSTROM_BENCH_MB``
(default 5000 files, 210 MB). Writes a JSON summary to ``$MAELSTROM_BENCH_OUT`` when set.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from maelstrom_core._layer_spec import GlobLayer
from maelstrom_core.digest import IMPLEMENTATION
from maelstrom_core.layers import MANIFEST_INLINE_LIMIT, LayerBuilder


def generate(root: Path, files: int, megabytes: int) -> list[Path]:
    """A source-tree-like mix: mostly small files (inlined), some large ones (blobs)."""
    rng = random.Random(42)
    large = max(1, files // 40)
    small = files - large
    small_bytes = min(megabytes * 2**20 // 2, small * 20 * 1024)
    large_bytes = megabytes * 2**20 - small_bytes
    sizes = [rng.randint(0, 2 * small_bytes // small) for _ in range(small)]
    sizes += [
        max(MANIFEST_INLINE_LIMIT + 1, int(rng.uniform(0.3, 1.7) * large_bytes / large))
        for _ in range(large)
    ]
    rng.shuffle(sizes)
    paths = []
    block = rng.randbytes(4 << 20)
    for i, size in enumerate(sizes):
        path = root / f"d{i % 50:02}" / f"s{i % 7}" / f"f{i:05}.dat"
        path.parent.mkdir(parents=True, exist_ok=True)
        offset = rng.randrange(len(block))
        data = (block[offset:] + block) * (size // len(block) + 1)
        path.write_bytes(data[:size])
        paths.append(path)
    old = time.time() - 3600  # outside the racy window of the caches
    for path in root.rglob("*"):
        os.utime(path, (old, old))
    return paths


def best(runs: int, fn: object) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()  # type: ignore[operator]
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--files", type=int, default=int(os.environ.get("MAELSTROM_BENCH_FILES", 5000))
    )
    parser.add_argument(
        "--megabytes", type=int, default=int(os.environ.get("MAELSTROM_BENCH_MB", 210))
    )
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench-layers-") as tmp:
        root = Path(tmp) / "project"
        paths = generate(root, args.files, args.megabytes)
        total = sum(p.stat().st_size for p in paths)
        names = [str(p) for p in paths]
        for name in names:  # page cache warm for every contender alike
            Path(name).read_bytes()

        def sha256sum() -> None:
            subprocess.run(
                ["xargs", "-0", "sha256sum"],
                input="\0".join(names).encode(),
                stdout=subprocess.DEVNULL,
                check=True,
            )

        counter = iter(range(1_000_000))

        def cold() -> None:
            cache = Path(tmp) / f"cache-{next(counter)}"
            LayerBuilder(root, cache, {}).build(GlobLayer("**"))
            shutil.rmtree(cache)

        warm_cache = Path(tmp) / "cache-warm"
        first = LayerBuilder(root, warm_cache, {}).build(GlobLayer("**"))

        def warm() -> None:
            again = LayerBuilder(root, warm_cache, {}).build(GlobLayer("**"))
            assert again == first

        baseline = best(args.runs, sha256sum)
        cold_s = best(args.runs, cold)
        warm_s = best(args.runs, warm)

    summary = {
        "files": len(paths),
        "bytes": total,
        "digest_implementation": IMPLEMENTATION,
        "sha256sum_s": round(baseline, 4),
        "cold_s": round(cold_s, 4),
        "warm_s": round(warm_s, 4),
        "cold_over_sha256sum": round(cold_s / baseline, 3),
        "warm_over_cold": round(warm_s / cold_s, 4),
        "goals": {"cold_over_sha256sum": 1.1, "warm_over_cold": 0.05},
    }
    print(f"tree: {len(paths)} files, {total / 2**20:.1f} MiB (digest: {IMPLEMENTATION})")
    print(f"sha256sum (baseline): {baseline:.3f} s")
    print(
        f"cold glob layer:      {cold_s:.3f} s  = {cold_s / baseline:.2f}x sha256sum (goal <= 1.1x)"
    )
    print(
        f"warm glob layer:      {warm_s:.3f} s  = {100 * warm_s / cold_s:.1f}% of cold (goal <= 5%)"
    )
    out = os.environ.get("MAELSTROM_BENCH_OUT")
    if out:
        Path(out).write_text(json.dumps(summary, indent=2) + "\n")


if __name__ == "__main__":
    main()
