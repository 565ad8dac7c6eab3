"""The stat-keyed file digest cache: hits, misses, persistence, corruption and concurrency."""

from __future__ import annotations

import hashlib
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from maelstrom_core._digest_cache import DigestCache, FileStat
from maelstrom_core.errors import ArtifactError

OLD = 1_600_000_000  # an mtime safely outside the racy window


def make(path: Path, data: bytes, mtime: int = OLD) -> tuple[str, FileStat]:
    path.write_bytes(data)
    os.utime(path, (mtime, mtime))
    return str(path), FileStat.of(os.stat(path))


def sha(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def test_hit_after_miss_and_persisted(tmp_path: Path) -> None:
    f = make(tmp_path / "f", b"hello")
    cache = DigestCache(tmp_path / "cache")
    assert cache.digests([f]) == [sha(b"hello")]
    assert (cache.hits, cache.misses) == (0, 1)
    assert cache.digests([f]) == [sha(b"hello")]
    assert (cache.hits, cache.misses) == (1, 1)
    cache.save()
    again = DigestCache(tmp_path / "cache")
    assert again.lookup(*f) == sha(b"hello")


def test_unchanged_file_is_not_read(tmp_path: Path) -> None:
    f = make(tmp_path / "f", b"aaaa")
    cache = DigestCache(tmp_path / "cache")
    cache.digests([f])
    # Swap the bytes behind the cache's back, keeping size, mtime and inode: a cache that read
    # the file again would notice; ours must answer from memory.
    make(tmp_path / "f", b"bbbb")
    assert FileStat.of(os.stat(f[0])) == f[1]
    assert cache.digests([f]) == [sha(b"aaaa")]
    assert cache.hits == 1


@pytest.mark.parametrize("change", ["content", "size", "mtime", "inode"])
def test_miss_after_change(tmp_path: Path, change: str) -> None:
    path = tmp_path / "f"
    f = make(path, b"aaaa")
    cache = DigestCache(tmp_path / "cache")
    cache.digests([f])
    cache.save()
    if change == "content":  # same size, other mtime
        new = make(path, b"bbbb", OLD + 1)
    elif change == "size":  # same mtime, other size
        new = make(path, b"aaaaa", OLD)
    elif change == "mtime":  # same bytes, touched
        new = make(path, b"aaaa", OLD + 7)
    else:  # replaced by rename: same size and mtime, new inode
        other = tmp_path / "g"
        make(other, b"cccc", OLD)
        os.replace(other, path)
        new = str(path), FileStat.of(os.stat(path))
        assert new[1].mtime_ns == f[1].mtime_ns
        assert new[1].size == f[1].size
    reloaded = DigestCache(tmp_path / "cache")
    assert reloaded.lookup(*new) is None
    assert reloaded.digests([new]) == [sha(path.read_bytes())]
    assert reloaded.misses == 1


def test_recently_modified_files_are_not_remembered(tmp_path: Path) -> None:
    path = tmp_path / "fresh"
    path.write_bytes(b"x")
    f = str(path), FileStat.of(os.stat(path))
    cache = DigestCache(tmp_path / "cache")
    assert cache.digests([f]) == [sha(b"x")]
    assert cache.lookup(*f) is None


def test_corrupt_cache_file_is_discarded_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "cache").mkdir()
    (tmp_path / "cache" / "cached-digests.cbor").write_bytes(b"\xff\x00garbage")
    f = make(tmp_path / "f", b"z")
    with caplog.at_level(logging.WARNING, logger="maelstrom_core.layers"):
        cache = DigestCache(tmp_path / "cache")
    assert "discarding corrupt digest cache" in caplog.text
    assert cache.digests([f]) == [sha(b"z")]
    cache.save()
    assert DigestCache(tmp_path / "cache").lookup(*f) == sha(b"z")


def test_missing_file_is_an_artifact_error(tmp_path: Path) -> None:
    f = make(tmp_path / "f", b"z")
    os.unlink(f[0])
    with pytest.raises(ArtifactError, match="f"):
        DigestCache(tmp_path / "cache").digests([f])


def test_big_batches_hash_on_two_threads_correctly(tmp_path: Path) -> None:
    files = [make(tmp_path / f"f{i}", bytes([i]) * (1 << 20) * (i + 1)) for i in range(6)]
    cache = DigestCache(tmp_path / "cache")
    assert cache.digests(files) == [sha(Path(p).read_bytes()) for p, _ in files]


WRITER = """
import os, sys
from pathlib import Path
from maelstrom_core._digest_cache import DigestCache, FileStat
cache_dir, src, tag = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
for round in range(20):
    cache = DigestCache(cache_dir)
    files = []
    for i in range(10):
        p = src / f"{tag}-{round}-{i}"
        p.write_bytes(p.name.encode())
        os.utime(p, (1_600_000_000, 1_600_000_000))
        files.append((str(p), FileStat.of(os.stat(p))))
    cache.digests(files)
    cache.save()
"""


def test_two_processes_merge_their_entries(tmp_path: Path) -> None:
    cache_dir, src = tmp_path / "cache", tmp_path / "src"
    src.mkdir()
    procs = [
        subprocess.Popen([sys.executable, "-c", WRITER, str(cache_dir), str(src), tag])
        for tag in ("a", "b")
    ]
    assert [p.wait(timeout=120) for p in procs] == [0, 0]
    cache = DigestCache(cache_dir)
    for path in src.iterdir():
        found = cache.lookup(str(path), FileStat.of(os.stat(path)))
        assert found == sha(path.name.encode()), path.name
    assert not [p for p in cache_dir.iterdir() if p.name.startswith(".cached-digests.")]
