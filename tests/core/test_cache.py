"""The layer cache on a real directory: layout, locking, recovery, sharing and eviction."""

from __future__ import annotations

import hashlib
import io
import os
import stat
import sys
import tarfile
from pathlib import Path

import pytest
import trio
import trio.testing

from maelstrom_core._cache_state import CacheKey, EntryKind
from maelstrom_core._job import ArtifactType, LayerRef
from maelstrom_core._manifest import FileByDigest, InlineFile, ManifestEntry, encode_manifest
from maelstrom_core.cache import CACHEDIR_TAG, open_layer_cache
from maelstrom_core.errors import ArtifactError, DigestMismatch

T = 1_705_000_271


class DirSource:
    """Artifacts held as files named by their digests, counting every fetch."""

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(exist_ok=True)
        self.fetches: list[bytes] = []
        self.gate: trio.Event | None = None  # when set, fetches wait for it

    def add(self, data: bytes) -> bytes:
        digest = hashlib.sha256(data).digest()
        (self.root / digest.hex()).write_bytes(data)
        return digest

    async def fetch(self, digest: bytes) -> Path:
        self.fetches.append(digest)
        if self.gate is not None:
            await self.gate.wait()
        path = self.root / digest.hex()
        if not path.exists():
            raise ArtifactError(f"artifact {digest.hex()} is not known to the test source")
        return path


def tar_bytes(files: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mtime = T
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


def tar_layer(source: DirSource, files: dict[str, bytes]) -> LayerRef:
    return LayerRef(source.add(tar_bytes(files)), ArtifactType.TAR)


@pytest.fixture
def source(tmp_path: Path) -> DirSource:
    return DirSource(tmp_path / "artifacts")


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path / "cache"


def lkey(layer: LayerRef) -> CacheKey:
    return CacheKey(EntryKind.LAYER, layer.digest)


def layer_path(root: Path, layer: LayerRef) -> Path:
    return root / "sha256" / "layer" / layer.digest.hex()


async def test_layout_and_tar_layer(root: Path, source: DirSource) -> None:
    layer = tar_layer(source, {"bin/hello": b"hi"})
    async with open_layer_cache(root, 10**9) as cache:
        path = await cache.acquire(layer, source)
        assert path == layer_path(root, layer)
        assert (path / "bin/hello").read_bytes() == b"hi"
        size_file = path.with_name(path.name + ".size")
        assert int.from_bytes(size_file.read_bytes(), "big") == cache.statistics().bytes_used > 0
        cache.release(layer)
    assert (root / "CACHEDIR.TAG").read_bytes() == CACHEDIR_TAG
    assert (
        (root / "CACHEDIR.TAG")
        .read_bytes()
        .startswith(b"Signature: 8a477f597d28d172789f06886806bc55")
    )
    assert sorted(p.name for p in root.iterdir()) == [
        "CACHEDIR.TAG",
        "lock",
        "removing",
        "sha256",
        "tmp",
    ]
    assert list((root / "tmp").iterdir()) == []


async def test_manifest_layer_fetches_blobs_into_the_blob_cache(
    privilege: str, root: Path, source: DirSource
) -> None:
    big = os.urandom(300_000)
    blob = source.add(big)
    manifest = encode_manifest(
        [
            ManifestEntry("/data/big", stat.S_IFREG | 0o600, T, len(big), FileByDigest(blob)),
            ManifestEntry("/data/same", stat.S_IFREG | 0o644, T, len(big), FileByDigest(blob)),
            ManifestEntry("/etc/small", stat.S_IFREG | 0o644, T, 2, InlineFile(b"hi")),
        ]
    )
    layer = LayerRef(source.add(manifest), ArtifactType.MANIFEST)
    async with open_layer_cache(root, 10**9) as cache:
        path = await cache.acquire(layer, source)
        assert (path / "data/big").read_bytes() == big
        assert (path / "data/same").read_bytes() == big
        assert stat.S_IMODE((path / "data/big").stat().st_mode) == 0o600
        assert (path / "etc/small").read_bytes() == b"hi"
        assert source.fetches == [layer.digest, blob]  # the shared blob once
        blob_entry = root / "sha256" / "blob" / blob.hex()
        assert blob_entry.read_bytes() == big
        stats = cache.statistics()
        assert (stats.in_use, stats.evictable) == (1, 1)  # the blob is released after use
        cache.release(layer)


async def test_concurrent_acquires_materialise_once(root: Path, source: DirSource) -> None:
    layer = tar_layer(source, {"f": b"x"})
    source.gate = trio.Event()
    paths: list[Path] = []
    async with open_layer_cache(root, 10**9) as cache:

        async def job() -> None:
            paths.append(await cache.acquire(layer, source))

        async with trio.open_nursery() as nursery:
            for _ in range(10):
                nursery.start_soon(job)
            await trio.testing.wait_all_tasks_blocked()
            source.gate.set()
        assert len(source.fetches) == 1
        assert paths == [layer_path(root, layer)] * 10
        assert cache._state.refcount(lkey(layer)) == 10
        for _ in range(10):
            cache.release(layer)
        assert cache.statistics().evictable == 1


async def test_missing_artifact_is_an_error_and_can_be_retried(
    root: Path, source: DirSource
) -> None:
    layer = LayerRef(hashlib.sha256(b"later").digest(), ArtifactType.TAR)
    async with open_layer_cache(root, 10**9) as cache:
        with pytest.raises(ArtifactError, match="not known to the test source"):
            await cache.acquire(layer, source)
        assert cache.statistics().entries == 0
        source.add(tar_bytes({"f": b"now"}))
        # Not the same digest as "later": a wrong artifact under that name is refused.
        wrong = source.root / layer.digest.hex()
        wrong.write_bytes(tar_bytes({"f": b"now"}))
        with pytest.raises(DigestMismatch, match=layer.digest.hex()):
            await cache.acquire(layer, source)
        assert list((root / "sha256" / "layer").iterdir()) == []


async def test_corrupt_blob_fails_the_layer_and_leaves_nothing(
    root: Path, source: DirSource
) -> None:
    good = b"good data"
    blob = hashlib.sha256(good).digest()
    (source.root / blob.hex()).write_bytes(b"evil data")
    manifest = encode_manifest(
        [ManifestEntry("/f", stat.S_IFREG | 0o644, T, len(good), FileByDigest(blob))]
    )
    layer = LayerRef(source.add(manifest), ArtifactType.MANIFEST)
    async with open_layer_cache(root, 10**9) as cache:
        with pytest.raises(DigestMismatch, match=blob.hex()):
            await cache.acquire(layer, source)
        assert cache.statistics().entries == 0
    assert list((root / "sha256" / "layer").iterdir()) == []
    assert list((root / "sha256" / "blob").iterdir()) == []
    assert list((root / "tmp").iterdir()) == []


async def test_garbage_manifest_names_the_artifact(root: Path, source: DirSource) -> None:
    layer = LayerRef(source.add(b"\x00\x00\x00\x00\x00\x00\x00\x05junk!"), ArtifactType.MANIFEST)
    async with open_layer_cache(root, 10**9) as cache:
        with pytest.raises(ArtifactError, match=f"manifest {layer.digest.hex()}"):
            await cache.acquire(layer, source)


async def test_cancelled_getter_lets_a_waiter_take_over(root: Path, source: DirSource) -> None:
    layer = tar_layer(source, {"f": b"x"})
    source.gate = trio.Event()
    got: list[Path] = []
    async with open_layer_cache(root, 10**9) as cache:
        async with trio.open_nursery() as nursery:
            getter_scope = trio.CancelScope()

            async def getter() -> None:
                with getter_scope:
                    await cache.acquire(layer, source)

            async def waiter() -> None:
                got.append(await cache.acquire(layer, source))

            nursery.start_soon(getter)
            await trio.testing.wait_all_tasks_blocked()
            nursery.start_soon(waiter)
            await trio.testing.wait_all_tasks_blocked()
            getter_scope.cancel()
            await trio.testing.wait_all_tasks_blocked()
            source.gate.set()
        assert got == [layer_path(root, layer)]
        assert len(source.fetches) == 2  # the waiter fetched for itself
        assert cache._state.refcount(lkey(layer)) == 1


async def test_eviction_removes_least_recently_released_from_disk(
    root: Path, source: DirSource
) -> None:
    layers = [tar_layer(source, {"f": os.urandom(50_000), "n": bytes([i])}) for i in range(3)]
    async with open_layer_cache(root, 10**9) as cache:
        for layer in layers:
            await cache.acquire(layer, source)
        one = cache.statistics().bytes_used // 3
        cache.release(layers[1])
        cache.release(layers[0])
        # Shrink the target below two layers' worth: layer 1 (released first) must go.
        cache._evict(cache._state.set_target(one * 2 + one // 2))
        assert not layer_path(root, layers[1]).exists()
        assert layer_path(root, layers[0]).exists()
        assert layer_path(root, layers[2]).exists()
        # Everything unreferenced goes at target 0, but a held layer stays (soft target).
        cache._evict(cache._state.set_target(0))
        assert not layer_path(root, layers[0]).exists()
        assert layer_path(root, layers[2]).exists()
        cache.release(layers[2])
        assert not layer_path(root, layers[2]).exists()
    assert list((root / "removing").iterdir()) == []  # the remover finished on close
    assert list((root / "sha256" / "layer").iterdir()) == []


async def test_entries_persist_across_restarts_and_load_as_evictable(
    root: Path, source: DirSource
) -> None:
    layer = tar_layer(source, {"f": b"persist"})
    async with open_layer_cache(root, 10**9) as cache:
        await cache.acquire(layer, source)
        cache.release(layer)
    source.fetches.clear()
    async with open_layer_cache(root, 10**9) as cache:
        assert cache.statistics().evictable == 1
        path = await cache.acquire(layer, source)
        assert (path / "f").read_bytes() == b"persist"
        assert source.fetches == []
        cache.release(layer)
    # A target below what is on disk evicts at start.
    async with open_layer_cache(root, 0) as cache:
        assert cache.statistics().entries == 0
    assert not layer_path(root, layer).exists()


async def test_crash_leftovers_are_cleaned_at_start(
    privilege: str, root: Path, source: DirSource
) -> None:
    layer = tar_layer(source, {"f": b"ok"})
    async with open_layer_cache(root, 10**9) as cache:
        await cache.acquire(layer, source)
        cache.release(layer)
    layers = root / "sha256" / "layer"
    half = "ab" * 32
    (root / "tmp" / "half-built").mkdir()
    (root / "tmp" / "half-built" / "file").write_bytes(b"junk")
    (layers / half).mkdir()  # renamed in, but its .size never was
    (layers / ("cd" * 32 + ".size")).write_bytes(bytes(8))  # a .size whose dir never came
    (layers / "not-a-digest").write_bytes(b"?")
    (root / "sha256" / "unknown-kind").mkdir()
    (root / "stray").write_bytes(b"?")
    (root / "removing" / "old").mkdir()
    async with open_layer_cache(root, 10**9) as cache:
        assert cache.statistics().entries == 1
    assert sorted(p.name for p in layers.iterdir()) == sorted(
        [layer.digest.hex(), layer.digest.hex() + ".size"]
    )
    assert list((root / "tmp").iterdir()) == []
    assert list((root / "removing").iterdir()) == []
    assert sorted(p.name for p in (root / "sha256").iterdir()) == ["blob", "layer"]
    assert not (root / "stray").exists()


async def test_invalid_tag_wipes_the_cache(root: Path, source: DirSource) -> None:
    layer = tar_layer(source, {"f": b"x"})
    async with open_layer_cache(root, 10**9) as cache:
        await cache.acquire(layer, source)
        cache.release(layer)
    (root / "CACHEDIR.TAG").write_bytes(b"Signature: 8a477f597d28d172789f06886806bc55\nold\n")
    async with open_layer_cache(root, 10**9) as cache:
        assert cache.statistics().entries == 0
    assert not layer_path(root, layer).exists()
    assert (root / "CACHEDIR.TAG").read_bytes() == CACHEDIR_TAG


async def test_untagged_directory_with_foreign_files_is_refused(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (home / "thesis.tex").write_bytes(b"precious")
    with pytest.raises(ArtifactError, match=r"has no CACHEDIR\.TAG.*'thesis\.tex'.*refusing"):
        async with open_layer_cache(home, 10**9):
            pass
    assert (home / "thesis.tex").read_bytes() == b"precious"


async def test_second_open_in_this_process_is_refused(root: Path) -> None:
    async with open_layer_cache(root, 10**9):
        with pytest.raises(ArtifactError, match=f"cache directory {root} is in use"):
            async with open_layer_cache(root, 10**9):
                pass


async def test_second_process_is_refused_while_the_lock_is_held(root: Path) -> None:
    code = (
        "import sys, trio\n"
        "from pathlib import Path\n"
        "from maelstrom_core.cache import open_layer_cache\n"
        "from maelstrom_core.errors import ArtifactError\n"
        "async def main():\n"
        "    async with open_layer_cache(Path(sys.argv[1]), 1000):\n"
        "        print('opened')\n"
        "try:\n"
        "    trio.run(main)\n"
        "except ArtifactError as e:\n"
        "    print(e)\n"
    )
    argv = [sys.executable, "-c", code, str(root)]
    async with open_layer_cache(root, 10**9):
        held = await trio.run_process(argv, capture_stdout=True, capture_stderr=True)
    assert held.stdout.decode().strip() == (
        f"cache directory {root} is in use by another process (it holds {root / 'lock'}); "
        "give each worker and client its own cache directory"
    )
    free = await trio.run_process(argv, capture_stdout=True, capture_stderr=True)
    assert free.stdout.decode().strip() == "opened"


async def test_layers_with_read_only_dirs_are_removed(
    privilege: str, root: Path, source: DirSource
) -> None:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        info = tarfile.TarInfo("ro")
        info.type, info.mode = tarfile.DIRTYPE, 0o500
        tar.addfile(info)
        info = tarfile.TarInfo("ro/f")
        info.size, info.mode = 1, 0o400
        tar.addfile(info, io.BytesIO(b"x"))
    layer = LayerRef(source.add(out.getvalue()), ArtifactType.TAR)
    async with open_layer_cache(root, 0) as cache:
        await cache.acquire(layer, source)
        cache.release(layer)
    assert list((root / "removing").iterdir()) == []


def test_public_surface() -> None:
    from maelstrom_core import cache, executor

    assert sorted(cache.__all__) == [
        "ArtifactSource",
        "BackgroundRemover",
        "CACHEDIR_TAG",
        "CacheDirectory",
        "CacheKey",
        "CacheState",
        "CacheStatistics",
        "EntryKind",
        "GetResult",
        "LayerCache",
        "open_layer_cache",
    ]
    assert sorted(executor.__all__) == ["DEFAULT_CACHE_SIZE", "DEFAULT_INLINE_LIMIT", "Executor"]
